"""OCI 1.1 referrers API: untagged signatures and attestations found and linked to their
subject; a registry without the API (404, as Distribution 2.8) costs one probe."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from flows.demo.registry_server import LocalRegistry
from tasks.core import mediatypes
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tasks.registry.frames import RegistryExtraction
from tasks.registry.manifest import sha256_digest
from tests.servers.storage_seed import seed_storage


def _manifest(subject: str = "", seed: str = "") -> bytes:
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [],
        "annotations": {"seed": seed},
    }
    if subject:
        body["subject"] = {"mediaType": mediatypes.OCI_MANIFEST, "digest": subject, "size": 1}
    return json.dumps(body).encode()


def test_referrers_api_finds_untagged_referrers_of_referrers() -> None:
    image = _manifest(seed="image")
    signature = _manifest(sha256_digest(image), "signature")
    attestation = _manifest(sha256_digest(signature), "attestation")
    by_digest = {sha256_digest(m): m for m in (image, signature, attestation)}
    referrers = {
        sha256_digest(image): [sha256_digest(signature)],
        sha256_digest(signature): [sha256_digest(attestation)],
    }

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        asked.append(path)
        if path == "/v2/app/tags/list":
            return httpx.Response(200, json={"name": "app", "tags": ["v1"]})
        if path.startswith("/v2/app/referrers/"):
            listed = referrers.get(path.rsplit("/", 1)[1], [])
            index = {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_INDEX,
                "manifests": [
                    {"mediaType": mediatypes.OCI_MANIFEST, "digest": d, "size": 1} for d in listed
                ],
            }
            return httpx.Response(200, json=index)
        if path.startswith("/v2/app/manifests/"):
            reference = path.rsplit("/", 1)[1]
            raw = image if reference == "v1" else by_digest[reference]
            headers = {
                "Content-Type": mediatypes.OCI_MANIFEST,
                "Docker-Content-Digest": sha256_digest(raw),
            }
            return httpx.Response(200, content=raw, headers=headers)
        if path.startswith("/v2/app/blobs/"):
            return httpx.Response(200, content=b"{}")
        return httpx.Response(404)

    async def go() -> RegistryExtraction:
        async with RegistryClient(
            "http://reg.test", transport=httpx.MockTransport(handler)
        ) as client:
            return await scan_registry(client, ["app"])

    extraction = asyncio.run(go())
    subjects = dict(zip(extraction.images["digest"], extraction.images["subject"], strict=True))
    assert subjects == {
        sha256_digest(image): "",
        sha256_digest(signature): sha256_digest(image),
        sha256_digest(attestation): sha256_digest(signature),
    }
    assert extraction.status["complete"].all(), extraction.status["error"].tolist()
    referrer_queries = [p for p in asked if "/referrers/" in p]
    assert sorted(referrer_queries) == sorted(set(referrer_queries))  # each digest asked once
    assert len(referrer_queries) == 3


def test_registry_without_referrers_api_scans_completely(tmp_path: Path) -> None:
    seeded = seed_storage(tmp_path / "data", repositories=1, tags=20)
    with LocalRegistry(tmp_path) as registry:

        async def go() -> RegistryExtraction:
            async with RegistryClient(registry.url) as client:
                return await scan_registry(client, ["bench/*"])

        extraction = asyncio.run(go())
    assert extraction.status["complete"].all(), extraction.status["error"].tolist()
    assert len(extraction.tags) == len(seeded.tags)
