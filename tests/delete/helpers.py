"""Shared by the delete tests: a small repository `r` and a plan over its tags."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from flows.demo.images import push_image
from tasks.core.config import parse_config
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.policy.plan import build_plan
from tasks.policy.state import PlanInputs
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tasks.registry.frames import RegistryExtraction

OLD = datetime.now(UTC) - timedelta(days=30)
NOW = datetime.now(UTC)


def plan_rows(tags: pd.DataFrame, delete: set[str]) -> pd.DataFrame:
    rows = [
        {
            "repository": r,
            "digest": d,
            "tag": t,
            "media_type": "application/vnd.docker.distribution.manifest.v2+json",
            "action": "delete" if t in delete else "keep",
            "reason": "no-policy" if t in delete else "keep-tag",
        }
        for r, t, d in zip(tags["repository"], tags["tag"], tags["digest"], strict=True)
    ]
    return pd.DataFrame(rows)


async def setup(client: RegistryClient) -> dict[str, str]:
    return {
        "a": await push_image(client, "r", ["a"], created=OLD, seed="a"),
        "shared": await push_image(client, "r", ["keep-me", "drop-me"], created=OLD, seed="s"),
        "b": await push_image(client, "r", ["b"], created=OLD, seed="b"),
        "c": await push_image(client, "r", ["c"], created=OLD, seed="c"),
    }


async def scan_and_delete(
    client: RegistryClient,
    delete: set[str],
    ledger: Path,
    *,
    max_delete_fraction: float = 0.8,
    force: bool = False,
    between: Callable[[], Awaitable[None]] | None = None,
) -> pd.DataFrame:
    """Scan repository `r` and apply a plan deleting the digests of the tags `delete`;
    `between` runs after the scan, before the delete step (what happens meanwhile)."""
    scan = await scan_registry(client, ["r"])
    if between is not None:
        await between()
    return await execute_plan(
        client,
        plan_rows(scan.tags, delete),
        scan,
        DeleteRequest(
            apply=True,
            ledger_path=str(ledger),
            max_delete_fraction=max_delete_fraction,
            force=force,
        ),
    )


def plan_of(
    scan: RegistryExtraction, url: str, keep_tags: str = "/keep-.*/", untag: str = "api"
) -> pd.DataFrame:
    """The real plan: keep tags matching `keep_tags` (`keep-*`), delete every other
    (unlinked, old) image; tags beside kept ones by `untag` (cleanup.untag)."""
    config = parse_config(
        {
            "registry": {"url": url},
            "kubernetes": {"enabled": False},
            "cleanup": {
                "disableGitHistoryBasedPolicy": True,
                "unlinked": "delete",
                "keepTags": [keep_tags],
                "keepImagesBuiltWithinLastNHours": 1,
                "untag": untag,
            },
        }
    )
    inputs = PlanInputs(scan.images, scan.tags, scan.index_edges)
    return build_plan(inputs, config, url.split("://", 1)[1], NOW).table
