"""Past runs of the cleanup flow, read back from the Prefect API (CLI and notebooks)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
)
from prefect.client.schemas.sorting import FlowRunSort

FLOW_NAME = "regsweep-cleanup"
PLAN_ARTIFACT = "deletion-plan"
REPORT_ARTIFACT = "cleanup-report"
DELETIONS_ARTIFACT = "deletions"

HISTORY_COLUMNS = {
    "flow_run_id": "str",
    "name": "str",
    "start": "datetime64[us, UTC]",
    "duration_s": "float64",
    "state": "str",
    "apply": "bool",
    "kept": "int64",
    "planned": "int64",
    "deleted": "int64",
    "bytes": "int64",
}


def run_history(limit: int = 20) -> pd.DataFrame:
    """The last `limit` runs of the cleanup flow, newest first.

    kept / planned: digests the run's plan kept and would delete; deleted: digests the run
    really deleted (0 for a dry run, and for an apply whose deletions were refused); bytes:
    what the plan's deletions free after garbage collection. Runs that ended before their
    plan have zeros.
    """
    rows: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=limit,
        )
        for run in runs:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[PLAN_ARTIFACT]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
                )
            )
            summary = _records(artifacts[-1].data) if artifacts else []
            apply = bool((run.parameters or {}).get("apply", False))
            rows.append(
                {
                    "flow_run_id": str(run.id),
                    "name": run.name,
                    "start": run.start_time,
                    "duration_s": run.total_run_time.total_seconds(),
                    "state": run.state_name or "",
                    "apply": apply,
                    "kept": sum(int(r.get("kept", 0)) for r in summary),
                    "planned": sum(int(r.get("deleted", 0)) for r in summary),
                    "deleted": sum(int(r.get("deleted_in_run", 0)) for r in summary),
                    "bytes": sum(int(r.get("bytes_reclaimable", 0)) for r in summary),
                }
            )
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    return frame.astype(HISTORY_COLUMNS)


def _records(data: Any) -> list[dict[str, Any]]:
    """A table artifact's rows (Prefect stores them as a JSON string)."""
    if isinstance(data, str):
        data = json.loads(data)
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
