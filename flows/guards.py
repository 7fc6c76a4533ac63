"""A run's notes and guards, worked out once for `regsweep plan`, the flow (dry run and
apply) and `regsweep check`: a preview that differs from the run is how someone learns to
type `--force`.

- `run_notes`: the warnings about the plan and its inputs (the registry kind, push times,
  pull record gaps, werf, commits Git does not know, cluster images on other registries,
  tags naming nothing);
- `delete_request`: the delete step's request, its run-wide refusal (`tasks.delete.guards`)
  and `safety.maxDeleteFraction` included;
- `refusals_of`: why the delete step would refuse deletions, worked out by the delete step's
  own guards (`tasks.delete.loader.refusals`, what `settle_closures` applies), without a
  request sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flows.pipeline import Planned
from flows.report import pull_gap_notes, stage_notes
from tasks.core.config import Config
from tasks.delete.closure import deletion_targets
from tasks.delete.guards import cluster_refusal, git_refusal, unmatched_hosts
from tasks.delete.loader import DeleteRequest, refusals
from tasks.delete.untag import untag_targets

if TYPE_CHECKING:
    import pandas as pd

    from tasks.delete.reconcile import Damage


def run_notes(config: Config, planned: Planned, damage: Damage | None = None) -> list[str]:
    """Warnings about the plan and what it was made of; `damage` (tags naming nothing,
    open ledger records) when the run leaves it for later."""
    plan = planned.plan
    notes = stage_notes(config, planned.registry) + plan.notes + pull_gap_notes(plan)
    if damage is not None:
        notes += damage.notes()
    unknown = sum(len(v) for v in plan.unknown_commits.values())
    if unknown:
        notes.append(f"{unknown} image link(s) name commits Git does not know")
    if planned.cluster is not None:
        others = unmatched_hosts(planned.cluster, config.registry.names)
        if others:
            listing = ", ".join(f"{host} ({n})" for host, n in others.items())
            notes.append(
                f"cluster images on other registries (not this one or an alias): {listing}"
            )
    return notes


def sanity_refusal(config: Config, planned: Planned) -> str:
    """Why every deletion of this run is refused (`tasks.delete.guards`), else empty."""
    reasons = []
    if planned.cluster is not None and config.uses_kubernetes:
        reasons.append(cluster_refusal(planned.cluster, config.registry.names))
    if config.uses_git:
        reasons.append(git_refusal(planned.plan))
    return "; ".join(r for r in reasons if r)


@dataclass(frozen=True)
class RunOptions:
    """What the command line adds to the configuration for the delete step."""

    apply: bool = False
    force: bool = False
    ledger_path: str = ""
    flow_run_id: str = ""
    in_use: pd.DataFrame | None = None
    confirmed: frozenset[str] | None = None  # what a person confirmed (run on a terminal)


def delete_request(config: Config, planned: Planned, options: RunOptions) -> DeleteRequest:
    """The delete step's request: the run-wide refusal unless `force`, the configuration's
    limits and untag mode, the cluster read again (`in_use`) and push records."""
    return DeleteRequest(
        apply=options.apply,
        ledger_path=options.ledger_path,
        max_delete_fraction=config.safety.max_delete_fraction,
        force=options.force,
        flow_run_id=options.flow_run_id,
        refusal="" if options.force else sanity_refusal(config, planned),
        in_use=options.in_use,
        untag=config.cleanup.untag,
        pushes=config.pulls.database if config.pulls.watch_pushes else "",
        confirmed=options.confirmed,
    )


def refusals_of(config: Config, planned: Planned, force: bool = False) -> list[str]:
    """Why a run of this plan would refuse deletions (exit 4), distinct: the delete step's
    own guards (no request sent)."""
    request = delete_request(config, planned, RunOptions(force=force))
    return refusals(planned.plan.table, planned.registry, request)


def confirmation_keys(planned: Planned) -> tuple[list[str], list[str]]:
    """What a person confirms before an apply on a terminal: the keys of the delete step's
    own targets, the plan's deletions ("repository@digest") and untags ("repository:tag")."""
    table = planned.plan.table
    return [t.key for t in deletion_targets(table)], [t.key for t in untag_targets(table)]
