"""The delete stage and restore against the real registry process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.delete.errors import RestoreError
from tasks.delete.ledger import read_ledger
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.delete.restore import RestoreFilter, restorable, restore
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tasks.registry.manifest import get_manifest, put_manifest, resolve_tag
from tests.delete.helpers import OLD, plan_rows, scan_and_delete, setup


def test_shared_digest_survives_and_ledger_records_before_delete(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    async def go() -> tuple[Any, dict[str, str], dict[str, str | None]]:
        async with RegistryClient(registry.url) as client:
            digests = await setup(client)
            results = await scan_and_delete(client, {"a", "drop-me"}, tmp_path / "l.jsonl")
            now = {t: await resolve_tag(client, "r", t) for t in ("a", "keep-me", "drop-me")}
            return results, digests, now

    results, digests, now = asyncio.run(go())
    assert list(results["digest"]) == [digests["a"]]
    assert now == {"a": None, "keep-me": digests["shared"], "drop-me": digests["shared"]}
    states = [(r.digest, r.state) for r in read_ledger(tmp_path / "l.jsonl")]
    assert states == [(digests["a"], "pending"), (digests["a"], "done")]


def test_moved_tag_and_new_tag_cancel_deletion(registry: LocalRegistry, tmp_path: Path) -> None:
    async def go() -> pd.DataFrame:
        async with RegistryClient(registry.url) as client:
            digests = await setup(client)
            scan = await scan_registry(client, ["r"])
            plan = plan_rows(scan.tags, {"a", "b"})
            # CI pushes meanwhile: `a` moves to a new image, and `b` gains a new tag.
            await push_image(client, "r", ["a"], created=OLD, seed="a2")
            manifest = await get_manifest(client, "r", digests["b"])
            await put_manifest(client, "r", "release-b", manifest.raw, manifest.media_type)
            return await execute_plan(
                client,
                plan,
                scan,
                DeleteRequest(
                    apply=True, ledger_path=str(tmp_path / "l.jsonl"), max_delete_fraction=0.9
                ),
            )

    results = asyncio.run(go())
    assert sorted(results["outcome"]) == ["skipped-moved", "skipped-moved"]
    assert not (tmp_path / "l.jsonl").exists()


def test_dry_run_and_incomplete_repository_send_no_delete(registry: LocalRegistry) -> None:
    async def go() -> tuple[pd.DataFrame, pd.DataFrame, int]:
        async with RegistryClient(registry.url) as client:
            await setup(client)
            scan = await scan_registry(client, ["r"])
            plan = plan_rows(scan.tags, {"a"})
            dry = await execute_plan(
                client, plan, scan, DeleteRequest(apply=False, max_delete_fraction=0.8)
            )
            skipped = await execute_plan(
                client,
                plan,
                dataclasses.replace(scan, status=scan.status.assign(complete=False)),
                DeleteRequest(apply=True, ledger_path="", max_delete_fraction=0.8),
            )
            after = await scan_registry(client, ["r"])
            return dry, skipped, len(after.tags)

    dry, skipped, tags_after = asyncio.run(go())
    assert list(dry["outcome"]) == ["would-delete"]
    assert list(skipped["outcome"]) == ["skipped-incomplete"]
    assert tags_after == 5


def test_max_delete_fraction_refuses_only_the_repository_over_it(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """DESIGN.md: the plan of each repository over the fraction is refused, the others
    proceed; --force lets the refused one through too (issue #13, item 5)."""

    async def go(force: bool) -> pd.DataFrame:
        async with RegistryClient(registry.url) as client:
            if not force:
                await setup(client)  # r: 3 of 4 digests deleted (75%)
                for tag in ("x", "y", "z"):  # s: 1 of 3 deleted (33%)
                    await push_image(client, "s", [tag], created=OLD, seed=tag)
            scan = await scan_registry(client, ["r", "s"])
            plan = plan_rows(scan.tags, {"a", "b", "c", "x"})
            return await execute_plan(
                client,
                plan,
                scan,
                DeleteRequest(
                    apply=True,
                    ledger_path=str(tmp_path / "l.jsonl"),
                    max_delete_fraction=0.5,
                    force=force,
                ),
            )

    first = asyncio.run(go(force=False)).set_index("digest")
    assert set(first.loc[first["repository"] == "r", "outcome"]) == {"refused"}
    assert "75%" in first.loc[first["repository"] == "r", "detail"].iloc[0]
    assert list(first.loc[first["repository"] == "s", "outcome"]) == ["deleted"]
    assert set(asyncio.run(go(force=True))["outcome"]) == {"deleted"}


def test_delete_then_restore_round_trip(registry: LocalRegistry, tmp_path: Path) -> None:
    ledger = tmp_path / "l.jsonl"

    async def go() -> tuple[str, str | None, str | None]:
        async with RegistryClient(registry.url) as client:
            digests = await setup(client)
            await scan_and_delete(client, {"b"}, ledger)
            gone = await resolve_tag(client, "r", "b")
            records = restorable(ledger, client.host, RestoreFilter(repository="r"))
            await restore(client, records)
            return digests["b"], gone, await resolve_tag(client, "r", "b")

    digest, gone, back = asyncio.run(go())
    assert gone is None
    assert back == digest


def test_restore_refuses_when_blobs_were_collected(registry: LocalRegistry, tmp_path: Path) -> None:
    ledger = tmp_path / "l.jsonl"

    async def delete_b() -> None:
        async with RegistryClient(registry.url) as client:
            await setup(client)
            await scan_and_delete(client, {"b"}, ledger)

    asyncio.run(delete_b())
    records = restorable(ledger, registry.host, RestoreFilter())
    lost = json.loads(records[0].manifest_bytes)["layers"][0]["digest"].split(":")[1]
    # What garbage-collect does to an unreferenced blob, with the registry stopped.
    registry.stop()
    for blob in registry.root.glob("data/docker/registry/v2/blobs/sha256/*/*"):
        if blob.name == lost:
            shutil.rmtree(blob)
    registry.start()

    async def try_restore() -> str | None:
        async with RegistryClient(registry.url) as client:
            with pytest.raises(RestoreError, match=lost):
                await restore(client, records)
            return await resolve_tag(client, "r", "b")

    assert asyncio.run(try_restore()) is None


def test_registry_refusing_deletes_stops_the_run_naming_the_setting(tmp_path: Path) -> None:
    ledger = tmp_path / "l.jsonl"
    with LocalRegistry(tmp_path / "registry", deletes=False) as registry:

        async def go() -> tuple[dict[str, str], pd.DataFrame]:
            async with RegistryClient(registry.url) as client:
                digests = await setup(client)
                return digests, await scan_and_delete(client, {"a"}, ledger)

        digests, results = asyncio.run(go())
        assert list(results["outcome"]) == ["refused"]
        assert "storage.delete.enabled" in results["detail"].iloc[0]

        async def still_there() -> str:
            async with RegistryClient(registry.url) as client:
                return (await get_manifest(client, "r", digests["a"])).digest

        assert asyncio.run(still_there()) == digests["a"]
    assert [r.state for r in read_ledger(ledger)] == ["pending", "failed"]
