"""The cluster stage for a configuration (plain, no Prefect: `task.py` wraps it)."""

from __future__ import annotations

import pandas as pd

from tasks.cluster.extract import extract_cluster
from tasks.core.config import Config


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
