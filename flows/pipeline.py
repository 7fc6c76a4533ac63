"""The stage order, written once: registry, Git, cluster, pull records, keep list, plan.

The flow runs each stage as a cached Prefect task, `regsweep plan` and `explain` run them in
this process, and a what-if replan reads them from a run's saved inputs; all three call
`compute_plan` with their own `Stages`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tasks.core.config import Config
from tasks.core.progress import ScanProgress
from tasks.core.restored import RestoredImage
from tasks.policy.stage import make_plan, read_keep_list, read_restores

if TYPE_CHECKING:  # imported where used: `regsweep plan` imports pandas during its scan
    import pandas as pd

    from tasks.git.extract import GitExtraction
    from tasks.policy.plan import Plan
    from tasks.pulls.records import PullRecords
    from tasks.registry.frames import RegistryExtraction

    PlanStep = Callable[
        [
            Config,
            RegistryExtraction,
            GitExtraction | None,
            pd.DataFrame | None,
            datetime,
            list[str],
            PullRecords | None,
            list[RestoredImage] | None,
        ],
        Plan,
    ]


@dataclass(frozen=True)
class Stages:
    """How each stage is run for a configuration."""

    registry: Callable[[Config], RegistryExtraction]
    git: Callable[[Config], GitExtraction | None]
    cluster: Callable[[Config], pd.DataFrame | None]
    keep_list: Callable[[Config], list[str]] = read_keep_list
    plan: PlanStep = make_plan
    pulls: Callable[[Config], PullRecords | None] = lambda _: None
    restored: Callable[[Config], list[RestoredImage]] = read_restores


@dataclass(frozen=True)
class Planned:
    """The plan and what it was computed from (the flow saves these for what-if replans)."""

    plan: Plan
    registry: RegistryExtraction
    git: GitExtraction | None
    cluster: pd.DataFrame | None
    keep_list: list[str]
    pulls: PullRecords | None = None
    restored: list[RestoredImage] = field(default_factory=list)


def compute_plan(config: Config, now: datetime, stages: Stages) -> Planned:
    """Run the stages in order; Git and the cluster only when the configuration uses them.
    The keep list is read once, so the plan and the saved inputs agree."""
    registry = stages.registry(config)
    git = stages.git(config) if config.uses_git else None
    cluster = stages.cluster(config) if config.uses_kubernetes else None
    pulls = stages.pulls(config) if config.uses_pulls else None
    keep_list = stages.keep_list(config)
    restored = stages.restored(config)
    plan = stages.plan(config, registry, git, cluster, now, keep_list, pulls, restored)
    return Planned(plan, registry, git, cluster, keep_list, pulls, restored)


def local_stages(progress: ScanProgress | None = None) -> Stages:
    """Every stage in this process, without Prefect (`regsweep plan`, `explain`).

    Each stage is imported when it runs (Kubernetes' client and SQLAlchemy only when the
    configuration uses them), and pandas imports on another thread while the registry scan
    waits on the network (tasks.core.preload)."""
    from tasks.core import preload
    from tasks.registry.stage import read_registry

    preload.start()

    def git(config: Config) -> GitExtraction | None:
        preload.wait()
        from tasks.git.stage import read_git

        return read_git(config)

    def cluster(config: Config) -> pd.DataFrame | None:
        preload.wait()
        from tasks.cluster.stage import read_cluster

        return read_cluster(config)

    def pulls(config: Config) -> PullRecords | None:
        preload.wait()
        from tasks.pulls.stage import read_pulls

        return read_pulls(config)

    return Stages(
        registry=lambda config: read_registry(config, progress),
        git=git,
        cluster=cluster,
        pulls=pulls,
    )


def parse_now(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without zone is UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
