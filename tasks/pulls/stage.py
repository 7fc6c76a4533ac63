"""The pull-record stage for a configuration (plain, no Prefect: `task.py` wraps it)."""

from __future__ import annotations

import pandas as pd

from tasks.core.aio import run_sync
from tasks.core.config import Config
from tasks.core.frames import typed_frame
from tasks.pulls.records import DAY_COLUMNS, LAST_COLUMNS, PullRecords
from tasks.pulls.store import PullStore, pull_days


def read_pulls(config: Config) -> PullRecords:
    """Everything `pulls.database` holds; raise `StoreError` when it cannot be read (the
    run stops before deleting: exit 3)."""

    async def go() -> PullRecords:
        store = await PullStore(config.pulls.database).open()
        try:
            digests = await store.digests()
            async with store.engine.connect() as connection:
                days = (await connection.execute(pull_days.select())).all()
            uptime = await store.uptime()
        finally:
            await store.close()
        last = typed_frame(
            [
                {
                    "repository": d.repository,
                    "digest": d.digest,
                    "last_pull": d.last_pull,
                    "user_agents": d.user_agents,
                }
                for d in digests
            ],
            LAST_COLUMNS,
        )
        per_day = typed_frame(
            [
                {
                    "repository": r.repository,
                    "digest": r.digest,
                    "day": pd.Timestamp(r.day, tz="UTC"),
                    "pulls": r.pulls,
                }
                for r in days
            ],
            DAY_COLUMNS,
        )
        return PullRecords(last, per_day, uptime)

    return run_sync(go())
