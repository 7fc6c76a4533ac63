"""The cluster stage as a cached Prefect task (the work is in `tasks.cluster.stage`)."""

from __future__ import annotations

import pandas as pd
from prefect import task

from tasks.cluster.stage import read_cluster
from tasks.core.config import Config
from tasks.core.task_options import EXTRACTION_TASK_OPTIONS


@task(name="extract_cluster", **EXTRACTION_TASK_OPTIONS)
def extract_cluster_task(config: Config, snapshot: str) -> pd.DataFrame:
    """Prefect task: `read_cluster`; `snapshot` keys the cache."""
    return read_cluster(config)
