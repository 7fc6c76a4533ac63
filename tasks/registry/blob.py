"""Blobs: read, check and upload (chunk-less two-step upload, which Distribution 2.8 needs)."""

from __future__ import annotations

from tasks.registry.client import RegistryClient
from tasks.registry.errors import InvalidResponse
from tasks.registry.manifest import sha256_digest
from tasks.registry.paths import blob_path, upload_path

# Blobs read whole are image configs: JSON of a few KiB (history and labels included). A
# larger answer is refused rather than held in memory 100,000 times over.
MAX_CONFIG_BYTES = 16 << 20


async def get_blob(client: RegistryClient, repository: str, digest: str) -> bytes:
    """Return the blob's bytes (at most MAX_CONFIG_BYTES: this is for image configs),
    verified against `digest`, from the client's cache when it has them."""
    path = blob_path(repository, digest)
    cached = client.cache.get(digest) if client.cache is not None else None
    if cached is not None:
        return cached
    response = await client.request(
        "GET", path, scope=f"repository:{repository}:pull", max_body=MAX_CONFIG_BYTES
    )
    if sha256_digest(response.content) != digest:
        raise InvalidResponse(f"{repository}: blob {digest} does not match its digest")
    if client.cache is not None:
        client.cache.put(digest, response.content)
    return response.content


async def blob_exists(client: RegistryClient, repository: str, digest: str) -> bool:
    """True when the registry still has the blob in `repository`."""
    response = await client.request(
        "HEAD",
        blob_path(repository, digest),
        scope=f"repository:{repository}:pull",
        allow=frozenset({404}),
    )
    return response.status_code != 404


async def upload_blob(client: RegistryClient, repository: str, data: bytes) -> str:
    """Upload `data` unless the registry has it; return its digest."""
    digest = sha256_digest(data)
    if await blob_exists(client, repository, digest):
        return digest
    scope = f"repository:{repository}:pull,push"
    started = await client.request("POST", upload_path(repository), scope=scope)
    location = started.headers.get("Location")
    if not location:
        raise InvalidResponse(f"{repository}: upload started without a Location")
    separator = "&" if "?" in location else "?"
    await client.request(
        "PUT",
        f"{location}{separator}digest={digest}",
        scope=scope,
        headers={"Content-Type": "application/octet-stream"},
        content=data,
    )
    return digest
