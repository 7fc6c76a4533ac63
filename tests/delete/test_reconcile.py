"""A registry stays whole: a DELETE cut short by a crash is finished by the next run, damage
nothing of ours explains is reported and repaired on request, and verify names (and, where
our ledger removed it, puts back) what is missing. The real registry, killed for real;
skopeo judges what is listed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from flows.demo.registry_server import LocalRegistry
from flows.result import dangling_tags
from tasks.core.config import Config, parse_config
from tasks.delete.ledger import read_ledger
from tasks.delete.stage import run_reconcile, run_verify, verify_registry
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tests.cli import run_cli
from tests.delete.helpers import plan_rows, scan_and_delete, setup
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.registry_crash import kill_as_delete_arrives
from tests.servers.storage_view import _revision_link
from tests.skopeo import assert_every_tag_pulls, skopeo_tags


def _config(url: str) -> Config:
    return parse_config(
        {
            "registry": {"url": url, "repositories": ["r"], "cache": False},
            "kubernetes": {"enabled": False},
            "cleanup": {"disableGitHistoryBasedPolicy": True},
        }
    )


def _pushed(registry: LocalRegistry) -> dict[str, str]:
    async def push() -> dict[str, str]:
        async with RegistryClient(registry.url) as client:
            return await setup(client)

    return asyncio.run(push())


def _scan(url: str):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with RegistryClient(url) as client:
            return await scan_registry(client, ["r"])

    return asyncio.run(go())


def test_a_crash_mid_delete_leaves_tags_naming_nothing_and_the_next_run_finishes_it(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    digests = _pushed(registry)
    crash = kill_as_delete_arrives(registry, digests["a"])
    with RegistryProxy(registry.url, intercept=crash) as proxy:  # the same URL every night
        _nights_after_a_crash(proxy.url, registry.url, digests["a"], tmp_path)


def _nights_after_a_crash(url: str, judge: str, digest: str, tmp_path: Path) -> None:
    """regsweep talks to `url` (the proxy, as on the night of the crash); skopeo to the
    registry itself at `judge`."""

    async def night_one():  # type: ignore[no-untyped-def]
        async with RegistryClient(url) as client:
            return await scan_and_delete(client, {"a"}, tmp_path / "night1.jsonl")

    results = asyncio.run(night_one())
    # What the soak saw: the retry got 404, the run counted it gone, the tag stays listed.
    assert results.set_index("digest").loc[digest, "outcome"] in ("gone", "deleted")
    assert "a" in skopeo_tags(judge, "r")

    config = _config(url)
    scan = _scan(url)
    assert list(scan.dangling["tag"]) == ["a"]  # damage, not an image
    assert "a" not in set(scan.tags["tag"])
    assert not verify_registry(config).whole

    # A dry run says what it would do and sends nothing.
    rows, damage = run_reconcile(config, scan, None)
    assert list(rows["outcome"]) == ["would-repair"]
    assert damage.explained[0].record.digest == digest
    assert "a" in skopeo_tags(judge, "r")

    # The next night's apply finishes the deletion: the tag is gone, nothing else changed.
    ledger = tmp_path / "night2.jsonl"
    rows, damage = run_reconcile(config, scan, str(ledger), "night2")
    assert list(rows["outcome"]) == ["repaired"], rows.to_dict("records")
    assert dangling_tags(damage, rows, None) == {"found": 1, "repaired": 1}  # the metrics'
    assert skopeo_tags(judge, "r") == ["b", "c", "drop-me", "keep-me"]
    assert_every_tag_pulls(judge, ["r"])
    assert verify_registry(config).whole
    states = [(r.action, r.state, r.flow_run_id) for r in read_ledger(ledger)]
    assert states == [("repair", "pending", "night2"), ("repair", "done", "night2")]
    # Nothing is left to do the night after.
    rows, damage = run_reconcile(config, _scan(url), str(tmp_path / "n3.jsonl"))
    assert rows.empty and not damage.dangling and not damage.open_records


def test_a_pending_record_of_a_run_that_died_is_closed_by_the_next_run(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    digests = _pushed(registry)
    first = tmp_path / "first.jsonl"
    asyncio.run(_delete_with_ledger(registry.url, {"b"}, first))
    # As if the run had died after writing `pending` for b: drop its closing record.
    lines = first.read_text().splitlines(keepends=True)
    first.write_text("".join(line for line in lines if '"state": "pending"' in line))
    assert [r.state for r in read_ledger(first)] == ["pending"]

    _, damage = run_reconcile(_config(registry.url), _scan(registry.url), str(tmp_path / "n"))
    assert [o.record.digest for o in damage.open_records] == [digests["b"]]
    closed = list(read_ledger(first))
    assert [r.state for r in closed] == ["pending", "done"]
    assert "the manifest is gone" in closed[-1].detail


async def _delete_with_ledger(url: str, tags: set[str], ledger: Path) -> None:
    async with RegistryClient(url) as client:
        await scan_and_delete(client, tags, ledger)


def test_damage_nothing_of_ours_explains_is_reported_and_repaired_only_on_request(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    digests = _pushed(registry)
    _revision_link(registry, "r", digests["c"]).unlink()  # someone else's tool, by hand
    config = _config(registry.url)
    scan = _scan(registry.url)
    rows, damage = run_reconcile(config, scan, str(tmp_path / "run.jsonl"))
    assert list(rows["outcome"]) == ["damaged"]
    assert damage.unexplained == {"r": ["c"]}
    assert "regsweep repair --apply" in damage.notes()[0]
    assert "c" in skopeo_tags(registry.url, "r")  # left alone

    config_file = tmp_path / "regsweep.yaml"
    config_file.write_text(
        f"registry: {{url: '{registry.url}', repositories: [r], cache: false}}\n"
        "kubernetes: {enabled: false}\n"
        "cleanup: {disableGitHistoryBasedPolicy: true}\n"
    )
    env = {"REGSWEEP_HOME": str(tmp_path / "home"), **_env()}
    damaged = run_cli("verify", "--config", str(config_file), env=env)
    assert damaged.returncode == 4, damaged.stderr
    assert "dangling r:c: listed, names no manifest" in damaged.stdout
    assert "NOT whole" in damaged.stdout
    print(damaged.stdout)

    dry = run_cli("repair", "--config", str(config_file), env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would-repair: r:c" in dry.stdout
    assert "c" in skopeo_tags(registry.url, "r")

    done = run_cli("repair", "--config", str(config_file), "--apply", env=env)
    assert done.returncode == 0, done.stderr
    assert "repaired: r:c" in done.stdout
    assert skopeo_tags(registry.url, "r") == ["a", "b", "drop-me", "keep-me"]
    assert_every_tag_pulls(registry.url, ["r"])

    whole = run_cli("verify", "--config", str(config_file), env=env)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert whole.stdout.startswith("whole: 1 repositories, 4 tags")
    print(whole.stdout)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "REGSWEEP_HOME"}


def test_verify_puts_back_what_this_run_removed_and_still_fails_the_run(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    digests = _pushed(registry)
    scan = _scan(registry.url)
    ledger = tmp_path / "ledger.jsonl"
    asyncio.run(_delete_with_ledger(registry.url, {"b"}, ledger))
    assert "b" not in skopeo_tags(registry.url, "r")
    # The plan kept b after all (as a Pod started between the dry run and the apply would):
    plan = plan_rows(scan.tags, set())
    verdict = run_verify(_config(registry.url), plan, scan, None, str(ledger))
    assert not verdict.whole
    [missing] = [m for m in verdict.missing if m.reference == ":b"]
    assert missing.restored == "put back from this run's ledger"
    assert "b" in skopeo_tags(registry.url, "r")
    assert_every_tag_pulls(registry.url, ["r"])
    assert verdict.lines()[0].startswith("missing r:b: kept by the plan (keep-tag)")
    assert digests["b"]


def test_a_tag_deleted_during_the_scan_is_not_taken_for_damage(registry: LocalRegistry) -> None:
    """A tag deleted between the listing and its read is gone, not dangling: the scan lists
    again before calling anything damage."""

    async def go() -> None:
        async with RegistryClient(registry.url) as client:
            digests = await setup(client)
            deleted = threading.Event()
            with RegistryProxy(registry.url) as proxy:

                def intercept(method: str, path: str, headers: dict[str, str]) -> Answer | None:
                    wanted = method in ("GET", "HEAD") and path.endswith("/manifests/b")
                    if wanted and not deleted.is_set():
                        deleted.set()
                        httpx.delete(f"{registry.url}/v2/r/manifests/{digests['b']}")
                    return None

                proxy.intercept = intercept
                async with RegistryClient(proxy.url) as through:
                    scan = await scan_registry(through, ["r"])
            assert deleted.is_set()
            assert scan.dangling.empty
            assert "b" not in set(scan.tags["tag"])

    asyncio.run(go())
