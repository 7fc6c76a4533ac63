"""The Git stage as a cached Prefect task (the work is in `tasks.git.stage`)."""

from __future__ import annotations

from prefect import task

from tasks.core.config import Config
from tasks.core.task_options import EXTRACTION_TASK_OPTIONS
from tasks.git.extract import GitExtraction
from tasks.git.stage import read_git


@task(name="extract_git", **EXTRACTION_TASK_OPTIONS)
def extract_git_task(config: Config, snapshot: str) -> GitExtraction:
    """Prefect task: `read_git`; `snapshot` keys the cache."""
    return read_git(config)
