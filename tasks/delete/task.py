"""The delete step as Prefect tasks, never cached (the work is in `tasks.delete.stage`).

`delete_task` deletes the whole plan in one task. For a flow fanned out on Dask, the step is
split: `settle_task` applies the guards in the flow, then one `delete_repository_task` per
repository re-checks and deletes it wherever the task runner puts it. Both run the same
`delete_repository`. `in_use_task` reads the cluster again, uncached, right before deleting.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.core.aio import run_sync
from tasks.core.config import Config
from tasks.core.progress import deletion_progress
from tasks.delete.closure import Closure
from tasks.delete.errors import DeletionRefused
from tasks.delete.ledger import Ledger
from tasks.delete.loader import (
    DeleteRequest,
    RepositoryScan,
    Settled,
    delete_repository,
    settle_closures,
)
from tasks.delete.recheck import InUse
from tasks.delete.reconcile import Damage
from tasks.delete.stage import read_in_use, run_deletion, run_marker, run_reconcile, run_verify
from tasks.delete.untag import UntagTarget
from tasks.delete.verify import Verdict
from tasks.registry.frames import RegistryExtraction
from tasks.registry.stage import make_client


@task(name="recheck_cluster", cache_policy=NO_CACHE)
def in_use_task(config: Config) -> InUse:
    """Prefect task: `read_in_use`, never cached (the whole point is a fresh read)."""
    return read_in_use(config)


@task(name="reconcile", cache_policy=NO_CACHE)
def reconcile_task(
    config: Config, registry: RegistryExtraction, ledger_path: str | None, flow_run_id: str
) -> tuple[pd.DataFrame, Damage]:
    """Prefect task: `run_reconcile` (tags naming nothing, earlier runs' open records)."""
    return run_reconcile(config, registry, ledger_path, flow_run_id)


@task(name="verify", cache_policy=NO_CACHE)
def verify_task(
    config: Config,
    plan: pd.DataFrame,
    registry: RegistryExtraction,
    in_use: InUse | None,
    ledger_path: str,
    flow_run_id: str,
) -> Verdict:
    """Prefect task: `run_verify`, after the delete step."""
    verdict = run_verify(config, plan, registry, in_use, ledger_path, flow_run_id)
    get_run_logger().info(
        "verify: %d repositories, %d tags, %d needed images read: %s",
        verdict.repositories,
        verdict.tags,
        verdict.needed,
        "whole" if verdict.whole else f"{len(verdict.lines())} problem(s)",
    )
    return verdict


@task(name="delete", cache_policy=NO_CACHE)
def delete_task(
    config: Config, plan: pd.DataFrame, registry: RegistryExtraction, request: DeleteRequest
) -> pd.DataFrame:
    """Prefect task: `run_deletion`, logging progress every tenth of the digests."""
    return run_deletion(config, plan, registry, request, deletion_progress(get_run_logger()))


@task(name="settle_deletions", cache_policy=NO_CACHE)
def settle_task(
    plan: pd.DataFrame, registry: RegistryExtraction, request: DeleteRequest
) -> Settled:
    """Prefect task: the guards of the delete step (`settle_closures`) without a request.

    When there is something to delete, writes the run marker beside the ledger.
    """
    settled = settle_closures(plan, registry, request)
    if settled.repositories:
        marker = run_marker(Path(request.ledger_path), request.flow_run_id)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(request.flow_run_id + "\n", encoding="utf-8")
    return settled


@task(name="delete_repository", task_run_name="delete in {repository}", cache_policy=NO_CACHE)
def delete_repository_task(
    config: Config,
    repository: str,
    closures: list[Closure],
    scanned: RepositoryScan,
    request: DeleteRequest,
    untags: list[UntagTarget] | None = None,
) -> list[dict[str, object]]:
    """Prefect task: re-check and delete one repository's closures, then untag its
    untags (`delete_repository`).

    Refuses with `DeletionRefused` when the ledger's directory is not the flow's (a Dask
    worker on another machine without the shared volume): no ledger, no delete.
    """
    ledger = Path(request.ledger_path)
    marker = run_marker(ledger, request.flow_run_id)
    if not marker.exists():
        raise DeletionRefused(
            f"the ledger {ledger} is not on a filesystem this worker shares with the flow "
            f"(no {marker.name} beside it); put the ledger on a volume "
            "every Dask worker mounts, or run without --task-runner dask"
        )
    logger = get_run_logger()

    async def go() -> list[dict[str, object]]:
        async with make_client(config) as client:
            return await delete_repository(
                client, closures, scanned, Ledger(ledger), request, untags=untags
            )

    out = run_sync(go())
    logger.info(
        "delete: %s: %d deleted of %d",
        repository,
        sum(r["outcome"] == "deleted" for r in out),
        len(out),
    )
    return out
