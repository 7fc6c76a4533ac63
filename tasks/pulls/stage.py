"""The pull-record stage for a configuration (plain, no Prefect: `task.py` wraps it)."""

from __future__ import annotations

from tasks.core.aio import run_sync
from tasks.core.config import Config
from tasks.pulls.records import PullRecords
from tasks.pulls.store import PullStore


def read_pulls(config: Config) -> PullRecords:
    """Everything `pulls.database` holds; raise `StoreError` when it cannot be read (the
    run stops before deleting: exit 3)."""

    async def go() -> PullRecords:
        store = await PullStore(config.pulls.database).open()
        try:
            return await store.records()
        finally:
            await store.close()

    return run_sync(go())
