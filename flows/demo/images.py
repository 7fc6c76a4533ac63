"""Build small, real images and push them through the registry API (demo and tests)."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from tasks.core import mediatypes
from tasks.registry.blob import upload_blob
from tasks.registry.client import RegistryClient
from tasks.registry.manifest import put_manifest, sha256_digest


def _layer(seed: str, size: int) -> bytes:
    chunk = hashlib.sha256(seed.encode()).digest()
    return gzip.compress((chunk * (size // len(chunk) + 1))[:size], mtime=0)


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


async def push_image(
    client: RegistryClient,
    repository: str,
    tags: list[str],
    *,
    created: datetime,
    labels: dict[str, str] | None = None,
    oci: bool = False,
    platform: tuple[str, str] = ("linux", "amd64"),
    layer_size: int = 2048,
    seed: str = "",
    annotations: dict[str, str] | None = None,
    subject: str | None = None,
) -> str:
    """Push one image (config + one unique layer + manifest) under `tags`; return its digest.

    With no tags the manifest is pushed by digest only (an index child or a referrer).
    """
    os_name, arch = platform
    layer = _layer(f"{repository}|{seed}|{created.isoformat()}|{arch}", layer_size)
    config = json.dumps(
        {
            "architecture": arch,
            "os": os_name,
            "created": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "config": {"Labels": labels or {}},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(gzip.decompress(layer))]},
        },
        sort_keys=True,
    ).encode()
    await upload_blob(client, repository, config)
    await upload_blob(client, repository, layer)
    media_type = mediatypes.OCI_MANIFEST if oci else mediatypes.DOCKER_MANIFEST
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": _descriptor(mediatypes.OCI_CONFIG if oci else mediatypes.DOCKER_CONFIG, config),
        "layers": [_descriptor(mediatypes.OCI_LAYER if oci else mediatypes.DOCKER_LAYER, layer)],
    }
    if annotations:
        body["annotations"] = annotations
    if subject:
        body["subject"] = {"mediaType": mediatypes.OCI_MANIFEST, "digest": subject, "size": 0}
    return await _put(client, repository, tags, json.dumps(body).encode(), media_type)


async def push_index(
    client: RegistryClient,
    repository: str,
    tags: list[str],
    children: list[tuple[str, tuple[str, str]]],
    *,
    oci: bool = True,
    annotations: dict[str, str] | None = None,
) -> str:
    """Push an index over already-pushed `children` (digest, (os, arch)); return its digest."""
    manifests = []
    for digest, (os_name, arch) in children:
        manifests.append(
            {
                "mediaType": mediatypes.OCI_MANIFEST if oci else mediatypes.DOCKER_MANIFEST,
                "digest": digest,
                "size": 0,
                "platform": {"os": os_name, "architecture": arch},
            }
        )
    media_type = mediatypes.OCI_INDEX if oci else mediatypes.DOCKER_MANIFEST_LIST
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    if annotations:
        body["annotations"] = annotations
    return await _put(client, repository, tags, json.dumps(body).encode(), media_type)


async def tag_image(client: RegistryClient, repository: str, tag: str, raw: bytes) -> str:
    """Point `tag` at the manifest bytes `raw` (moving it if it exists); return the digest."""
    media_type = json.loads(raw)["mediaType"]
    return await put_manifest(client, repository, tag, raw, media_type)


async def _put(
    client: RegistryClient, repository: str, tags: list[str], raw: bytes, media_type: str
) -> str:
    digest = sha256_digest(raw)
    for reference in tags or [digest]:
        await put_manifest(client, repository, reference, raw, media_type)
    return digest
