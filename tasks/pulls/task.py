"""The pull-record stage as a cached Prefect task (the work is in `tasks.pulls.stage`)."""

from __future__ import annotations

from prefect import task

from tasks.core.config import Config
from tasks.core.task_options import EXTRACTION_TASK_OPTIONS
from tasks.pulls.records import PullRecords
from tasks.pulls.stage import read_pulls


@task(name="extract_pulls", **EXTRACTION_TASK_OPTIONS)
def extract_pulls_task(config: Config, snapshot: str) -> PullRecords:
    """Prefect task: `read_pulls`; `snapshot` keys the cache."""
    return read_pulls(config)
