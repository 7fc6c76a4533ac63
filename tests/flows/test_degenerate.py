"""Degenerate registries and plans: nothing to scan, nothing left, nothing to delete, one
image. A nightly run against a clean registry must succeed, not crash (issue #13, item 3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from flows.cleanup import cleanup
from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.registry.client import RegistryClient
from tasks.registry.manifest import delete_manifest
from tests.cli import run_cli

OLD = datetime.now(UTC) - timedelta(days=30)
NOW = datetime.now(UTC).isoformat()


def write_config(path: Path, url: str, repositories: list[str], keep_tags: list[str]) -> Path:
    path.write_text(
        f"registry: {{url: '{url}', repositories: {repositories!r}}}\n"
        "kubernetes: {enabled: false}\n"
        f"cleanup: {{disableGitHistoryBasedPolicy: true, unlinked: delete, keepTags: {keep_tags!r},"
        " keepImagesBuiltWithinLastNHours: 1}\n"
        "safety: {maxDeleteFraction: 1}\n"
    )
    return path


async def _push(url: str, repository: str, tags: list[str], delete_after: bool = False) -> None:
    async with RegistryClient(url) as client:
        digests = [
            await push_image(client, repository, [tag], created=OLD, seed=tag) for tag in tags
        ]
        if delete_after:  # the catalog still lists the repository; tags/list says null
            for digest in digests:
                await delete_manifest(client, repository, digest)


@pytest.mark.parametrize(
    ("repositories", "pushed", "keep_tags", "kept", "deleted"),
    [
        (["nothing/*"], {}, [], 0, 0),
        (["empty/*"], {"empty/app": []}, [], 0, 0),
        (["gone"], {"gone": "deleted"}, [], 0, 0),
        (["app"], {"app": ["v1", "v2", "v3"]}, ["/.*/"], 3, 0),
        (["app"], {"app": ["only"]}, [], 0, 1),
        (["app"], {"app": ["a", "b"]}, [], 0, 2),
    ],
    ids=["glob-matches-nothing", "no-tags", "tags-null", "all-kept", "one-deleted", "all-deleted"],
)
def test_plan_of_degenerate_registry_exits_0(
    tmp_path: Path,
    registry: LocalRegistry,
    repositories: list[str],
    pushed: dict[str, object],
    keep_tags: list[str],
    kept: int,
    deleted: int,
) -> None:
    for repository, tags in pushed.items():
        if tags == "deleted":
            asyncio.run(_push(registry.url, repository, ["x"], delete_after=True))
        else:
            asyncio.run(_push(registry.url, repository, list(tags)))  # type: ignore[arg-type]
    config = write_config(tmp_path / "c.yaml", registry.url, repositories, keep_tags)
    out = tmp_path / "plan.parquet"
    done = run_cli("plan", "--config", str(config), "--now", NOW, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    plan = pd.read_parquet(out)
    decisions = plan.drop_duplicates(["repository", "digest"])
    assert (decisions["action"] == "keep").sum() == kept
    assert (decisions["action"] == "delete").sum() == deleted
    if not pushed:
        assert "matched no repository" in done.stderr


def test_run_apply_with_nothing_to_delete_completes(
    prefect_harness: None, tmp_path: Path, registry: LocalRegistry
) -> None:
    asyncio.run(_push(registry.url, "app", ["v1", "v2"]))
    asyncio.run(_push(registry.url, "gone", ["x"], delete_after=True))
    config = write_config(tmp_path / "c.yaml", registry.url, ["*"], ["/.*/"])
    result = cleanup(config_path=str(config), apply=True, now=NOW)
    assert result.outcomes == {}
    assert {row["repository"]: row["kept"] for row in result.summary} == {"app": 2}
