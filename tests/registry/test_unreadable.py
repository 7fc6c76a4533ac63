"""A manifest or config regsweep cannot parse is kept and reported, never deleted, and the
rest of its repository is still cleaned. A garbled answer no digest vouches for still marks
the repository incomplete."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from flows.demo.images import push_image, tag_image, upload_blob
from flows.demo.registry_server import LocalRegistry
from tasks.core import mediatypes
from tasks.core.config import parse_config
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.policy.plan import build_plan
from tasks.policy.state import PlanInputs
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tasks.registry.frames import RegistryExtraction

NOW = datetime(2026, 11, 20, tzinfo=UTC)
EMPTY_CONFIG = "sha256:" + hashlib.sha256(b"{}").hexdigest()
GOOD = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": EMPTY_CONFIG, "size": 2},
        "layers": [],
    }
).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def mock_registry(manifests: dict[str, tuple[bytes, bool]]) -> httpx.MockTransport:
    """tags -> (manifest bytes, whether the registry sends Docker-Content-Digest)."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/tags/list"):
            return httpx.Response(200, json={"name": "r", "tags": sorted(manifests)})
        if "/blobs/" in path:
            return httpx.Response(200, content=b"{}")
        if "/referrers/" in path:
            return httpx.Response(404)
        tag = path.rsplit("/", 1)[1]
        body, vouched = next(
            (m for t, m in manifests.items() if t == tag or digest_of(m[0]) == tag)
        )
        headers = {"Content-Type": "application/vnd.example.thing"}
        if vouched:
            headers["Docker-Content-Digest"] = digest_of(body)
        return httpx.Response(200, content=body, headers=headers)

    return httpx.MockTransport(handler)


def scan(transport: httpx.MockTransport) -> RegistryExtraction:
    async def go() -> RegistryExtraction:
        async with RegistryClient("http://reg.test", transport=transport) as client:
            return await scan_registry(client, ["r"])

    return asyncio.run(go())


@pytest.mark.parametrize(
    "garbage",
    [b"\x89PNG not json", b'["a", "list"]', b'{"mediaType": "application/vnd.example.v9"}'],
    ids=["not-json", "not-an-object", "unknown-media-type"],
)
def test_unparseable_manifest_with_a_vouched_digest_is_kept_and_reported(garbage: bytes) -> None:
    extraction = scan(mock_registry({"good": (GOOD, True), "odd": (garbage, True)}))
    assert extraction.status["complete"].all()
    images = extraction.images.set_index("digest")
    assert images.loc[digest_of(garbage), "error"].startswith("r:odd: ")
    assert images.loc[digest_of(garbage), "media_type"] == "application/vnd.example.thing"
    assert images.loc[digest_of(GOOD), "error"] == ""
    assert dict(zip(extraction.tags["tag"], extraction.tags["digest"], strict=True)) == {
        "good": digest_of(GOOD),
        "odd": digest_of(garbage),
    }

    config = parse_config(
        {
            "registry": {"url": "http://reg.test"},
            "cleanup": {"disableGitHistoryBasedPolicy": True, "unlinked": "delete"},
            "kubernetes": {"enabled": False},
        }
    )
    plan = build_plan(
        PlanInputs(extraction.images, extraction.tags, extraction.index_edges),
        config,
        "reg.test",
        NOW,
    ).table.set_index("tag")
    assert plan.loc["odd", "action"] == "keep"
    assert plan.loc["odd", "reason"] == "unreadable"
    assert plan.loc["good", "action"] == "delete"  # the rest of the repository is cleaned


def test_garbled_answer_without_a_digest_marks_the_repository_incomplete() -> None:
    extraction = scan(mock_registry({"good": (GOOD, True), "odd": (b"<html>oops</html>", False)}))
    status = extraction.status.set_index("repository")
    assert not status.loc["r", "complete"]
    assert "odd" in status.loc["r", "error"]


def test_config_that_is_not_json_is_kept_on_the_real_registry(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """A real registry stores any config bytes: the image whose config is not JSON is kept
    by the plan (reason unreadable) and survives `--apply`, while an old unlinked image
    beside it is deleted."""
    config = parse_config(
        {
            "registry": {"url": registry.url},
            "cleanup": {"disableGitHistoryBasedPolicy": True, "unlinked": "delete"},
            "kubernetes": {"enabled": False},
        }
    )

    async def go() -> tuple[str, str, pd.DataFrame, RegistryExtraction]:
        async with RegistryClient(registry.url) as client:
            old = await push_image(client, "r", ["old"], created=NOW - timedelta(days=90))
            blob = b"\x00binary config\xff"
            await upload_blob(client, "r", blob)
            body = {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.example.config",
                    "digest": digest_of(blob),
                    "size": len(blob),
                },
                "layers": [],
            }
            odd = await tag_image(client, "r", "odd", json.dumps(body).encode())
            scanned = await scan_registry(client, ["r"])
            plan = build_plan(
                PlanInputs(scanned.images, scanned.tags, scanned.index_edges),
                config,
                registry.url,
                NOW,
            ).table
            await execute_plan(
                client,
                plan,
                scanned,
                DeleteRequest(
                    apply=True, ledger_path=str(tmp_path / "ledger.jsonl"), max_delete_fraction=1.0
                ),
            )
            return old, odd, plan, await scan_registry(client, ["r"])

    _, odd, plan, after = asyncio.run(go())
    by_tag = plan.set_index("tag")
    assert by_tag.loc["odd", "reason"] == "unreadable"
    assert by_tag.loc["old", "action"] == "delete"
    assert set(after.images["digest"]) == {odd}
    assert after.images.iloc[0]["error"].endswith("is not a JSON object")
