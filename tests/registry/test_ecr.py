"""Amazon ECR (registry.kind: ecr) through boto3 against a loopback fake of ECR's API
(tests/servers/ecr_api.py, from botocore's service model) over the real registry:
repositories by DescribeRepositories (no catalog), BatchDeleteImage by digest and by tag
(untag), archived images protected, a multi-arch index deleted before its children,
throttling retried, plan -> apply -> restore. Not tested against AWS."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.demo.images import push_image, push_index
from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from tasks.core.config import load_config, parse_config
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tasks.registry.client import RegistryClient
from tasks.registry.vendors import registry_kind
from tests.cli import run_cli
from tests.registry.vendors import OLD, aws_test_credentials, push, serving, vendor_config
from tests.servers.ecr_api import EcrFake
from tests.servers.http_proxy import RegistryProxy
from tests.skopeo import assert_every_tag_pulls, skopeo_tags


@pytest.fixture
def ecr(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[EcrFake, RegistryProxy]]:
    aws_test_credentials(monkeypatch)
    with serving(EcrFake(registry).start()) as served:
        yield served


def write_config(root: Path, oci: RegistryProxy, fake: EcrFake) -> Path:
    return vendor_config(root, oci, "ecr", fake.url, ["team/*"], "/v.*/")


def test_plan_apply_restore_through_batch_delete_image(
    registry: LocalRegistry, ecr: tuple[EcrFake, RegistryProxy], tmp_path: Path
) -> None:
    fake, oci = ecr

    async def index() -> str:
        async with RegistryClient(registry.url) as client:
            arm = await push_image(
                client, "team/app", [], created=OLD, seed="arm", platform=("linux", "arm64")
            )
            amd = await push_image(client, "team/app", [], created=OLD, seed="amd")
            return await push_index(
                client, "team/app", ["pr-3"], [(arm, ("linux", "arm64")), (amd, ("linux", "amd64"))]
            )

    multiarch = asyncio.run(index())
    digests = push(
        registry.url,
        {
            "team/app:1": ["v1.0.0", "latest"],
            "team/app:2": ["pr-1"],
            "team/app:old": ["v0.1.0"],
            "team/api:1": ["pr-2"],
        },
    )
    fake.archived.add(digests["team/app:old"])  # in the archive storage class: left alone
    fake.limit_every = 5  # botocore retries ThrottlingException
    config = load_config(write_config(tmp_path, oci, fake))
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    table = planned.plan.table.set_index(["repository", "tag"])
    assert table.loc[("team/app", "latest"), "action"] == "untag"
    assert table.loc[("team/app", "pr-1"), "action"] == "delete"
    assert table.loc[("team/app", "pr-3"), "action"] == "delete"
    assert "protected" in table.loc[("team/app", "v0.1.0"), "reasons"]

    ledger = tmp_path / "ledger.jsonl"
    request = DeleteRequest(apply=True, ledger_path=str(ledger), force=True)
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    by_digest = dict(zip(results["digest"], results["outcome"], strict=True))
    assert by_digest[digests["team/app:2"]] == by_digest[digests["team/api:1"]] == "deleted"
    assert by_digest[multiarch] == "deleted"  # the index first, then its children
    assert set(results["outcome"]) == {"deleted", "untagged"}
    assert oci.count("DELETE") == 0  # ECR: BatchDeleteImage, never the OCI DELETE
    deletes = [repo for op, repo in fake.requests if op == "BatchDeleteImage"]
    assert len(deletes) == 6  # latest (tag), pr-1, pr-2, the index and its 2 children
    assert fake.throttled > 0  # and the throttled ones were retried
    assert assert_every_tag_pulls(registry.url, ["team/app"]) == {"team/app": ["v0.1.0", "v1.0.0"]}
    assert skopeo_tags(registry.url, "team/api") == []

    restored = run_cli("restore", "--ledger", str(ledger), env=dict(os.environ))
    assert restored.returncode == 0, restored.stderr
    assert skopeo_tags(registry.url, "team/app") == ["latest", "pr-1", "pr-3", "v0.1.0", "v1.0.0"]
    assert "pr-3" in assert_every_tag_pulls(registry.url, ["team/app"])["team/app"]
    print("\nECR API requests:", *(f"{op} {repo}" for op, repo in fake.requests), sep="\n  ")


def test_ecr_hosts_are_detected_and_the_kind_says_how_it_deletes() -> None:
    url = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    no_git = {"kubernetes": {"enabled": False}, "cleanup": {"disableGitHistoryBasedPolicy": True}}
    kind = registry_kind(parse_config({"registry": {"url": url}, **no_git}))
    assert kind.name == "ecr" and "BatchDeleteImage" in kind.deletes_through
