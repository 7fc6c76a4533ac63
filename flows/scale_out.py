"""Scale out: the `--task-runner` choice and the per-repository fan-out it enables.

`threads` (the default) runs the flow as one process: the registry scan uses
`registry.processes` and the delete step handles repositories concurrently in one task.
`dask` (a temporary local Dask cluster) or `dask=ADDRESS` (a running scheduler) fans the
registry scan and the delete step out as one Prefect task per repository, each running on
whichever Dask worker is free. Deployments pick it with `REGSWEEP_TASK_RUNNER`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, unmapped
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect_dask.task_runners import DaskTaskRunner

from tasks.core.config import Config
from tasks.core.progress import deletion_progress, scan_progress
from tasks.delete.loader import DeleteRequest, results_frame
from tasks.delete.stage import run_marker
from tasks.delete.task import delete_repository_task, settle_task
from tasks.registry.frames import RegistryExtraction
from tasks.registry.stage import scan_in_shares
from tasks.registry.task import list_repositories_task, scan_repositories_task

TASK_RUNNER_ENV = "REGSWEEP_TASK_RUNNER"


class TaskRunnerChoiceError(ValueError):
    """A `--task-runner` / REGSWEEP_TASK_RUNNER value that names no task runner."""


def task_runner_from_option(option: str, source: str = "--task-runner") -> TaskRunner[Any]:
    """`threads`, `dask` or `dask=ADDRESS` (e.g. `dask=tcp://scheduler:8786`); `source`
    names where the value came from in the error for anything else."""
    name, equals, address = option.partition("=")
    if name == "threads" and not equals:
        return ThreadPoolTaskRunner()
    if name == "dask" and not (equals and not address):
        return DaskTaskRunner(address=address) if address else DaskTaskRunner()
    raise TaskRunnerChoiceError(
        f"{source} must be threads, dask or dask=ADDRESS (a scheduler address), not {option!r}"
    )


def default_task_runner() -> TaskRunner[Any]:
    """The flow's task runner: REGSWEEP_TASK_RUNNER if set (deployments), else threads."""
    return task_runner_from_option(os.environ.get(TASK_RUNNER_ENV) or "threads", TASK_RUNNER_ENV)


def dask_slots() -> int:
    """How many tasks the current flow run's Dask cluster runs at once; 0 without Dask."""
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    if not isinstance(runner, DaskTaskRunner):
        return 0
    return max(1, sum(runner.client.nthreads().values()))  # type: ignore[no-untyped-call]


def extract_registry_fanned_out(config: Config, snapshot: str, slots: int) -> RegistryExtraction:
    """The registry scan as one task per repository on the flow's task runner, `slots` of
    them at once (`scan_in_shares`, as the process pool does it)."""
    names, warm = list_repositories_task(config, snapshot)

    def on_dask(
        config: Config, shares: list[list[str]], warm: bool
    ) -> Iterator[RegistryExtraction]:
        futures = scan_repositories_task.map(
            unmapped(config), unmapped(snapshot), shares, unmapped(warm)
        )
        return _completed(futures)

    return scan_in_shares(
        config,
        names,
        warm,
        shares=len(names),
        at_once=slots,
        scan=on_dask,
        progress=scan_progress(get_run_logger()),
    )


def delete_fanned_out(
    config: Config, plan: pd.DataFrame, registry: RegistryExtraction, request: DeleteRequest
) -> pd.DataFrame:
    """The delete step as one task per repository on the flow's task runner.

    The guards run first, once, in the flow (`settle_task`); every repository task writes
    the same ledger, which must be on a filesystem all Dask workers share.
    """
    logger = get_run_logger()
    settled = settle_task(plan, registry, request)
    results = list(settled.results)
    if settled.repositories:
        repositories = settled.repositories
        futures = delete_repository_task.map(
            unmapped(config),
            repositories,
            [settled.live.get(r, []) for r in repositories],
            [settled.scans[r] for r in repositories],
            unmapped(request),
            [settled.untags.get(r, []) for r in repositories],
        )
        progress = deletion_progress(logger)
        try:
            for out in _completed(futures):
                results.extend(out)
                progress(len(results) - len(settled.results), settled.live_count)
        finally:
            run_marker(Path(request.ledger_path), request.flow_run_id).unlink(missing_ok=True)
    return results_frame(results)


def _completed(futures: Iterable[PrefectFuture[Any]]) -> Iterator[Any]:
    """Yield results as the tasks finish. A failure is raised only after every task has
    finished, so no repository is left running unseen when the flow stops."""
    error: Exception | None = None
    for future in as_completed(list(futures)):
        try:
            result = future.result()
        except Exception as exc:
            error = error or exc
        else:
            yield result
    if error is not None:
        raise error
