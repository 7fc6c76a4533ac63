"""Closures on the real registry, skopeo the judge: what a deletion takes along, and what
cancels it (issue #13, items 1, 2, 8 and 9)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest

from flows.demo.images import push_image, push_index, tag_image
from flows.demo.registry_server import LocalRegistry
from tasks.core import mediatypes
from tasks.delete import loader
from tasks.delete.ledger import read_ledger
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tasks.registry.manifest import get_manifest, resolve_tag
from tasks.registry.retry import RetryPolicy
from tests.delete.helpers import OLD, plan_of
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.skopeo import assert_every_tag_pulls, skopeo_copy_all


async def plan_change_apply(
    url: str,
    repositories: list[str],
    ledger: Path,
    between: Callable[[RegistryClient], Awaitable[None]] | None = None,
    via: str | None = None,
) -> pd.DataFrame:
    """Scan and plan; run `between` (someone else's change); apply the plan (through `via`)."""
    async with RegistryClient(url) as client:
        scan = await scan_registry(client, repositories)
        plan = plan_of(scan, url)
        if between is not None:
            await between(client)
    async with RegistryClient(via or url) as client:
        return await execute_plan(
            client,
            plan,
            scan,
            DeleteRequest(apply=True, ledger_path=str(ledger), max_delete_fraction=1.0),
        )


def test_fallback_index_and_what_it_lists_go_with_their_subject(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """Item 1: oras/cosign write an OCI 1.1 referrers fallback index tagged sha256-<subject>
    on a registry without the referrers API. It shares its subject's fate, so no tag left
    behind names a deleted manifest."""

    async def setup(client: RegistryClient) -> dict[str, str]:
        names = {}
        for which, tag in (("old", "old"), ("new", "keep-1")):
            subject = await push_image(client, "app", [tag], created=OLD, seed=which, oci=True)
            sbom = await push_image(
                client, "app", [], created=OLD, seed=f"sbom-{which}", oci=True, subject=subject
            )
            fallback = await push_index(
                client, "app", [f"sha256-{subject[7:]}"], [(sbom, ("unknown", "unknown"))]
            )
            names |= {which: subject, f"sbom-{which}": sbom, f"fallback-{which}": fallback}
        return names

    async def go() -> tuple[dict[str, str], pd.DataFrame]:
        async with RegistryClient(registry.url) as client:
            names = await setup(client)
        return names, await plan_change_apply(registry.url, ["app"], tmp_path / "l.jsonl")

    names, results = asyncio.run(go())
    deleted = {
        d for d, o in zip(results["digest"], results["outcome"], strict=True) if o == "deleted"
    }
    assert deleted == {names["old"], names["sbom-old"], names["fallback-old"]}
    assert len(set(results["closure"])) == 1  # decided and executed together
    tags = assert_every_tag_pulls(registry.url, ["app"])
    assert tags == {"app": sorted(["keep-1", f"sha256-{names['new'][7:]}"])}


async def _multi_arch(client: RegistryClient, tag: str) -> tuple[str, list[str]]:
    children = [
        await push_image(
            client, "app", [], created=OLD, seed=f"{tag}-{arch}", platform=("linux", arch)
        )
        for arch in ("amd64", "arm64")
    ]
    index = await push_index(
        client,
        "app",
        [tag],
        [(c, ("linux", a)) for c, a in zip(children, ("amd64", "arm64"), strict=True)],
    )
    return index, children


def test_a_tag_on_a_planned_index_cancels_its_children_too(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """Item 2: between plan and apply someone tags an old multi-arch index `rollback`. The
    index is skipped, and so are both platform manifests: `rollback` still pulls."""
    made: dict[str, object] = {}

    async def setup() -> None:
        async with RegistryClient(registry.url) as client:
            made["old"] = await _multi_arch(client, "old-x")
            made["other"] = await push_image(client, "app", ["other"], created=OLD, seed="o")

    async def retag(client: RegistryClient) -> None:
        index, _ = made["old"]  # type: ignore[misc]
        raw = (await get_manifest(client, "app", index)).raw
        await tag_image(client, "app", "rollback", raw)  # skopeo copy --all old-x rollback

    asyncio.run(setup())
    results = asyncio.run(
        plan_change_apply(registry.url, ["app"], tmp_path / "l.jsonl", between=retag)
    ).set_index("digest")
    index, children = made["old"]  # type: ignore[misc]
    assert {results.loc[d, "outcome"] for d in [index, *children]} == {"skipped-moved"}
    assert results.loc[made["other"], "outcome"] == "deleted"
    assert "rollback" in results.loc[index, "detail"]
    assert skopeo_copy_all(registry.url, "app:rollback").returncode == 0
    assert assert_every_tag_pulls(registry.url, ["app"]) == {"app": ["old-x", "rollback"]}


def test_a_tag_on_a_planned_subject_keeps_its_signature_and_sbom(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """Item 2, referrers: the re-check cancels the subject, so its `.sig` (tag scheme), its
    SBOM (OCI subject) and the fallback index listing it are not deleted either."""
    made: dict[str, str] = {}

    async def setup() -> None:
        async with RegistryClient(registry.url) as client:
            made["subject"] = await push_image(client, "app", ["old"], created=OLD, seed="s")
            made["sig"] = await push_image(
                client, "app", [f"sha256-{made['subject'][7:]}.sig"], created=OLD, seed="sig"
            )
            made["sbom"] = await push_image(
                client, "app", [], created=OLD, seed="sbom", oci=True, subject=made["subject"]
            )
            # Distribution 2.8 has no referrers API: oras lists the SBOM in a fallback index.
            made["fallback"] = await push_index(
                client,
                "app",
                [f"sha256-{made['subject'][7:]}"],
                [(made["sbom"], ("unknown", "unknown"))],
            )

    async def retag(client: RegistryClient) -> None:
        raw = (await get_manifest(client, "app", made["subject"])).raw
        await tag_image(client, "app", "rollback", raw)

    asyncio.run(setup())
    results = asyncio.run(
        plan_change_apply(registry.url, ["app"], tmp_path / "l.jsonl", between=retag)
    )
    assert set(results["outcome"]) == {"skipped-moved"}
    assert set(results["digest"]) == set(made.values())
    assert not (tmp_path / "l.jsonl").exists()  # not a single DELETE was sent

    async def sbom_still_there() -> str:
        async with RegistryClient(registry.url) as client:
            return (await get_manifest(client, "app", made["sbom"])).digest

    assert asyncio.run(sbom_still_there()) == made["sbom"]
    assert_every_tag_pulls(registry.url, ["app"])


def test_a_tag_pushed_while_the_delete_step_runs_cancels_what_it_names(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 9: the re-check is per batch, so a tag pushed onto a planned image after the
    first DELETE (by CI, racing us) still saves it. One closure per batch here."""
    monkeypatch.setattr(loader, "RECHECK_BATCH", 1)
    made: dict[str, str] = {}
    raw: dict[str, bytes] = {}

    async def setup() -> None:
        async with RegistryClient(registry.url) as client:
            for name in ("a", "b"):
                made[name] = await push_image(client, "app", [name], created=OLD, seed=name)
                raw[name] = (await get_manifest(client, "app", made[name])).raw

    asyncio.run(setup())
    first, second = sorted(made, key=made.get)  # type: ignore[arg-type]

    def push_during_first_delete(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if method == "DELETE" and path.endswith(made[first]):
            httpx.put(  # CI pushes a release tag onto the other image, right now
                f"{registry.url}/v2/app/manifests/release",
                content=raw[second],
                headers={"Content-Type": mediatypes.DOCKER_MANIFEST},
            ).raise_for_status()
        return None

    with RegistryProxy(registry.url) as proxy:
        proxy.intercept = push_during_first_delete
        results = asyncio.run(
            plan_change_apply(registry.url, ["app"], tmp_path / "l.jsonl", via=proxy.url)
        ).set_index("digest")
    assert results.loc[made[first], "outcome"] == "deleted"
    assert results.loc[made[second], "outcome"] == "skipped-moved"
    assert "new tag release" in results.loc[made[second], "detail"]
    assert assert_every_tag_pulls(registry.url, ["app"]) == {
        "app": ["b" if second == "b" else "a", "release"]
    }


def test_a_recheck_failing_in_one_repository_touches_nothing_there_and_no_other(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """Item 8: the re-check of `broken` fails (its tag list answers 500 after the scan);
    nothing is sent there, `fine` is cleaned, and the results say so."""
    failing = False

    def break_tags(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if failing and path.startswith("/v2/broken/tags/list"):
            return 500, {"Content-Type": "text/plain"}, b"storage backend down"
        return None

    async def setup() -> None:
        async with RegistryClient(registry.url) as client:
            for repository in ("broken", "fine"):
                await push_image(client, repository, ["old"], created=OLD, seed=repository)

    async def flip(client: RegistryClient) -> None:
        nonlocal failing
        failing = True

    asyncio.run(setup())
    with RegistryProxy(registry.url) as proxy:
        proxy.intercept = break_tags
        results = asyncio.run(
            plan_change_apply(proxy.url, ["broken", "fine"], tmp_path / "l.jsonl", between=flip)
        ).set_index("repository")
        deletes = [e.path for e in proxy.exchanges if e.method == "DELETE"]
    assert results.loc["broken", "outcome"] == "not-attempted"
    assert "re-checking broken failed" in results.loc["broken", "detail"]
    assert results.loc["fine", "outcome"] == "deleted"
    assert all(p.startswith("/v2/fine/") for p in deletes) and len(deletes) == 1

    async def still_there() -> str | None:
        async with RegistryClient(registry.url) as client:
            return await resolve_tag(client, "broken", "old")

    assert asyncio.run(still_there()) is not None


def test_deletes_whose_answers_are_lost_are_reported_as_what_the_registry_did(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """Item 8: the registry carries out every DELETE but no answer reaches us (a proxy
    dropping them, a registry dying right after). The results and the ledger say deleted
    - asked afterwards, not guessed - and the registry agrees."""
    made: dict[str, str] = {}

    async def setup() -> None:
        async with RegistryClient(registry.url) as client:
            for name in ("a", "b", "keep-c"):
                made[name] = await push_image(client, "app", [name], created=OLD, seed=name)

    asyncio.run(setup())
    ledger = tmp_path / "l.jsonl"
    with RegistryProxy(registry.url) as proxy:
        proxy.lose_answer = lambda method, path: method == "DELETE"

        async def go() -> pd.DataFrame:
            async with RegistryClient(registry.url) as client:
                scan = await scan_registry(client, ["app"])
            async with RegistryClient(
                proxy.url, retry=RetryPolicy(max_retries=2, backoff=0.01)
            ) as client:
                return await execute_plan(
                    client,
                    plan_of(scan, registry.url),
                    scan,
                    DeleteRequest(apply=True, ledger_path=str(ledger), max_delete_fraction=1.0),
                )

        results = asyncio.run(go()).set_index("digest")
        lost = proxy.count("DELETE", status=0, injected=True)
    assert lost >= 2
    assert {results.loc[made[n], "outcome"] for n in ("a", "b")} == {"deleted"}
    final = {r.digest: r.state for r in read_ledger(ledger)}
    assert final == {made["a"]: "done", made["b"]: "done"}
    assert assert_every_tag_pulls(registry.url, ["app"]) == {"app": ["keep-c"]}
