"""The pull store on both databases, for real: SQLite (WAL) and PostgreSQL (Debian's,
started here). Batches upsert: the latest pull wins, pulls per day add up, several
receivers share one database, uptime intervals are kept per receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tasks.pulls.errors import StoreError
from tasks.pulls.events import PullEvent
from tasks.pulls.records import DAY_COLUMNS, LAST_COLUMNS, PullRecords
from tasks.pulls.store import PullStore
from tests.servers.postgres import Postgres

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pulls.db'}"
    server: Postgres = request.getfixturevalue("postgres")

    # a fresh schema per test: drop what an earlier test wrote
    async def reset() -> None:
        store = PullStore(server.url)
        async with store.engine.begin() as connection:
            from tasks.pulls.store import metadata

            await connection.run_sync(metadata.drop_all)
        await store.close()

    asyncio.run(reset())
    return server.url


def pulls_since(records: PullRecords, day: date) -> dict[tuple[str, str], int]:
    """Pulls per (repository, digest) from `day` on, from the frames the plan reads."""
    days = records.days[records.days["day"] >= pd.Timestamp(day, tz="UTC")]
    counts = days.groupby(["repository", "digest"])["pulls"].sum()
    return {key: int(n) for key, n in counts.items()}


def pull(repository: str, n: int, when: datetime, agent: str = "containerd/1.7") -> PullEvent:
    return PullEvent(repository, f"sha256:{n:064x}", "v1", when, agent, "10.0.0.1:5000")


def test_batches_upsert_latest_pull_and_add_up_pulls_per_day(database: str) -> None:
    async def go() -> None:
        one, two = PullStore(database), PullStore(database)  # two receivers, one database
        await one.open()
        await two.open()
        try:
            assert await one.record([]) == 0
            await one.record(
                [pull("app", 1, NOW - timedelta(days=3)), pull("app", 1, NOW - timedelta(days=3))]
            )
            await two.record(
                [pull("app", 1, NOW, "docker/27"), pull("app", 2, NOW - timedelta(days=1))]
            )
            await one.record([pull("app", 1, NOW - timedelta(days=10))])  # late, older: no change
            records = {(r.repository, r.digest): r for r in await one.digests()}
            first = records[("app", f"sha256:{1:064x}")]
            assert first.last_pull == NOW
            assert first.user_agents == ["docker/27"] or first.user_agents == ["containerd/1.7"]
            assert records[("app", f"sha256:{2:064x}")].last_pull == NOW - timedelta(days=1)
            week = pulls_since(await one.records(), (NOW - timedelta(days=7)).date())
            assert week == {("app", f"sha256:{1:064x}"): 3, ("app", f"sha256:{2:064x}"): 1}
            month = pulls_since(await two.records(), (NOW - timedelta(days=30)).date())
            assert month[("app", f"sha256:{1:064x}")] == 4
            await one.heartbeat("r1", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
            await one.heartbeat("r1", NOW - timedelta(hours=2), NOW)
            await two.heartbeat("r2", NOW - timedelta(minutes=5), NOW)
            assert sorted(await two.uptime()) == [
                (NOW - timedelta(hours=2), NOW),
                (NOW - timedelta(minutes=5), NOW),
            ]
        finally:
            await one.close()
            await two.close()

    asyncio.run(go())


def test_a_large_batch_is_written_whole_in_one_go(database: str) -> None:
    """A burst's batch (BATCH_EVENTS and more): every digest and every day's count lands,
    and a second batch on the same keys adds up rather than duplicating rows."""
    events = [pull(f"team/r{n % 7}", n % 1200, NOW - timedelta(days=n % 3)) for n in range(3600)]

    async def go() -> tuple[int, dict[tuple[str, str], int], int]:
        store = await PullStore(database).open()
        try:
            assert await store.record(events) == 3600
            assert await store.record(events[:1200]) == 1200
            digests = await store.digests()
            week = pulls_since(await store.records(), (NOW - timedelta(days=7)).date())
            return len(digests), week, len({(d.repository, d.digest) for d in digests})
        finally:
            await store.close()

    rows, week, distinct = asyncio.run(go())
    keys = {(f"team/r{n % 7}", f"sha256:{n % 1200:064x}") for n in range(3600)}
    assert rows == distinct == len(keys)
    assert sum(week.values()) == 4800 and set(week) == keys


def test_the_records_are_what_was_written_in_the_plan_s_columns(database: str) -> None:
    """`records()` converts a column at a time: each row keeps its own values (agents lists
    read once per distinct text still land on their own rows), the days are midnight UTC,
    and an empty store is empty frames of the same columns."""
    agents = ["containerd/1.7", "docker/27", "cri-o/1.30", ""]
    events = [
        pull(f"team/r{n % 3}", n, NOW - timedelta(days=n % 4, hours=n % 5), agents[n % 4])
        for n in range(40)
    ]

    async def go() -> tuple[PullRecords, PullRecords]:
        store = await PullStore(database).open()
        try:
            empty = await store.records()
            await store.record(events[:25])
            await store.record(events[25:])
            return empty, await store.records()
        finally:
            await store.close()

    empty, records = asyncio.run(go())
    for frame, columns in ((empty.last, LAST_COLUMNS), (empty.days, DAY_COLUMNS)):
        assert frame.empty and list(frame.columns) == list(columns)
    for frame, columns in ((records.last, LAST_COLUMNS), (records.days, DAY_COLUMNS)):
        assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == columns
    last = {
        (repository, digest): (when, agents_)
        for repository, digest, when, agents_ in records.last.itertuples(index=False)
    }
    assert last == {
        (e.repository, e.digest): (pd.Timestamp(e.time), [e.user_agent] if e.user_agent else [])
        for e in events
    }
    days = {
        (repository, digest, day): pulls
        for repository, digest, day, pulls in records.days.itertuples(index=False)
    }
    assert days == {
        (e.repository, e.digest, pd.Timestamp(e.time.date(), tz="UTC")): 1 for e in events
    }


def test_an_unreachable_database_is_a_store_error_naming_it_without_its_password(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        store = PullStore("postgresql://reader@127.0.0.1:9/pulls")
        with pytest.raises(StoreError, match=r"127\.0\.0\.1:9/pulls"):
            await store.open()
        await store.close()

    asyncio.run(go())
    with pytest.raises(StoreError, match=r"pulls\.database"):
        PullStore("mysql://x")


def test_a_table_that_cannot_be_read_is_a_store_error(database: str) -> None:
    """Any of the tables the plan reads failing is a StoreError (the run stops: exit 3),
    the day rows as much as the digests."""

    async def go() -> None:
        store = await PullStore(database).open()
        try:
            async with store.engine.begin() as connection:
                await connection.exec_driver_sql("DROP TABLE pull_days")
            with pytest.raises(StoreError, match="pull records: reading"):
                await store.records()
        finally:
            await store.close()

    asyncio.run(go())
