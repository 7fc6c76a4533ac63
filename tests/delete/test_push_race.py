"""The push race on the real registry: a proxy holds each DELETE while CI pushes a tag onto
the manifest being deleted and onto the other members of its closure. A push onto a member
still to come is seen by the listing right before that member's DELETE; a push onto the
manifest being deleted is inside the window no cleaner can close by polling (Distribution
has no conditional DELETE): lost without notifications, healed from the step's own bytes
with them (`pulls.watchPushes`). skopeo judges every pushed tag."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.core import mediatypes
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tests.delete.helpers import OLD, plan_of
from tests.pulls.test_service import Service, notifications
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.skopeo import skopeo_tags


async def _closures(client: RegistryClient) -> dict[str, str]:
    """Two subjects, each with a signature by the tag scheme (closure: subject, then .sig),
    and a kept image."""
    out = {"keep": await push_image(client, "r", ["keep-1"], created=OLD, seed="k")}
    for name in ("a", "b"):
        subject = await push_image(client, "r", [f"old-{name}"], created=OLD, seed=name)
        sig_tag = f"sha256-{subject.removeprefix('sha256:')}.sig"
        out[name] = subject
        out[f"{name}.sig"] = await push_image(
            client, "r", [sig_tag], created=OLD, seed=f"{name}-sig", oci=True
        )
    return out


@pytest.mark.parametrize("watch_pushes", [True, False], ids=["notifications", "polling-only"])
def test_tags_pushed_while_a_closure_is_deleted(tmp_path: Path, watch_pushes: bool) -> None:
    database = f"sqlite:///{tmp_path / 'pulls.db'}"
    with Service(database, heartbeat_seconds=0.3) as service:
        extra = notifications(service) if watch_pushes else ""
        with LocalRegistry(tmp_path / "registry", extra_config=extra) as registry:
            lost, kept, outcomes = _race(registry, tmp_path, database if watch_pushes else "")
    assert outcomes.get("healed", 0) == (3 if watch_pushes else 0)
    if watch_pushes:
        assert lost == set(), "with notifications no pushed tag is lost"
    else:  # exactly the pushes onto the manifest whose DELETE was already on its way
        assert lost == {"ci-a", "ci-b", "ci-b.sig"}
    assert {"ci-a.sig"} <= kept  # pushed onto a member still to come: its DELETE was cancelled


def _race(
    registry: LocalRegistry, tmp_path: Path, pushes: str
) -> tuple[set[str], set[str], dict[str, int]]:
    """Run the delete step through a proxy that holds each DELETE while CI pushes; return
    the pushed tags lost and kept, and the step's outcomes."""

    async def push() -> dict[str, str]:
        async with RegistryClient(registry.url) as client:
            return await _closures(client)

    digests = asyncio.run(push())
    names = {d: n for n, d in digests.items()}
    raw = {
        d: httpx.get(
            f"{registry.url}/v2/r/manifests/{d}", headers={"Accept": mediatypes.ACCEPT}
        ).content
        for d in digests.values()
    }
    pushed: list[str] = []
    lock = threading.Lock()

    def tag(name: str) -> None:
        digest = digests[name]
        media = httpx.get(
            f"{registry.url}/v2/r/manifests/{digest}", headers={"Accept": mediatypes.ACCEPT}
        ).headers["content-type"]
        answer = httpx.put(
            f"{registry.url}/v2/r/manifests/ci-{name}",
            content=raw[digest],
            headers={"Content-Type": media},
        )
        assert answer.status_code == 201, answer.text
        pushed.append(f"ci-{name}")

    def hold_each_delete(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if method != "DELETE":
            return None
        name = names.get(path.rsplit("/", 1)[-1])
        with lock:
            if name == "a":  # onto the manifest being deleted and onto its signature
                tag("a")
                tag("a.sig")
            elif name in ("b", "b.sig"):  # onto the manifest being deleted, each level
                tag(name)
        return None

    with RegistryProxy(registry.url, intercept=hold_each_delete) as proxy:

        async def run() -> dict[str, int]:
            async with RegistryClient(proxy.url) as client:
                scan = await scan_registry(client, ["r"])
                plan = plan_of(scan, proxy.url)
                doomed = set(plan.loc[plan["action"] == "delete", "digest"])
                assert doomed == {digests[n] for n in ("a", "a.sig", "b", "b.sig")}
                request = DeleteRequest(
                    apply=True,
                    ledger_path=str(tmp_path / "ledger.jsonl"),
                    max_delete_fraction=1.0,
                    pushes=pushes,
                )
                results = await execute_plan(client, plan, scan, request)
                print(results[["digest", "outcome", "detail"]].to_string())
                return {str(k): int(v) for k, v in results["outcome"].value_counts().items()}

        outcomes = asyncio.run(run())
    listed = set(skopeo_tags(registry.url, "r"))
    assert "keep-1" in listed
    assert not listed & {"old-a", "old-b"}, "a heal never brings back what the plan deleted"
    assert len(pushed) == 4, pushed
    lost = {t for t in pushed if t not in listed}
    return lost, {t for t in pushed if t in listed}, outcomes
