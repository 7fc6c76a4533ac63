"""The delete stage for a configuration (plain, no Prefect: `task.py` wraps it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.cluster.stage import read_cluster
from tasks.core.aio import run_sync
from tasks.core.config import Config
from tasks.core.progress import DeleteProgress
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.delete.recheck import InUse
from tasks.registry.extract import RegistryExtraction
from tasks.registry.stage import make_client


def read_in_use(config: Config) -> InUse:
    """The cluster's images in this registry (or an alias), read now."""
    return InUse.from_cluster(read_cluster(config), config.registry.names)


def run_deletion(
    config: Config,
    plan: pd.DataFrame,
    registry: RegistryExtraction,
    request: DeleteRequest,
    progress: DeleteProgress | None = None,
) -> pd.DataFrame:
    """Execute the plan (a dry run unless `request.apply`); return the results table."""

    async def go() -> pd.DataFrame:
        async with make_client(config) as client:
            return await execute_plan(client, plan, registry, request, progress)

    return run_sync(go())


def run_marker(ledger_path: Path, flow_run_id: str) -> Path:
    """The file that proves a task sees the flow's ledger directory: per-repository delete
    tasks refuse to delete unless they find it (their ledger would be lost otherwise)."""
    return ledger_path.parent / f".regsweep-run-{flow_run_id or 'local'}"
