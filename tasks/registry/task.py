"""Registry extraction as cached Prefect tasks (the work is in `tasks.registry.stage`)."""

from __future__ import annotations

from prefect import get_run_logger, task

from tasks.core.config import Config
from tasks.core.progress import scan_progress
from tasks.core.task_options import EXTRACTION_TASK_OPTIONS
from tasks.registry.frames import RegistryExtraction
from tasks.registry.stage import list_registry, read_registry, scan_some


@task(name="extract_registry", **EXTRACTION_TASK_OPTIONS)
def extract_registry_task(config: Config, snapshot: str) -> RegistryExtraction:
    """Prefect task: `read_registry`; `snapshot` (the run's "now") keys the cache. Logs each
    repository as it completes."""
    return read_registry(config, scan_progress(get_run_logger()))


@task(name="list_repositories", **EXTRACTION_TASK_OPTIONS)
def list_repositories_task(config: Config, snapshot: str) -> tuple[list[str], bool]:
    """Prefect task: `list_registry`, cached on (configuration, snapshot) like the scan, so a
    rerun fans out over the same repositories."""
    return list_registry(config)


@task(name="scan_repository", task_run_name="scan {names}", **EXTRACTION_TASK_OPTIONS)
def scan_repositories_task(
    config: Config, snapshot: str, names: list[str], warm: bool
) -> RegistryExtraction:
    """Prefect task: scan the repositories `names`, one task per repository when the flow
    fans out on Dask. Cached per (configuration, snapshot, names)."""
    return scan_some(config, names, warm)
