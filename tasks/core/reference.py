"""Image references, parsed once: `nginx` -> `docker.io/library/nginx:latest`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import httpx

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_SPACE = re.compile(r"\s")
# The distribution spec's grammar: exact, so nothing else ever reaches a path or a URL.
_SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_REPOSITORY_LENGTH = 255
_RUNTIME_PREFIXES = ("docker-pullable://", "docker://", "containerd://", "cri-o://")
# Signatures, attestations and SBOMs by tag scheme (cosign), and OCI 1.1's referrers
# fallback index, tagged with its subject's digest alone.
_REFERRER_TAG = re.compile(r"^sha256-([0-9a-f]{64})(?:\.(?:sig|att|sbom))?$")


@dataclass(frozen=True)
class ImageRef:
    """A normalised image reference. `tag` and `digest` may both be set (`name:tag@digest`)."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_digest(value: str) -> bool:
    """True for a `sha256:` digest with exactly 64 lower-case hex digits."""
    return _SHA256_DIGEST.fullmatch(value) is not None


def is_repository_name(value: str) -> bool:
    """True for a repository name in the distribution spec's grammar (at most 255 chars)."""
    return len(value) <= MAX_REPOSITORY_LENGTH and _REPOSITORY.fullmatch(value) is not None


def is_tag_name(value: str) -> bool:
    """True for a tag in the distribution spec's grammar (at most 128 characters)."""
    return _TAG_NAME.fullmatch(value) is not None


def referrer_tag_subject(tag: str) -> str | None:
    """The subject digest a referrer tag names (`sha256-<hex>.sig|.att|.sbom`, or the
    fallback index's `sha256-<hex>`), else None."""
    match = _REFERRER_TAG.match(tag)
    return f"sha256:{match.group(1)}" if match else None


def is_fallback_index_tag(tag: str) -> bool:
    """True for OCI 1.1's referrers fallback index tag, `sha256-<hex>` with no suffix."""
    return "." not in tag and referrer_tag_subject(tag) is not None


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})


def canonical_registry(host: str) -> str:
    """Return the host as references name it, so that names of one registry compare equal:
    lower case, Docker Hub's names as `docker.io`, no `:443` (image references mean https),
    and the loopback names (`localhost`, `[::1]`) as `127.0.0.1`."""
    host = host.strip().lower().removesuffix(":443")
    if host in _HUB_ALIASES:
        return DOCKER_HUB
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not colon:
        name, port = host, ""
    if name in _LOOPBACK:
        return "127.0.0.1" + (f":{port}" if port else "")
    return host


def registry_names(url: str, aliases: Iterable[str] = ()) -> frozenset[str]:
    """Every name by which cluster images may name the registry at `url`: its own host and
    each alias (a mirror, a pull-through cache, an internal DNS name), all canonical."""
    own = url.split("://", 1)[-1].split("/", 1)[0]
    return frozenset(canonical_registry(name) for name in (own, *aliases) if name.strip())


@lru_cache(maxsize=65536)
def parse_reference(text: str) -> ImageRef:
    """Parse an image reference or a runtime imageID; raise ValueError when it is neither.

    A reference with neither tag nor digest means `:latest`. Clusters repeat the same
    references thousands of times, so answers are cached (`ImageRef` is immutable).
    """
    value = text.strip()
    for prefix in _RUNTIME_PREFIXES:
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    if not value or _SPACE.search(value):
        raise ValueError(f"not an image reference: {text!r}")
    name, _, digest = value.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"bad digest in image reference {text!r}")
    tag = ""
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.match(tag):
            raise ValueError(f"bad tag in image reference {text!r}")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = canonical_registry(first), rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not repository or repository != repository.lower():
        raise ValueError(f"bad repository in image reference {text!r}")
    if not tag and not digest:
        tag = "latest"
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)


def split_repository_reference(text: str, host: str = "") -> tuple[str, str, str]:
    """Split `repository[:tag][@digest]` (optionally `host/`-prefixed) into its three parts.

    Unlike `parse_reference` nothing is normalised: the repository is a name in the one
    registry being cleaned, and a missing tag stays empty.
    """
    value = text.strip()
    if host and value.startswith(host + "/"):
        value = value[len(host) + 1 :]
    name, _, digest = value.partition("@")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


def normalise_url(url: str) -> str:
    """Return the registry base URL: `host:port` means https, a trailing slash is dropped."""
    url = url.strip().rstrip("/")
    if not url:
        raise ValueError("registry URL is empty")
    if "://" not in url:
        url = "https://" + url
    scheme = url.split("://", 1)[0]
    if scheme not in ("http", "https"):
        raise ValueError(f"registry URL scheme must be http or https, not {scheme!r}")
    return url


def registry_host(url: str) -> str:
    """Return `host[:port]` of a registry URL as `normalise_url` made it (the configuration
    normalises `registry.url` once, and `RegistryConfig.host` is this), as image references
    name it."""
    return httpx.URL(url).netloc.decode()
