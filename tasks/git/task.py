"""Git extraction for a configuration, as a cached Prefect task."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from tasks.git.extract import GitExtraction, extract_git
from tasks.policy.config import Config


def read_git(config: Config) -> GitExtraction:
    """Extract refs and commits of the configured repository."""
    if config.git is None or config.git.path is None:
        raise ValueError("git.path is not configured")
    return extract_git(config.git.path, config.git.remote)


@task(
    name="extract_git",
    retries=1,
    retry_delay_seconds=10,
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
    cache_expiration=timedelta(days=2),
)
def extract_git_task(config: Config, snapshot: str) -> GitExtraction:
    """Prefect task: `read_git`; `snapshot` keys the cache."""
    return read_git(config)
