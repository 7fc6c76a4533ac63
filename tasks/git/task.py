"""Git extraction for a configuration, as a cached Prefect task."""

from __future__ import annotations

from prefect import task

from tasks.caching import EXTRACTION_TASK_OPTIONS
from tasks.git.extract import GitExtraction, extract_git
from tasks.policy.config import Config


def read_git(config: Config) -> GitExtraction:
    """Extract refs and commits of the configured repository."""
    if config.git is None or config.git.path is None:
        raise ValueError("git.path is not configured")
    return extract_git(config.git.path, config.git.remote)


@task(name="extract_git", **EXTRACTION_TASK_OPTIONS)
def extract_git_task(config: Config, snapshot: str) -> GitExtraction:
    """Prefect task: `read_git`; `snapshot` keys the cache."""
    return read_git(config)
