"""The delete step for a configuration, as a Prefect task (never cached)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.aio import run_sync
from tasks.delete.ledger import Ledger
from tasks.delete.loader import Progress, execute_plan
from tasks.policy.config import Config
from tasks.progress import deletion_progress
from tasks.registry.extract import RegistryExtraction
from tasks.registry.task import make_client


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
