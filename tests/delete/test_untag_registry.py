"""Untag on the real registry (Distribution 2.8): the overwrite method removes the tags that
share a kept digest while skopeo still pulls every kept tag; the api method finds that 2.8
does not delete tags and leaves them; a tag moved after the plan is left; a failed overwrite
points the tag back; restore re-tags from the ledger alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from flows.demo.images import push_image, push_index
from flows.demo.registry_server import LocalRegistry
from tasks.delete.ledger import read_ledger
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.delete.restore import RestoreFilter, restorable, restore
from tasks.delete.untag import PLACEHOLDER_ANNOTATION, UNSUPPORTED_HINT
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tasks.registry.frames import RegistryExtraction
from tasks.registry.manifest import get_manifest, resolve_tag
from tasks.registry.retry import RetryPolicy
from tasks.registry.vendors.base import IMPOSSIBLE_DIGEST, vendor_of
from tests.delete import helpers
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.storage_view import repositories_root
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=30)


def plan_of(scan: RegistryExtraction, url: str, untag: str) -> pd.DataFrame:
    return helpers.plan_of(scan, url, keep_tags="/v.*/", untag=untag)


async def mixed(client: RegistryClient) -> dict[str, str]:
    """v1.0.0 shares its digest with latest and branch-a; v2.0.0 is alone; a multi-arch
    index tagged v3.0.0 and tmp-3; old-1 and its signature go."""
    arm = await push_image(client, "app", [], created=OLD, seed="arm", platform=("linux", "arm64"))
    amd = await push_image(client, "app", [], created=OLD, seed="amd")
    old = await push_image(client, "app", ["old-1"], created=OLD, seed="old")
    return {
        "v1": await push_image(client, "app", ["v1.0.0", "latest", "branch-a"], created=OLD),
        "v2": await push_image(client, "app", ["v2.0.0"], created=OLD, seed="2"),
        "v3": await push_index(
            client,
            "app",
            ["v3.0.0", "tmp-3"],
            [(arm, ("linux", "arm64")), (amd, ("linux", "amd64"))],
        ),
        "old": old,
        "sig": await push_image(
            client, "app", [f"sha256-{old[7:]}.sig"], created=OLD, seed="sig", oci=True
        ),
    }


def outcomes(results: pd.DataFrame) -> dict[str, str]:
    return {
        ",".join(tags): outcome
        for tags, outcome in zip(results["tags"], results["outcome"], strict=True)
    }


def test_overwrite_untags_the_tags_beside_kept_ones_and_restore_puts_them_back(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    async def build() -> tuple[dict[str, str], RegistryExtraction]:
        async with RegistryClient(registry.url) as client:
            digests = await mixed(client)
            return digests, await scan_registry(client, ["app"])

    digests, scan = asyncio.run(build())
    plan = plan_of(scan, registry.url, "overwrite")
    actions = dict(zip(plan["tag"], plan["action"], strict=True))
    assert {t for t, a in actions.items() if a == "untag"} == {"latest", "branch-a", "tmp-3"}

    async def run() -> pd.DataFrame:
        async with RegistryClient(registry.url) as client:
            return await execute_plan(
                client,
                plan,
                scan,
                DeleteRequest(
                    apply=True, ledger_path=str(tmp_path / "l.jsonl"), untag="overwrite", force=True
                ),
            )

    results = asyncio.run(run())
    by_tags = outcomes(results)
    assert by_tags["latest"] == by_tags["branch-a"] == by_tags["tmp-3"] == "untagged"
    assert by_tags["old-1"] == "deleted"
    # the judge: skopeo lists exactly the kept tags and pulls each completely (the index's
    # children included); the untagged digests still resolve by digest
    assert assert_every_tag_pulls(registry.url, ["app"]) == {"app": ["v1.0.0", "v2.0.0", "v3.0.0"]}

    async def after() -> list[str]:
        async with RegistryClient(registry.url) as client:
            for name in ("v1", "v3"):
                await get_manifest(client, "app", digests[name])
            records = restorable(tmp_path / "l.jsonl", registry.url, RestoreFilter())
            untags = [r for r in records if r.action == "untag"]
            assert {r.tags[0] for r in untags} == {"latest", "branch-a", "tmp-3"}
            assert all(r.placeholder for r in untags)
            await restore(client, untags)
            return [
                str(await resolve_tag(client, "app", t)) for t in ("latest", "branch-a", "tmp-3")
            ]

    assert asyncio.run(after()) == [digests["v1"], digests["v1"], digests["v3"]]
    assert "latest" in assert_every_tag_pulls(registry.url, ["app"])["app"]
    # the ledger: pending (with the kept digest's manifest) then done, per untag
    states = [
        (r.action, r.tags[0], r.state)
        for r in read_ledger(tmp_path / "l.jsonl")
        if r.action == "untag"
    ]
    assert sorted(states) == sorted(
        [("untag", t, s) for t in ("latest", "branch-a", "tmp-3") for s in ("pending", "done")]
    )


def test_api_on_distribution_2_8_keeps_the_tags_and_says_how_to_untag(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    async def go() -> pd.DataFrame:
        async with RegistryClient(registry.url) as client:
            await push_image(client, "app", ["v1.0.0", "latest"], created=OLD)
            assert not await vendor_of(client).deletes_tags(
                "app"
            )  # 2.8 answers 400 to DELETE by tag
            scan = await scan_registry(client, ["app"])
            plan = plan_of(scan, registry.url, "api")
            request = DeleteRequest(apply=True, ledger_path=str(tmp_path / "l.jsonl"))
            return await execute_plan(client, plan, scan, request)

    results = asyncio.run(go())
    assert results[["tags", "outcome"]].to_dict(orient="records") == [
        {"tags": ["latest"], "outcome": "skipped-unsupported"}
    ]
    assert results["detail"].iloc[0] == UNSUPPORTED_HINT
    assert skopeo_tags(registry.url, "app") == ["latest", "v1.0.0"]
    assert not (tmp_path / "l.jsonl").exists() or not list(read_ledger(tmp_path / "l.jsonl"))


def test_a_tag_moved_after_the_plan_is_left_where_it_now_points(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    async def go() -> tuple[str, pd.DataFrame]:
        async with RegistryClient(registry.url) as client:
            await push_image(client, "app", ["v1.0.0", "latest"], created=OLD)
            scan = await scan_registry(client, ["app"])
            plan = plan_of(scan, registry.url, "overwrite")
            moved = await push_image(client, "app", ["latest"], created=NOW, seed="new")  # CI
            request = DeleteRequest(
                apply=True, ledger_path=str(tmp_path / "l.jsonl"), untag="overwrite"
            )
            return moved, await execute_plan(client, plan, scan, request)

    moved, results = asyncio.run(go())
    assert outcomes(results) == {"latest": "skipped-moved"}
    assert moved in results["detail"].iloc[0]
    assert skopeo_tags(registry.url, "app") == ["latest", "v1.0.0"]


def test_a_failed_overwrite_points_the_tag_back(registry: LocalRegistry, tmp_path: Path) -> None:
    """The placeholder is PUT, its DELETE refused (403 from a proxy, after the probe saw
    deletes enabled): the tag must not be left on the placeholder."""

    def refuse(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if method == "DELETE" and IMPOSSIBLE_DIGEST not in path:
            body = b'{"errors": [{"code": "DENIED", "message": "no"}]}'
            return 403, {"Content-Type": "application/json"}, body
        return None

    with RegistryProxy(registry.url, intercept=refuse) as proxy:

        async def go() -> tuple[str, pd.DataFrame, str | None]:
            async with RegistryClient(proxy.url) as client:
                digest = await push_image(client, "app", ["v1.0.0", "latest"], created=OLD)
                scan = await scan_registry(client, ["app"])
                plan = plan_of(scan, proxy.url, "overwrite")
                request = DeleteRequest(
                    apply=True, ledger_path=str(tmp_path / "l.jsonl"), untag="overwrite"
                )
                results = await execute_plan(client, plan, scan, request)
                return digest, results, await resolve_tag(client, "app", "latest")

        digest, results, now = asyncio.run(go())
    assert outcomes(results) == {"latest": "failed"}
    assert f"pointed back at {digest}" in results["detail"].iloc[0]
    assert now == digest
    assert assert_every_tag_pulls(registry.url, ["app"]) == {"app": ["latest", "v1.0.0"]}
    [pending, failed] = [r for r in read_ledger(tmp_path / "l.jsonl")]
    assert (pending.state, failed.state, pending.action) == ("pending", "failed", "untag")


def test_with_deletes_disabled_no_placeholder_is_ever_put(tmp_path: Path) -> None:
    """Deletes disabled: a placeholder PUT under the tag could not be deleted, and every
    pull of the tag until it was pointed back would get an empty image. Asked first, so
    the tag is never touched: skipped-unsupported, saying why."""
    with (
        LocalRegistry(tmp_path / "reg", deletes=False) as registry,
        RegistryProxy(registry.url) as proxy,
    ):

        async def go() -> pd.DataFrame:
            async with RegistryClient(proxy.url) as client:
                await push_image(client, "app", ["v1.0.0", "latest", "pr-1"], created=OLD)
                scan = await scan_registry(client, ["app"])
                plan = plan_of(scan, proxy.url, "overwrite")
                before = proxy.count("PUT")
                request = DeleteRequest(
                    apply=True, ledger_path=str(tmp_path / "l.jsonl"), untag="overwrite"
                )
                results = await execute_plan(client, plan, scan, request)
                assert proxy.count("PUT") == before  # no placeholder, ever
                return results

        results = asyncio.run(go())
        assert outcomes(results) == {"latest": "skipped-unsupported", "pr-1": "skipped-unsupported"}
        assert "deletes disabled" in results["detail"].iloc[0]
        assert proxy.count("DELETE") == 1  # the probe, of a digest that cannot exist
        assert not (tmp_path / "l.jsonl").exists() or not read_ledger(tmp_path / "l.jsonl")
        assert assert_every_tag_pulls(registry.url, ["app"]) == {
            "app": ["latest", "pr-1", "v1.0.0"]
        }


def test_the_placeholder_is_unique_and_names_the_tag() -> None:
    from tasks.delete.untag import placeholder_manifest

    one, two = placeholder_manifest("app", "latest"), placeholder_manifest("app", "latest")
    assert one != two
    assert b"app:latest" in one and PLACEHOLDER_ANNOTATION.encode() in one


@pytest.mark.parametrize(
    ("status", "body", "deletes"),
    [
        (404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]}, True),  # 3.0: no such tag
        (202, {}, True),
        (400, {"errors": [{"code": "UNSUPPORTED"}]}, False),  # 2.8.3+
        (405, {}, False),
    ],
)
def test_the_tag_delete_probe_reads_the_spec_answers(
    status: int, body: dict[str, Any], deletes: bool
) -> None:
    seen: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return httpx.Response(status, json=body)

    async def go() -> bool:
        async with RegistryClient(
            "http://reg.test", transport=httpx.MockTransport(answer)
        ) as client:
            return await vendor_of(client).deletes_tags("app")

    assert asyncio.run(go()) is deletes
    [(method, path)] = seen
    assert method == "DELETE" and path.startswith("/v2/app/manifests/regsweep-probe-tag-delete-")


def test_a_placeholder_delete_that_took_only_the_manifest_is_done_again(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """The registry's first answer to the placeholder's DELETE is lost after it removed the
    manifest but not the tag (Distribution 2.8 under concurrent tag writes; here a proxy
    removes the revision and answers 500). The retried DELETE gets 404: the tag would name
    nothing, and still be listed. The untag PUTs the placeholder again and deletes it."""
    root = repositories_root(registry) / "app" / "_manifests" / "revisions" / "sha256"
    hit: list[str] = []

    def half_delete(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if method == "DELETE" and IMPOSSIBLE_DIGEST not in path and not hit:
            digest = path.rsplit("/", 1)[1]
            hit.append(digest)
            (root / digest.removeprefix("sha256:") / "link").unlink()
            return 500, {"Content-Type": "text/plain"}, b"lost"
        return None

    with RegistryProxy(registry.url, intercept=half_delete) as proxy:

        async def go() -> pd.DataFrame:
            async with RegistryClient(proxy.url, retry=RetryPolicy(backoff=0.01)) as client:
                await push_image(client, "app", ["v1.0.0", "latest"], created=OLD)
                scan = await scan_registry(client, ["app"])
                plan = plan_of(scan, proxy.url, "overwrite")
                request = DeleteRequest(
                    apply=True, ledger_path=str(tmp_path / "l.jsonl"), untag="overwrite"
                )
                return await execute_plan(client, plan, scan, request)

        results = asyncio.run(go())
    assert hit and outcomes(results) == {"latest": "untagged"}
    assert assert_every_tag_pulls(registry.url, ["app"]) == {"app": ["v1.0.0"]}
