"""Harbor (registry.kind: harbor): its immutable tags, read from the fake's /api/v2.0
artifacts listing (tests/servers/harbor_api.py, from Harbor's REST description) on the
registry's own host, are kept as `protected` and never sent; a nested repository name is
encoded twice. Not tested against a real Harbor."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from tasks.core.config import load_config
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tasks.registry.client import RegistryClient
from tasks.registry.vendors import harbor
from tests.registry.vendors import OLD, push, vendor_config
from tests.servers.harbor_api import HarborFake
from tests.skopeo import assert_every_tag_pulls


def test_immutable_tags_are_protected_and_never_sent(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harbor, "PAGE_SIZE", 1)  # a page per artifact
    push(
        registry.url,
        {
            "library/app/web:frozen": ["release-candidate", "rc-copy"],
            "library/app/web:gone": ["pr-1"],
            "library/app/web:kept": ["v1.0.0"],
        },
    )
    fake = HarborFake(registry, immutable={"release-candidate"})
    with fake.oci() as oci:
        config = load_config(
            vendor_config(tmp_path, oci, "harbor", "", ["library/app/web"], "/v.*/")
        )
        planned = compute_plan(config, datetime.now(UTC), local_stages())
        table = planned.plan.table.set_index("tag")
        assert table.loc["release-candidate", ["action", "reason"]].tolist() == [
            "keep",
            "protected",
        ]
        assert table.loc["rc-copy", "action"] == "untag"
        assert table.loc["pr-1", "action"] == "delete"
        request = DeleteRequest(apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True)
        results = run_deletion(config, planned.plan.table, planned.registry, request)
        assert sorted(results["outcome"]) == ["deleted", "skipped-unsupported"]
        assert not [e for e in oci.exchanges if e.status == 412]  # nothing immutable sent
        listed = [e.path for e in oci.exchanges if e.path.startswith("/api/v2.0/")]
        assert listed and all("/repositories/app%252Fweb/artifacts" in p for p in listed)
        assert len(listed) == 3  # one artifact a page
    assert assert_every_tag_pulls(registry.url, ["library/app/web"]) == {
        "library/app/web": ["rc-copy", "release-candidate", "v1.0.0"]
    }


def test_an_immutable_signature_tag_outlives_its_deleted_subject(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """A referrer shares its subject's decision, but not past a vendor protection: the
    subject goes, its cosign-style signature (tag `sha256-<hex>.sig`, immutable in Harbor)
    stays and is never sent; skopeo still pulls it."""

    async def go() -> tuple[str, str]:
        async with RegistryClient(registry.url) as client:
            subject = await push_image(client, "library/web", ["pr-7"], created=OLD, seed="s")
            tag = f"sha256-{subject[7:]}.sig"
            signature = await push_image(
                client, "library/web", [tag], created=OLD, seed="sig", oci=True, subject=subject
            )
            return tag, signature

    tag, signature = asyncio.run(go())
    fake = HarborFake(registry, immutable={tag})
    with fake.oci() as oci:
        config = load_config(vendor_config(tmp_path, oci, "harbor", "", ["library/web"], "/v.*/"))
        planned = compute_plan(config, datetime.now(UTC), local_stages())
        table = planned.plan.table.set_index("tag")
        assert table.loc["pr-7", "action"] == "delete"
        assert table.loc[tag, ["action", "reason", "digest"]].tolist() == [
            "keep",
            "protected",
            signature,
        ]
        request = DeleteRequest(apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True)
        results = run_deletion(config, planned.plan.table, planned.registry, request)
        assert results["outcome"].tolist() == ["deleted"]
        sent = [e.path for e in oci.exchanges if e.method == "DELETE"]
        assert sent and not any(signature in path for path in sent)
    assert assert_every_tag_pulls(registry.url, ["library/web"]) == {"library/web": [tag]}
