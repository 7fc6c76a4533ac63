"""What a run of the cleanup flow hands back, and the failures that carry it.

A run that fails after planning (an incomplete listing, refused or failed deletions) raises a
`RunFailed` holding the same `RunResult` a successful run returns, so the flow run ends Failed
(automations and schedulers alert) while the CLI still prints the report and the ledger path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.delete.outcome import FAILED_OUTCOMES, REFUSED_OUTCOMES
from tasks.delete.reconcile import Damage
from tasks.delete.verify import Verdict


@dataclass(frozen=True)
class RunResult:
    """One run: where its files are, what the plan decided, what the delete step did."""

    flow_run_id: str  # the Prefect flow run ("local" outside one)
    run_dir: str  # $REGSWEEP_HOME/runs/FLOW-RUN-ID: the plan and the inputs it was made from
    plan_path: str  # the plan's Parquet file (its columns: the plan, above)
    ledger_path: str  # empty for a dry run
    apply: bool  # True when the run deleted (--apply)
    now: str  # the moment every time window was measured from (ISO 8601)
    summary: list[dict[str, Any]]  # per repository: kept, deleted (planned), deleted_in_run...
    reasons: list[dict[str, Any]]  # digests per (action, reason)
    outcomes: dict[str, int]  # digests per outcome of the delete step
    incomplete: dict[str, str]  # repository -> why its listing is incomplete
    notes: list[str] = field(default_factory=list)  # warnings about the plan and its inputs
    problems: list[str] = field(default_factory=list)  # refusals a line per reason, failures each
    refusals: list[str] = field(default_factory=list)  # why deletions were refused, distinct
    # after an apply, what `tasks.delete.verify` found missing or dangling, one line each
    damage: list[str] = field(default_factory=list)
    # every deletion and untag (a dry run: what it would do): repository, tags, digest, size,
    # outcome (`flows.report.deletions`)
    deletions: list[dict[str, Any]] = field(default_factory=list)
    # tags naming no manifest (a deletion cut short): "found" by the scan or by verify,
    # "repaired" by this run
    dangling: dict[str, int] = field(default_factory=dict)


class RunFailed(Exception):
    """The run ended Failed; `result` is its report. `exit_code` per DESIGN.md."""

    exit_code = 1

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


class RunIncomplete(RunFailed):
    """An extraction was incomplete: nothing was deleted in its scope (exit 3)."""

    exit_code = 3


class RunDeletionsFailed(RunFailed):
    """Deletions were refused or failed (exit 4); the ledger says which were sent."""

    exit_code = 4


def problems(results: pd.DataFrame, limit: int = 20) -> list[str]:
    """One line per reason deletions were refused, with how many (a run-wide guard refuses
    every deletion for one reason: one line, not one per image), then one line per failed
    or not attempted deletion (at most `limit`, then a count)."""
    refused = results.loc[results["outcome"].isin(REFUSED_OUTCOMES), "detail"]
    lines = [
        f"refused {count} deletion(s): {detail}"
        for detail, count in refused.astype(str).value_counts(sort=False).items()
    ]
    bad = results[results["outcome"].isin(FAILED_OUTCOMES)]
    lines += [
        f"{row.outcome}: {row.repository}@{row.digest} — {row.detail}"
        for row in bad.head(limit).itertuples(index=False)
    ]
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more (see the results in the report)")
    return lines


def refusals(results: pd.DataFrame) -> list[str]:
    """The distinct reasons deletions were refused, in the order first met."""
    refused = results.loc[results["outcome"].isin(REFUSED_OUTCOMES), "detail"]
    return list(dict.fromkeys(str(d) for d in refused))


def run_failure(result: RunResult) -> RunFailed | None:
    """The failure `result` ends in, if any: a registry left not whole, refused or failed
    deletions (exit 4) come before an incomplete listing (exit 3), since they need the
    ledger or a person."""
    failed = sum(n for outcome, n in result.outcomes.items() if outcome in FAILED_OUTCOMES)
    refused = sum(n for outcome, n in result.outcomes.items() if outcome in REFUSED_OUTCOMES)
    deleted = result.outcomes.get("deleted", 0)
    scope = ", ".join(f"{repo} ({why})" for repo, why in sorted(result.incomplete.items()))
    if failed or refused or result.damage:
        parts = []
        if result.damage:
            restored = sum("put back from this run's ledger" in line for line in result.damage)
            parts.append(
                f"the registry is not whole after the run: {len(result.damage)} problem(s)"
                + (f", {restored} put back from the ledger" if restored else "")
                + f" ({result.damage[0]}{'; ...' if len(result.damage) > 1 else ''})"
            )
        if failed:
            parts.append(f"{failed} deletion(s) failed or were not attempted")
        if refused:
            parts.append(f"{refused} refused ({'; '.join(result.refusals)})")
        message = "; ".join(parts) + f"; {deleted} deleted"
        if result.ledger_path and (deleted or failed):
            message += f"; ledger {result.ledger_path}"
        if scope:
            message += f"; also not touched (listing incomplete): {scope}"
        return RunDeletionsFailed(message, result)
    if scope:
        elsewhere = f"; {deleted} deleted elsewhere" if deleted else ""
        return RunIncomplete(f"listing incomplete, nothing deleted in: {scope}{elsewhere}", result)
    return None


def dangling_tags(damage: Damage, repairs: pd.DataFrame, verdict: Verdict | None) -> dict[str, int]:
    """Tags naming no manifest: `found` by the scan (`damage`) or by verify after the
    delete step, `repaired` by this run (the reconcile step's rows, verify's own repairs)."""
    repaired = sum(len(tags) for tags in repairs.loc[repairs["outcome"] == "repaired", "tags"])
    found = damage.dangling
    if verdict is not None:
        found += len(verdict.dangling) + len(verdict.repaired)
        repaired += len(verdict.repaired)
    return {"found": found, "repaired": repaired}
