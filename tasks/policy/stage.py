"""The plan stage for a configuration (plain, no Prefect: `task.py` wraps it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.config import Config
from tasks.core.errors import ConfigError
from tasks.core.restored import RestoredImage, read_restored

if TYPE_CHECKING:  # the plan's pandas is imported when a plan is made (tasks.core.preload)
    import pandas as pd

    from tasks.git.extract import GitExtraction
    from tasks.policy.plan import Plan
    from tasks.pulls.records import PullRecords
    from tasks.registry.frames import RegistryExtraction


def read_keep_list(config: Config) -> list[str]:
    """Return the image references in `cleanup.keepList` (one a line; # comments)."""
    path = config.cleanup.keep_list
    if path is None:
        return []
    try:
        lines = Path(path).expanduser().read_text().splitlines()
    except OSError as exc:
        raise ConfigError("cleanup.keepList", f"cannot read {path}: {exc.strerror}") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def read_restores(config: Config) -> list[RestoredImage]:
    """What `regsweep restore` put back in the configured registry (`tasks.core.restored`)."""
    return read_restored(config.registry.host)


def make_plan(
    config: Config,
    registry: RegistryExtraction,
    git: GitExtraction | None,
    cluster: pd.DataFrame | None,
    now: datetime,
    keep_list: list[str],
    pulls: PullRecords | None = None,
    restored: list[RestoredImage] | None = None,
) -> Plan:
    """Build the plan from the stage outputs, the keep list (`read_keep_list`) and what was
    restored (`read_restores`)."""
    from tasks.policy.plan import build_plan
    from tasks.policy.state import PlanInputs

    inputs = PlanInputs(
        images=registry.images,
        tags=registry.tags,
        index_edges=registry.index_edges,
        refs=git.refs if git is not None else None,
        commits=git.commits if git is not None else None,
        cluster=cluster,
        keep_list=keep_list,
        pulls=pulls,
        protected=registry.protected,
        pushed=registry.pushed,
        restored=restored or [],
    )
    return build_plan(inputs, config, config.registry.host, now)
