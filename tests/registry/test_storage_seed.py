"""The benchmark seeder writes a layout the real registry serves exactly as seeded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flows.demo.registry_server import LocalRegistry
from flows.demo.storage_seed import seed_storage
from tasks.frames import column_rows
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry


def test_seeded_storage_scans_as_seeded(tmp_path: Path) -> None:
    summary = seed_storage(tmp_path / "data", repositories=3, tags=120)
    with LocalRegistry(tmp_path) as registry:

        async def scan():  # type: ignore[no-untyped-def]
            async with RegistryClient(registry.url) as client:
                return await scan_registry(client, ["bench/*"])

        extraction = asyncio.run(scan())
    assert extraction.status["complete"].all()
    tags = {(r, t): d for r, t, d in column_rows(extraction.tags, "repository", "tag", "digest")}
    assert tags == summary.tags
    images = set(column_rows(extraction.images, "repository", "digest"))
    assert images == summary.manifests
    assert (extraction.index_edges["parent"] != "").any()
