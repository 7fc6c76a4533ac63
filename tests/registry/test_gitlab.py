"""GitLab (registry.kind: gitlab) against a loopback fake of its container registry API
(tests/servers/gitlab_api.py, from GitLab's API documentation) over the real registry:
repositories listed by group (no catalog), tags deleted through the API, protected tags
kept (`protected`) and never attempted, plan -> apply -> restore. Not tested against a real
GitLab."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from tasks.core.config import load_config, parse_config
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tasks.registry.errors import AuthenticationFailed
from tasks.registry.retry import RetryPolicy
from tasks.registry.vendors import registry_kind
from tasks.registry.vendors.gitlab import GitLabRegistry
from tests.cli import run_cli
from tests.registry.vendors import push, serving, vendor_config
from tests.servers.gitlab_api import GitLabFake, repository_id
from tests.servers.http_proxy import RegistryProxy
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

TOKEN = "glpat-fake-token-for-the-loopback-fake"
OLD = datetime.now(UTC) - timedelta(days=30)
RULE = {
    "id": 1,
    "project_id": 7,
    "tag_name_pattern": r"^v\d+",
    "minimum_access_level_for_push": "maintainer",
    "minimum_access_level_for_delete": "owner",
}


@pytest.fixture
def gitlab(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GitLabFake, RegistryProxy]]:
    monkeypatch.setenv("REGSWEEP_GITLAB_TOKEN", TOKEN)
    with serving(
        GitLabFake(registry, TOKEN, {"acme/web": 7, "acme/tools": 8}, {7: [RULE]}).start()
    ) as served:
        yield served


def write_config(root: Path, oci: RegistryProxy, fake: GitLabFake) -> Path:
    return vendor_config(root, oci, "gitlab", f"{fake.url}/api/v4", ["acme/*"], "/release-.*/")


def test_plan_apply_restore_with_protected_tags_through_gitlabs_api(
    registry: LocalRegistry, gitlab: tuple[GitLabFake, RegistryProxy], tmp_path: Path
) -> None:
    fake, oci = gitlab
    digests = push(
        registry.url,
        {
            "acme/web:1": ["v1.0.0", "latest"],
            "acme/web:2": ["pr-1"],
            "acme/web/worker:1": ["pr-2"],
            "acme/tools:1": ["release-1"],
        },
    )
    config = load_config(write_config(tmp_path, oci, fake))
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    table = planned.plan.table.set_index(["repository", "tag"])
    assert table.loc[("acme/web", "v1.0.0"), ["action", "reason"]].tolist() == [
        "keep",
        "protected",
    ]
    assert table.loc[("acme/web", "latest"), "action"] == "untag"
    assert table.loc[("acme/web", "pr-1"), "action"] == "delete"
    assert table.loc[("acme/web/worker", "pr-2"), "action"] == "delete"
    assert table.loc[("acme/tools", "release-1"), "reason"] == "keep-tag"
    [why] = planned.plan.evidence[("acme/web", digests["acme/web:1"])]
    assert why == r"protected: tag v1.0.0: GitLab protection rule /^v\d+/ (delete: owner)"

    ledger = tmp_path / "ledger.jsonl"
    request = DeleteRequest(apply=True, ledger_path=str(ledger), force=True)
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    outcomes = dict(zip(results["tags"].map(tuple), results["outcome"], strict=True))
    assert outcomes == {("latest",): "untagged", ("pr-1",): "deleted", ("pr-2",): "deleted"}
    web, worker = repository_id("acme/web"), repository_id("acme/web/worker")
    deletes = sorted(p for m, p in fake.requests if m == "DELETE")
    assert deletes == [
        f"/api/v4/projects/7/registry/repositories/{web}/tags/latest",
        f"/api/v4/projects/7/registry/repositories/{web}/tags/pr-1",
        f"/api/v4/projects/7/registry/repositories/{worker}/tags/pr-2",
    ]
    assert not any("v1.0.0" in p for p in deletes)  # protected: never attempted
    assert oci.count("DELETE") == 2  # the two untagged manifests, by digest
    assert not any(e.path.startswith("/v2/_catalog") and e.status == 200 for e in oci.exchanges)
    assert assert_every_tag_pulls(registry.url, ["acme/web", "acme/tools"]) == {
        "acme/web": ["v1.0.0"],
        "acme/tools": ["release-1"],
    }

    restored = run_cli("restore", "--ledger", str(ledger), env=dict(os.environ))
    assert restored.returncode == 0, restored.stderr
    assert skopeo_tags(registry.url, "acme/web") == ["latest", "pr-1", "v1.0.0"]
    assert skopeo_tags(registry.url, "acme/web/worker") == ["pr-2"]
    print("\nGitLab API requests:", *(f"{m} {p}" for m, p in fake.requests), sep="\n  ")


def test_unreadable_protection_rules_leave_the_repository_untouched(
    registry: LocalRegistry, gitlab: tuple[GitLabFake, RegistryProxy], tmp_path: Path
) -> None:
    fake, oci = gitlab
    push(registry.url, {"acme/tools:1": ["pr-9"]})
    fake.rules[8] = [{"tag_name_pattern": "(unclosed", "minimum_access_level_for_delete": "x"}]
    config = load_config(write_config(tmp_path, oci, fake))
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    # a rule Python cannot read protects every tag: fail closed
    assert planned.plan.table["reason"].tolist() == ["protected"]
    fake.rules_denied = True  # the token may list, not read the rules
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    assert planned.registry.incomplete() == ["acme/tools"]
    request = DeleteRequest(apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True)
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    assert set(results["outcome"]) <= {"skipped-incomplete"}
    assert skopeo_tags(registry.url, "acme/tools") == ["pr-9"]


def test_a_429_is_waited_out_and_a_refused_token_names_the_variable(
    registry: LocalRegistry, gitlab: tuple[GitLabFake, RegistryProxy]
) -> None:
    fake, _ = gitlab
    push(registry.url, {"acme/web:1": ["a"], "acme/web/x:1": ["b"]})
    fake.limit_every = 2

    async def go(token: str) -> list[str]:
        api = GitLabRegistry(f"{fake.url}/api/v4", token=token, retry=RetryPolicy(scale=0.01))
        try:
            return await api.group_repositories("acme")
        finally:
            await api.aclose()

    assert asyncio.run(go(TOKEN)) == ["acme/web", "acme/web/x"]
    assert any(m == "GET" for m, _ in fake.requests)
    with pytest.raises(AuthenticationFailed, match="REGSWEEP_GITLAB_TOKEN"):
        asyncio.run(go("wrong"))


def test_gitlab_com_is_detected_with_its_api_and_self_managed_asks_for_one() -> None:
    no_git = {"kubernetes": {"enabled": False}, "cleanup": {"disableGitHistoryBasedPolicy": True}}
    com = registry_kind(
        parse_config({"registry": {"url": "https://registry.gitlab.com"}, **no_git})
    )
    assert (com.name, com.api) == ("gitlab", "https://gitlab.com/api/v4")
    own = registry_kind(parse_config({"registry": {"url": "https://gitlab.corp:5050"}, **no_git}))
    assert (own.name, own.api) == ("gitlab", "")
    assert re.search(r"set registry\.api", own.describe())
    assert "the OCI distribution API" in own.deletes_through
