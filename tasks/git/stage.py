"""The Git stage for a configuration (plain, no Prefect: `task.py` wraps it)."""

from __future__ import annotations

from pathlib import Path

from tasks.core.config import Config
from tasks.core.home import regsweep_home
from tasks.core.secrets import secret_value
from tasks.git.extract import GitExtraction, extract_git
from tasks.git.mirror import GitCredentials, sync_mirror


def read_git(config: Config) -> GitExtraction:
    """Extract refs and commits of the configured clone, or of the mirror of `git.url`."""
    git = config.git
    if git is None:
        raise ValueError("git is not configured")
    if git.url is None:
        assert git.path is not None  # the config model requires exactly one
        return extract_git(git.path, git.remote)
    password = (
        secret_value(git.password_secret, "git.passwordSecret") if git.password_secret else ""
    )
    cache = Path(git.cache).expanduser() if git.cache else regsweep_home() / "git"
    mirror = sync_mirror(git.url, cache, GitCredentials.from_environment(password))
    return extract_git(mirror)
