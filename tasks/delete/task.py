"""The delete step for a configuration, as Prefect tasks (never cached).

`delete_task` deletes the whole plan in one task. For a flow fanned out on Dask, the step is
split: `settle_task` applies the guards in the flow, then one `delete_repository_task` per
repository re-checks and deletes it wherever the task runner puts it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.aio import run_sync
from tasks.delete.errors import DeletionRefused
from tasks.delete.ledger import Ledger
from tasks.delete.loader import (
    Progress,
    Settled,
    Target,
    delete_repository,
    execute_plan,
    settle_targets,
    tags_by_repository,
)
from tasks.policy.config import Config
from tasks.progress import deletion_progress
from tasks.registry.extract import RegistryExtraction
from tasks.registry.read import make_client


def run_deletion(
    config: Config,
    plan: pd.DataFrame,
    registry: RegistryExtraction,
    *,
    apply: bool,
    ledger_path: Path,
    force: bool = False,
    flow_run_id: str = "",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Execute the plan (a dry run unless `apply`); return the results table."""

    async def go() -> pd.DataFrame:
        async with make_client(config) as client:
            return await execute_plan(
                client,
                plan,
                registry.tags,
                apply=apply,
                ledger=Ledger(ledger_path) if apply else None,
                incomplete=registry.incomplete(),
                max_delete_fraction=config.safety.max_delete_fraction,
                force=force,
                flow_run_id=flow_run_id,
                progress=progress,
            )

    return run_sync(go())


@task(name="delete", cache_policy=NO_CACHE)
def delete_task(
    config: Config,
    plan: pd.DataFrame,
    registry: RegistryExtraction,
    apply: bool,
    ledger_path: str,
    force: bool,
    flow_run_id: str,
) -> pd.DataFrame:
    """Prefect task: `run_deletion`, logging progress every tenth of the digests."""
    return run_deletion(
        config,
        plan,
        registry,
        apply=apply,
        ledger_path=Path(ledger_path),
        force=force,
        flow_run_id=flow_run_id,
        progress=deletion_progress(get_run_logger()),
    )


def run_marker(ledger_path: Path, flow_run_id: str) -> Path:
    """The file that proves a task sees the flow's ledger directory: per-repository delete
    tasks refuse to delete unless they find it (their ledger would be lost otherwise)."""
    return ledger_path.parent / f".regsweep-run-{flow_run_id or 'local'}"


@task(name="settle_deletions", cache_policy=NO_CACHE)
def settle_task(
    config: Config,
    plan: pd.DataFrame,
    registry: RegistryExtraction,
    apply: bool,
    ledger_path: str,
    force: bool,
    flow_run_id: str,
) -> tuple[Settled, dict[str, list[str]]]:
    """Prefect task: the guards of the delete step (`settle_targets`) without a request.

    Returns the settled digests and, per repository to delete in, its tags at the scan.
    When there is something to delete, writes the run marker beside the ledger.
    """
    settled = settle_targets(
        plan,
        apply=apply,
        incomplete=registry.incomplete(),
        max_delete_fraction=config.safety.max_delete_fraction,
        force=force,
    )
    scanned = tags_by_repository(registry.tags)
    if settled.live:
        marker = run_marker(Path(ledger_path), flow_run_id)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(flow_run_id + "\n", encoding="utf-8")
    return settled, {repo: sorted(scanned.get(repo, set())) for repo in settled.live}


@task(name="delete_repository", task_run_name="delete in {repository}", cache_policy=NO_CACHE)
def delete_repository_task(
    config: Config,
    repository: str,
    targets: list[Target],
    scanned_tags: list[str],
    ledger_path: str,
    flow_run_id: str,
) -> list[dict[str, object]]:
    """Prefect task: re-check and delete one repository's targets (`delete_repository`).

    Refuses with `DeletionRefused` when the ledger's directory is not the flow's (a Dask
    worker on another machine without the shared volume): no ledger, no delete.
    """
    ledger = Path(ledger_path)
    if not run_marker(ledger, flow_run_id).exists():
        raise DeletionRefused(
            f"the ledger {ledger} is not on a filesystem this worker shares with the flow "
            f"(no {run_marker(ledger, flow_run_id).name} beside it); put the ledger on a volume "
            "every Dask worker mounts, or run without --task-runner dask"
        )
    logger = get_run_logger()

    async def go() -> list[dict[str, object]]:
        async with make_client(config) as client:
            return await delete_repository(
                client, repository, targets, set(scanned_tags), Ledger(ledger), flow_run_id
            )

    out = run_sync(go())
    logger.info(
        "delete: %s: %d deleted of %d",
        repository,
        sum(r["outcome"] == "deleted" for r in out),
        len(out),
    )
    return out
