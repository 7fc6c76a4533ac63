"""Manifests: read (by tag or digest), resolve, write and delete."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tasks.core import mediatypes
from tasks.core.reference import is_tag_name
from tasks.registry.client import RegistryClient, json_object
from tasks.registry.errors import InvalidResponse, UnreadableManifest
from tasks.registry.paths import checked_digest, manifest_path, referrers_path
from tasks.registry.vendors.base import vendor_of

# The distribution spec: registries should accept manifests of at least 4 MiB and may
# refuse larger ones. A larger answer is not a manifest anyone pushed through a registry.
MAX_MANIFEST_BYTES = 4 << 20


def sha256_digest(data: bytes) -> str:
    """Return the `sha256:<hex>` digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """One manifest as stored: its digest, media type, exact bytes and parsed body."""

    digest: str
    media_type: str
    raw: bytes
    body: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEXES


def parse_manifest(raw: bytes, content_type: str | None) -> tuple[str, dict[str, Any]]:
    """Return (media type, body) of manifest bytes; raise `InvalidResponse` if unusable."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidResponse("manifest is not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidResponse("manifest is not a JSON object")
    media_type = body.get("mediaType") or (content_type or "").split(";")[0].strip()
    if media_type not in mediatypes.ALL_MANIFESTS:
        # An OCI manifest may omit mediaType; its shape tells.
        if "manifests" in body:
            media_type = mediatypes.OCI_INDEX
        elif "config" in body and "layers" in body:
            media_type = mediatypes.OCI_MANIFEST
        else:
            raise InvalidResponse(f"unknown manifest media type {media_type!r}")
    return str(media_type), body


async def get_manifest(client: RegistryClient, repository: str, reference: str) -> Manifest:
    """Return the manifest `reference` (tag or digest) of `repository`.

    Raises `NotFound` if it does not exist, `UnreadableManifest` if it cannot be parsed
    though its digest is known (asked by digest, or the registry's Docker-Content-Digest
    matches the bytes), and `InvalidResponse` for any other answer it cannot use.
    """
    response = await client.request(
        "GET",
        manifest_path(repository, reference),
        scope=f"repository:{repository}:pull",
        headers={"Accept": mediatypes.ACCEPT},
        max_body=MAX_MANIFEST_BYTES,
    )
    raw = response.content
    digest = sha256_digest(raw)
    expected = reference if ":" in reference else response.headers.get("Docker-Content-Digest")
    if expected and expected.startswith("sha256:") and expected != digest:
        raise InvalidResponse(f"{repository}@{reference}: body digest {digest} != {expected}")
    content_type = response.headers.get("Content-Type")
    try:
        media_type, body = parse_manifest(raw, content_type)
    except InvalidResponse as exc:
        where = f"{repository}:{reference}: {exc}"
        if expected != digest:  # no digest vouches for these bytes: a garbled answer
            raise InvalidResponse(where) from exc
        media_type = (content_type or "").split(";")[0].strip()
        raise UnreadableManifest(where, digest, media_type) from exc
    if client.cache is not None:
        client.cache.put(digest, raw)
    return Manifest(digest=digest, media_type=media_type, raw=raw, body=body)


async def manifest_by_digest(client: RegistryClient, repository: str, digest: str) -> Manifest:
    """The manifest `digest`, from the client's cache when it has it, else the registry.

    Content under a digest never changes, so a cached copy is as good as a fresh one; use
    `get_manifest` instead to learn whether the registry *still has* the manifest.
    """
    checked_digest(repository, digest)
    raw = client.cache.get(digest) if client.cache is not None else None
    if raw is None:
        return await get_manifest(client, repository, digest)
    try:
        media_type, body = parse_manifest(raw, None)
    except InvalidResponse as exc:
        raise InvalidResponse(f"{repository}@{digest}: {exc}") from exc
    return Manifest(digest=digest, media_type=media_type, raw=raw, body=body)


async def list_referrers(client: RegistryClient, repository: str, digest: str) -> list[str] | None:
    """Digests of the manifests whose `subject` is `digest` (OCI 1.1 referrers API), or None
    when the registry does not offer the API (404)."""
    response = await client.request(
        "GET",
        referrers_path(repository, digest),
        scope=f"repository:{repository}:pull",
        headers={"Accept": mediatypes.OCI_INDEX},
        allow=frozenset({404}),
    )
    if response.status_code == 404:
        return None
    body = json_object(response)
    manifests = body.get("manifests") or []
    if not isinstance(manifests, list):
        raise InvalidResponse(f"{repository}: referrers of {digest}: manifests is not a list")
    return [
        checked_digest(repository, str(m["digest"]))
        for m in manifests
        if isinstance(m, dict) and "digest" in m
    ]


async def resolve_tag(client: RegistryClient, repository: str, tag: str) -> str | None:
    """Return the digest `tag` points at now, or None if the tag does not exist."""
    response = await client.request(
        "HEAD",
        manifest_path(repository, tag),
        scope=f"repository:{repository}:pull",
        headers={"Accept": mediatypes.ACCEPT},
        allow=frozenset({404}),
    )
    if response.status_code == 404:
        return None
    digest = response.headers.get("Docker-Content-Digest")
    if digest:
        return checked_digest(repository, str(digest))
    return (await get_manifest(client, repository, tag)).digest


async def put_manifest(
    client: RegistryClient, repository: str, reference: str, raw: bytes, media_type: str
) -> str:
    """Store manifest bytes under `reference` (tag or digest); return its digest."""
    await client.request(
        "PUT",
        manifest_path(repository, reference),
        scope=f"repository:{repository}:pull,push",
        headers={"Content-Type": media_type},
        content=raw,
    )
    return sha256_digest(raw)


async def delete_manifest(client: RegistryClient, repository: str, digest: str) -> bool:
    """Delete the manifest `digest` (and with it every tag on it), the vendor's way
    (`tasks.registry.vendors.base`). Returns False when it was already gone. Raises
    `DeleteUnsupported` when the registry refuses deletes."""
    if ":" not in digest:
        raise ValueError(f"delete takes a digest, not {digest!r}")
    return await vendor_of(client).delete_manifest(repository, digest)


async def delete_tag(client: RegistryClient, repository: str, tag: str) -> bool:
    """Delete the tag `tag` and nothing else, the vendor's way (`tasks.registry.vendors.base`).
    Returns False when the tag was already gone; raises `DeleteUnsupported` when the
    registry does not delete tags."""
    if not is_tag_name(tag):
        raise ValueError(f"{tag!r} is not a tag")
    return await vendor_of(client).delete_tag(repository, tag)
