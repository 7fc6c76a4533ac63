"""Azure Container Registry (registry.kind: acr, detected from *.azurecr.io): its locked
manifests and tags (deleteEnabled: false), read from the fake's /acr/v1 metadata API
(tests/servers/acr_api.py, from the ACR runtime REST description) on the registry's own
host, are kept as `protected` and never sent; the rest is deleted through the OCI API.
Not tested against Azure."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from tasks.core.config import load_config, parse_config
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tasks.registry.vendors import acr, registry_kind
from tests.registry.vendors import push, vendor_config
from tests.servers.acr_api import AcrFake
from tests.servers.http_proxy import RegistryProxy
from tests.skopeo import assert_every_tag_pulls


@pytest.fixture
def azure(registry: LocalRegistry) -> Iterator[tuple[AcrFake, RegistryProxy]]:
    fake = AcrFake(registry)
    with fake.oci() as oci:
        yield fake, oci


def test_locked_manifests_and_tags_are_protected_and_never_sent(
    registry: LocalRegistry,
    azure: tuple[AcrFake, RegistryProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, oci = azure
    monkeypatch.setattr(acr, "PAGE", 2)  # several pages of each listing
    digests = push(
        registry.url,
        {
            "team/app:locked": ["pr-1", "pr-1b"],
            "team/app:tag": ["pr-2", "pr-2b"],
            "team/app:gone": ["pr-3"],
            "team/app:kept": ["v1.0.0"],
        },
    )
    fake.locked |= {digests["team/app:locked"], "pr-2"}
    config = load_config(vendor_config(tmp_path, oci, "acr", "", ["team/app"], "/v.*/"))
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    table = planned.plan.table.set_index("tag")
    assert table.loc["pr-1", ["action", "reason"]].tolist() == ["keep", "protected"]
    assert table.loc["pr-1b", "reason"] == "protected"  # the whole manifest is locked
    assert table.loc["pr-2", ["action", "reason"]].tolist() == ["keep", "protected"]
    assert table.loc["pr-2b", "action"] == "untag"  # its digest is kept for the locked tag
    assert table.loc["pr-3", "action"] == "delete"
    request = DeleteRequest(apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True)
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    assert sorted(results["outcome"]) == ["deleted", "skipped-unsupported"]  # 2.8: no tag DELETE
    refused = [e for e in oci.exchanges if e.method == "DELETE" and e.status == 405 and e.injected]
    assert not refused  # nothing locked was ever sent
    assert assert_every_tag_pulls(registry.url, ["team/app"]) == {
        "team/app": ["pr-1", "pr-1b", "pr-2", "pr-2b", "v1.0.0"]
    }


def test_azurecr_hosts_are_detected() -> None:
    no_git = {"kubernetes": {"enabled": False}, "cleanup": {"disableGitHistoryBasedPolicy": True}}
    kind = registry_kind(parse_config({"registry": {"url": "https://acme.azurecr.io"}, **no_git}))
    assert (kind.name, kind.how) == ("acr", "detected from acme.azurecr.io")
