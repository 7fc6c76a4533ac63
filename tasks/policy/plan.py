"""The deletion plan: every keep rule applied to the extracted registry, Git and cluster.

Pure: DataFrames and the configuration in, the plan out; no I/O, no clock. Read top to
bottom as `RULES`: the rules themselves are in `tasks.policy.rules`, what they read and
decide in `tasks.policy.state`, the table they end in in `tasks.policy.table` (its columns
documented there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from tasks.core.config import Config
from tasks.core.frames import gc_paused
from tasks.policy.catalog import Key
from tasks.policy.evidence import Evidence
from tasks.policy.rules import (
    decide_digests,
    decide_referrers,
    decide_untags,
    keep_built_recently,
    keep_git_policies,
    keep_images_in_use,
    keep_index_children,
    keep_listed,
    keep_matching_tags,
    keep_protected,
    keep_pulled_within,
    keep_pushed_recently,
    keep_restored,
    keep_unlinked,
    keep_unreadable,
    keep_werf_records,
    keep_werf_stage_graph,
    refuse_unlinked_delete_on_werf,
)
from tasks.policy.state import PlanInputs, PlanState
from tasks.policy.table import plan_table

RULES: tuple[Callable[[PlanState], None], ...] = (
    refuse_unlinked_delete_on_werf,
    keep_images_in_use,
    keep_pulled_within,
    keep_git_policies,
    keep_pushed_recently,
    keep_listed,
    keep_restored,
    keep_matching_tags,
    keep_built_recently,
    keep_git_policies,
    keep_unlinked,
    keep_protected,
    decide_digests,
    keep_index_children,
    keep_werf_stage_graph,
    keep_werf_records,
    decide_referrers,
    keep_unreadable,
    decide_untags,
)
"""The plan, top to bottom: keep rules first, then the decisions that follow from them."""


@dataclass
class Plan:
    """The plan table plus the evidence behind every keep, for reports and `explain`."""

    table: pd.DataFrame
    evidence: Evidence
    unknown_commits: dict[Key, set[str]]
    notes: list[str] = field(default_factory=list)  # what the run's notes should say
    werf: list[str] = field(default_factory=list)  # repositories read the werf way


def build_plan(inputs: PlanInputs, config: Config, registry_host: str, now: datetime) -> Plan:
    """Return the plan for `inputs` under `config` at time `now` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with gc_paused():
        return _build_plan(inputs, config, registry_host, now)


def _build_plan(inputs: PlanInputs, config: Config, registry_host: str, now: datetime) -> Plan:
    state = PlanState.start(inputs, config, registry_host, now)
    for rule in RULES:
        rule(state)
    return Plan(
        table=plan_table(state),
        evidence=Evidence(state.reasons.evidence, state.images),
        unknown_commits={
            state.images.key(row): values for row, values in state.links.unknown.items()
        },
        notes=[
            f"{repository.summary()}: decided as werf decides (link.source: {config.link.source})"
            for _, repository in sorted(state.werf.items())
        ],
        werf=sorted(state.werf),
    )
