"""The benchmark seeder writes a layout the real registry serves exactly as seeded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flows.demo.registry_server import LocalRegistry
from tasks.core.config import parse_config
from tasks.core.frames import column_rows
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tasks.registry.frames import RegistryExtraction
from tasks.registry.stage import read_registry
from tests.servers.storage_seed import seed_storage


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


def test_scan_in_worker_processes_equals_one_process(tmp_path: Path) -> None:
    seed_storage(tmp_path / "data", repositories=4, tags=80)
    with LocalRegistry(tmp_path) as registry:

        def read(processes: int) -> RegistryExtraction:
            document = {
                "registry": {
                    "url": registry.url,
                    "repositories": ["bench/*"],
                    "cache": False,
                    "processes": processes,
                },
                "cleanup": {"disableGitHistoryBasedPolicy": True},
            }
            return read_registry(parse_config(document))

        one, many = read(1), read(2)
    for name in ("images", "tags", "index_edges", "blobs", "status"):
        a, b = getattr(one, name), getattr(many, name)
        key = list(a.columns[:3])
        assert a.sort_values(key, ignore_index=True).equals(
            b.sort_values(key, ignore_index=True)
        ), name


def test_scan_in_worker_processes_of_nothing_is_an_empty_extraction(tmp_path: Path) -> None:
    seed_storage(tmp_path / "data", repositories=1, tags=3)
    with LocalRegistry(tmp_path) as registry:
        document = {
            "registry": {"url": registry.url, "repositories": ["none/*"], "processes": 2},
            "cleanup": {"disableGitHistoryBasedPolicy": True},
        }
        extraction = read_registry(parse_config(document))
    assert extraction.tags.empty and extraction.images.empty and extraction.status.empty
    assert list(extraction.images.columns)[-1] == "error"  # the documented schema, empty
