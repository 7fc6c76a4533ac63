"""The delete stage for a configuration (plain, no Prefect: `task.py` wraps it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from tasks.cluster.stage import read_cluster
from tasks.core.aio import run_sync
from tasks.core.config import Config
from tasks.core.frames import column_rows
from tasks.core.progress import DeleteProgress
from tasks.delete.ledger import Ledger
from tasks.delete.loader import DeleteRequest, execute_plan, results_frame
from tasks.delete.recheck import InUse
from tasks.delete.reconcile import Damage, assess, reconcile
from tasks.delete.verify import (
    Verdict,
    cluster_needs,
    plan_needs,
    resolve_all,
    restore_missing,
    verify,
)
from tasks.registry.client import RegistryClient
from tasks.registry.extract import resolve_repositories
from tasks.registry.frames import RegistryExtraction
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


def run_reconcile(
    config: Config,
    registry: RegistryExtraction,
    ledger_path: str | None,
    flow_run_id: str = "",
    repair_unexplained: bool = False,
) -> tuple[pd.DataFrame, Damage]:
    """Finish what earlier runs' crashes cut short (`tasks.delete.reconcile`): with a
    `ledger_path` for real, else as a dry run; return the result rows and what was found.
    Repositories whose listing was incomplete are left alone."""
    incomplete = set(registry.incomplete())
    found = column_rows(registry.dangling, "repository", "tag")
    dangling = [(r, t) for r, t in found if r not in incomplete]

    async def go() -> tuple[pd.DataFrame, Damage]:
        async with make_client(config) as client:
            damage = assess(client, dangling, skip=Path(ledger_path) if ledger_path else None)
            if not (damage.dangling or damage.open_records):
                return results_frame([]), damage
            ledger = Ledger(ledger_path) if ledger_path else None
            rows = await reconcile(client, damage, ledger, flow_run_id, repair_unexplained)
            return results_frame(rows), damage

    return run_sync(go())


def run_verify(
    config: Config,
    plan: pd.DataFrame,
    registry: RegistryExtraction,
    in_use: InUse | None,
    ledger_path: str,
    flow_run_id: str = "",
) -> Verdict:
    """Re-read what must survive the run (`tasks.delete.verify`) in the repositories the
    scan read whole, put back from the run's ledger whatever it removed of that, and finish
    at once a deletion of ours that left tags naming nothing (a crash during this very
    step); return the verdict."""
    seen = set(column_rows(registry.images, "repository", "digest"))
    seen |= set(column_rows(registry.tags, "repository", "tag"))
    needed = plan_needs(plan) + (cluster_needs(in_use, seen) if in_use is not None else [])
    # A repository the scan could not read whole fails the run already (exit 3), untouched.
    incomplete = set(registry.incomplete())
    needed = [n for n in needed if n.repository not in incomplete]
    repositories = [str(r) for r in registry.status["repository"] if r not in incomplete]

    async def go() -> Verdict:
        async with make_client(config) as client:
            verdict = await verify(client, repositories, needed)
            if verdict.dangling:
                damage = assess(client, verdict.dangling, skip=Path(ledger_path))
                if damage.explained:
                    ledger = Ledger(ledger_path)
                    explained = replace(damage, unexplained={})
                    rows = await reconcile(client, explained, ledger, flow_run_id)
                    verdict = verdict.after_repairs(rows)
            return await restore_missing(client, verdict, ledger_path)

    return run_sync(go())


async def _selected(client: RegistryClient, config: Config) -> list[str]:
    return await resolve_repositories(client, config.registry.repositories, config.registry.exclude)


def verify_registry(config: Config) -> Verdict:
    """`regsweep verify`: every tag of the configured repositories names a manifest, and
    every image the cluster uses in this registry is there (`tasks.delete.verify`). Raises
    `ClusterError` when the cluster cannot be read, `RegistryError` when the repository list
    cannot."""
    in_use = read_in_use(config) if config.uses_kubernetes else None
    needed = cluster_needs(in_use) if in_use is not None else []

    async def go() -> Verdict:
        async with make_client(config) as client:
            return await verify(client, await _selected(client, config), needed)

    return run_sync(go())


def repair_registry(
    config: Config, ledger_path: str | None, flow_run_id: str = "repair"
) -> tuple[pd.DataFrame, Damage]:
    """`regsweep repair`: find every tag that names nothing in the configured repositories
    and remove it, explained by a ledger of ours or not (only with a `ledger_path`; else
    what it would do); close earlier ledgers' open records. Returns the result rows and what
    was found."""

    async def go() -> tuple[pd.DataFrame, Damage]:
        async with make_client(config) as client:
            dangling = []
            for repository in await _selected(client, config):
                _, tags = await resolve_all(client, repository)
                dangling += [(repository, tag) for tag in tags]
            damage = assess(client, dangling)
            ledger = Ledger(ledger_path) if ledger_path else None
            rows = await reconcile(client, damage, ledger, flow_run_id, repair_unexplained=True)
            return results_frame(rows), damage

    return run_sync(go())
