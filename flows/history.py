"""Past runs of the cleanup flow, read back from the Prefect API (CLI and notebooks).

With `PREFECT_API_URL` set, from that server. Without it, Prefect would start a temporary
server for the reading (14-16 s); this reads the local database in-process instead, through
Prefect's own API application (`PrefectClient` takes the application in place of a URL), in
about 4 s. A database that does not exist yet holds no runs; one the in-process reading cannot
use (another Prefect version's schema, a database it cannot open) is read the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
)
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL, get_current_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

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
    rows = _read(lambda client: _rows(client, limit))
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    return frame.astype(HISTORY_COLUMNS)


async def _rows(client: PrefectClient, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    runs = await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
        sort=FlowRunSort.START_TIME_DESC,
        limit=limit,
    )
    for run in runs:
        artifacts = await client.read_artifacts(
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
    return rows


def _read(work: Callable[[PrefectClient], Awaitable[list[T]]]) -> list[T]:
    """`work` done with a client of the Prefect API: the configured server's, else the local
    database's in-process (`[]` when there is none yet), else a temporary server's."""

    async def read() -> list[T]:
        if not PREFECT_API_URL.value():
            database = _local_database()
            if database is not None and not database.exists():
                return []
            try:
                async with _in_process_client() as client:
                    return await work(client)
            except Exception as exc:  # a schema or database the in-process reading cannot use
                log.debug("reading the Prefect database in-process failed: %s", exc)
        async with get_client() as client:
            return await work(client)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(read())
    with ThreadPoolExecutor(1) as pool:  # a notebook's loop is running: read beside it
        return pool.submit(asyncio.run, read()).result()


@contextlib.asynccontextmanager
async def _in_process_client() -> AsyncIterator[PrefectClient]:
    """A client of Prefect's API application in this process, over the local database,
    without the application's background services (nothing but reading is done)."""
    from prefect.server.api.server import create_app

    client = PrefectClient(create_app(ephemeral=True))
    client.manage_lifespan = False
    async with client:
        yield client


def _local_database() -> Path | None:
    """The SQLite file Prefect keeps its runs in, or None for another database."""
    url = get_current_settings().server.database.connection_url
    text = url.get_secret_value() if url is not None else ""
    prefix = "sqlite+aiosqlite:///"
    return Path(text[len(prefix) :]) if text.startswith(prefix) else None


def _records(data: Any) -> list[dict[str, Any]]:
    """A table artifact's rows (Prefect stores them as a JSON string)."""
    if isinstance(data, str):
        data = json.loads(data)
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
