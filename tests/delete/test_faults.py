"""Faults survived on the real registry: killed mid-delete and retried, a 429 storm, a
token that expires mid-run, a tag moved during the run. After each, the registry is
audited against the plan: zero kept images missing, no digest deleted twice."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from flows.cleanup import cleanup
from flows.demo.images import push_image, tag_image
from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import Scenario, build_scenario, now_for_demo
from tasks.delete.ledger import read_ledger
from tasks.delete.restore import RestoreFilter, restorable
from tasks.registry.client import Credentials, RegistryClient
from tasks.registry.errors import NotFound
from tasks.registry.manifest import get_manifest
from tests.delete.helpers import OLD, scan_and_delete, setup
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.token_server import TokenServer


def _scenario(tmp_path: Path, proxy: RegistryProxy, kube: KubeAPIFixture) -> Scenario:
    built = build_scenario(tmp_path / "scenario", proxy.url, kube, now_for_demo())
    kube.write_kubeconfig(tmp_path / "scenario" / "kubeconfig")
    return built


def _audit(scenario: Scenario, proxy: RegistryProxy) -> None:
    """Kept images all present, deleted ones gone, no digest deleted (202) twice."""
    assert scenario.present(proxy.url) == scenario.expect_kept
    deleted = Counter(
        e.path.rsplit("/", 1)[-1]
        for e in proxy.exchanges
        if e.method == "DELETE" and e.status == 202
    )
    assert all(n == 1 for n in deleted.values()), deleted


def test_registry_killed_mid_delete_then_the_flow_run_retried(
    prefect_harness: None, registry: LocalRegistry, kube: KubeAPIFixture, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    deletes = 0

    def kill_on_third_delete(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        nonlocal deletes
        if method == "DELETE":
            deletes += 1
            if deletes == 3:
                registry.kill()
        return None

    with RegistryProxy(registry.url) as proxy:
        scenario = _scenario(tmp_path, proxy, kube)
        expected = len(scenario.expect_deleted)
        proxy.intercept = kill_on_third_delete

        def restart_after_first_attempt() -> None:
            # The first attempt's delete task is over when every pending record has an end.
            while True:
                states = Counter(r.state for r in read_ledger(ledger)) if ledger.exists() else {}
                if (
                    states.get("pending", 0)
                    and states.get("pending", 0)
                    == sum(states.get(s, 0) for s in ("done", "gone", "failed"))
                    and states.get("failed", 0)
                ):
                    break
                time.sleep(0.1)
            registry.start()

        restarter = threading.Thread(target=restart_after_first_attempt, daemon=True)
        restarter.start()
        result = cleanup.with_options(retries=1, retry_delay_seconds=3)(
            config_path=str(scenario.config_path),
            apply=True,
            now=scenario.now.isoformat(),
            ledger=str(ledger),
        )
        restarter.join(timeout=5)
        assert sum(result.outcomes.values()) == expected
        assert set(result.outcomes) <= {"deleted", "gone"}
        _audit(scenario, proxy)
        host = proxy.url.split("://", 1)[1]
    records = list(read_ledger(ledger))
    assert {r.flow_run_id for r in records} == {result.flow_run_id}  # one run, two attempts
    assert any(r.state == "failed" for r in records)  # the first attempt did fail
    done = Counter(r.digest for r in records if r.state == "done")
    assert all(n == 1 for n in done.values())
    # The ledger is exact: every deleted digest can be put back from it.
    deleted_digests = {scenario.digests[n] for n in scenario.expect_deleted}
    assert {r.digest for r in restorable(ledger, host, RestoreFilter())} == deleted_digests


def _present_in_r(
    digests: dict[str, str], url: str, credentials: Credentials | None = None
) -> set[str]:
    """Names of the images still in repository `r`."""

    async def check() -> set[str]:
        present = set()
        async with RegistryClient(url, credentials=credentials) as client:
            for name, digest in digests.items():
                try:
                    await get_manifest(client, "r", digest)
                except NotFound:
                    continue
                present.add(name)
        return present

    return asyncio.run(check())


def test_429_storm_with_retry_after(registry: LocalRegistry, tmp_path: Path) -> None:
    storm = False
    answered: Counter[tuple[str, str]] = Counter()

    def too_many(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        # During the delete step every request is refused twice before it passes.
        if storm and answered[(method, path)] < 2:
            answered[(method, path)] += 1
            return 429, {"Retry-After": "1"}, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}'
        return None

    async def start_storm() -> None:
        nonlocal storm
        storm = True

    with RegistryProxy(registry.url, intercept=too_many) as proxy:

        async def go() -> tuple[pd.DataFrame, dict[str, str]]:
            async with RegistryClient(proxy.url) as client:
                digests = await setup(client)
                results = await scan_and_delete(
                    client, {"a", "b", "c"}, tmp_path / "l.jsonl", between=start_storm
                )
                return results, digests

        results, digests = asyncio.run(go())
        assert set(results["outcome"]) == {"deleted"}
        assert _present_in_r(digests, proxy.url) == {"shared"}
        assert proxy.count("DELETE", 429, injected=True) == 2 * 3
        # Retry-After was honoured: each retry came at least a second after its 429.
        exchanges = proxy.exchanges
        for i, refused in enumerate(exchanges):
            if refused.injected:
                retry = next(
                    e
                    for e in exchanges[i + 1 :]
                    if (e.method, e.path) == (refused.method, refused.path)
                )
                assert retry.at - refused.at >= 0.9, (refused, retry)


def test_token_expires_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with TokenServer(tmp_path / "cert.pem", lifetime=3) as tokens:
        monkeypatch.setenv("SSL_CERT_FILE", str(tokens.ca_file))
        registry = LocalRegistry(tmp_path / "registry", extra_config=tokens.registry_config())
        with registry, RegistryProxy(registry.url) as proxy:
            credentials = Credentials(tokens.username, tokens.password)

            async def go() -> tuple[pd.DataFrame, dict[str, str]]:
                async with RegistryClient(proxy.url, credentials=credentials) as client:
                    digests = await setup(client)
                    results = await scan_and_delete(
                        client,
                        {"a", "b", "c"},
                        tmp_path / "l.jsonl",
                        # The scan's tokens die (for the registry) before the delete step.
                        between=lambda: asyncio.sleep(3.5),
                    )
                    return results, digests

            results, digests = asyncio.run(go())
            assert set(results["outcome"]) == {"deleted"}
            # The registry refused the expired token and the client fetched a new one.
            assert proxy.count("GET", 401) + proxy.count("HEAD", 401) > 0
            pull_tokens = [s for s in tokens.issued if s == "repository:r:pull"]
            assert len(pull_tokens) >= 2
            present = _present_in_r(digests, proxy.url, credentials)
        assert present == {"shared"}


def test_tags_moved_during_the_run(registry: LocalRegistry, tmp_path: Path) -> None:
    async def go() -> tuple[pd.DataFrame, dict[str, str]]:
        async with RegistryClient(registry.url) as client:
            digests = await setup(client)
            digests["d"] = await push_image(client, "r", ["d"], created=OLD, seed="d")

            async def ci_pushes() -> None:
                # While regsweep plans, CI tags a anew, moves the kept tag keep-me onto b,
                # and moves tag c onto the kept image.
                async def retag(tag: str, digest: str) -> None:
                    await tag_image(client, "r", tag, (await get_manifest(client, "r", digest)).raw)

                await retag("a-hotfix", digests["a"])
                await retag("keep-me", digests["b"])
                await retag("c", digests["shared"])

            results = await scan_and_delete(
                client, {"a", "b", "c", "d"}, tmp_path / "l.jsonl", between=ci_pushes
            )
            return results, digests

    results, digests = asyncio.run(go())
    outcome = dict(zip(results["digest"], results["outcome"], strict=True))
    detail = dict(zip(results["digest"], results["detail"], strict=True))
    assert outcome[digests["a"]] == "skipped-moved"
    assert "new tag a-hotfix" in detail[digests["a"]]
    assert outcome[digests["b"]] == "skipped-moved"
    assert "tag keep-me now points at it" in detail[digests["b"]]
    assert outcome[digests["c"]] == "skipped-moved"
    assert "tag c now points at" in detail[digests["c"]]
    assert outcome[digests["d"]] == "deleted"  # nothing moved: its deletion goes ahead
    assert _present_in_r(digests, registry.url) == {"a", "b", "c", "shared"}
