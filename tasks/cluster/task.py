"""Cluster extraction for a configuration, as a cached Prefect task."""

from __future__ import annotations

import pandas as pd
from prefect import task

from tasks.cluster.extract import extract_cluster
from tasks.core.config import Config
from tasks.core.task_options import EXTRACTION_TASK_OPTIONS


def read_cluster(config: Config) -> pd.DataFrame:
    """Extract the images in use in the configured contexts and namespaces."""
    k8s = config.kubernetes
    return extract_cluster(
        k8s.kubeconfig,
        k8s.contexts,
        k8s.namespaces,
        k8s.helm_revisions,
        keep_finished_jobs=k8s.finished_jobs == "keep",
    )


@task(name="extract_cluster", **EXTRACTION_TASK_OPTIONS)
def extract_cluster_task(config: Config, snapshot: str) -> pd.DataFrame:
    """Prefect task: `read_cluster`; `snapshot` keys the cache."""
    return read_cluster(config)
