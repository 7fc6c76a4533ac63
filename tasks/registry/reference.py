"""Image references, parsed once: `nginx` -> `docker.io/library/nginx:latest`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_SPACE = re.compile(r"\s")
_RUNTIME_PREFIXES = ("docker-pullable://", "docker://", "containerd://", "cri-o://")


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


def canonical_registry(host: str) -> str:
    """Return the host as references name it (`index.docker.io` -> `docker.io`)."""
    host = host.lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


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
