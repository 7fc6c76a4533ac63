"""Where pull records live: SQLite (embedded, WAL) or PostgreSQL (several receivers behind a
registry's HA pair), through SQLAlchemy's async engine: one schema, no hand-written dialect.

Tables:

``pull_digests`` — per (repository, digest): ``last_pull`` (UTC) and ``user_agents`` (JSON
list, the agents of the latest batch that pulled it, at most 5)
``pull_days`` — per (repository, digest, day): ``pulls`` that day (UTC)
``uptime`` — per receiver process: ``started`` and ``last_seen`` (a heartbeat): the service
only knows "not pulled" (and "not pushed") for the time these intervals cover
``pushes`` — per manifest push: repository, tag (empty for a push by digest), digest, time
(UTC); read by the delete step (`pushes_since`), kept PUSH_DAYS
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tasks.core.frames import typed_frame
from tasks.pulls.errors import StoreError
from tasks.pulls.events import PullEvent, PushEvent
from tasks.pulls.records import DAY_COLUMNS, LAST_COLUMNS, PullRecords

MAX_AGENTS = 5
PUSH_DAYS = 7  # pushes older than this are dropped as new ones are written

metadata = sa.MetaData()
pull_digests = sa.Table(
    "pull_digests",
    metadata,
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(71), primary_key=True),
    sa.Column("last_pull", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user_agents", sa.Text, nullable=False),
)
pull_days = sa.Table(
    "pull_days",
    metadata,
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(71), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("pulls", sa.Integer, nullable=False),
)
uptime = sa.Table(
    "uptime",
    metadata,
    sa.Column("receiver", sa.String(64), primary_key=True),
    sa.Column("started", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
)

pushes = sa.Table(
    "pushes",
    metadata,
    sa.Column("repository", sa.String(255), primary_key=True),
    sa.Column("tag", sa.String(128), primary_key=True),
    sa.Column("digest", sa.String(71), primary_key=True),
    sa.Column("time", sa.DateTime(timezone=True), primary_key=True),
)


def engine_url(database: str) -> str:
    """`sqlite:///path` (`~` expanded) or `postgresql://...` as the async driver's URL."""
    if database.startswith("sqlite:///"):
        path = Path(database.removeprefix("sqlite:///")).expanduser()
        return f"sqlite+aiosqlite:///{path}"
    if database.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + database.split("://", 1)[1]
    raise StoreError(f"pulls.database must be sqlite:///PATH or postgresql://..., not {database!r}")


@dataclass(frozen=True)
class DigestPulls:
    repository: str
    digest: str
    last_pull: datetime
    user_agents: list[str]


class PullStore:
    """The pull-record database; `open()` creates the tables it lacks."""

    def __init__(self, database: str) -> None:
        self.url = engine_url(database)
        if self.url.startswith("sqlite"):
            Path(self.url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(self.url)
        if self.engine.dialect.name == "sqlite":

            @sa.event.listens_for(self.engine.sync_engine, "connect")
            def _wal(connection: Any, _record: Any) -> None:
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()

    @property
    def _insert(self) -> Any:
        return postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert

    def _upserts(self) -> tuple[Any, Any]:
        """The two upserts a batch of pulls runs: the last pull (the later of stored and
        new, and the batch's agents) per digest, and the pulls per digest and day."""
        digests = self._insert(pull_digests)
        digests = digests.on_conflict_do_update(
            index_elements=["repository", "digest"],
            set_={
                "last_pull": sa.case(
                    (
                        digests.excluded.last_pull > pull_digests.c.last_pull,
                        digests.excluded.last_pull,
                    ),
                    else_=pull_digests.c.last_pull,
                ),
                "user_agents": digests.excluded.user_agents,
            },
        )
        days = self._insert(pull_days)
        days = days.on_conflict_do_update(
            index_elements=["repository", "digest", "day"],
            set_={"pulls": pull_days.c.pulls + days.excluded.pulls},
        )
        return digests, days

    async def open(self) -> PullStore:
        try:
            async with self.engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise StoreError(f"pull records: cannot open {self._safe_url}: {exc}") from exc
        return self

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def _safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    async def record(self, events: Iterable[PullEvent | PushEvent]) -> int:
        """Write a batch of pulls (and pushes) in one transaction; return how many pulls."""
        latest: dict[tuple[str, str], datetime] = {}
        agents: dict[tuple[str, str], list[str]] = defaultdict(list)
        per_day: dict[tuple[str, str, date], int] = defaultdict(int)
        pushed: set[tuple[str, str, str, datetime]] = set()
        count = 0
        for event in events:
            if isinstance(event, PushEvent):
                when = event.time.astimezone(UTC)
                pushed.add((event.repository, event.tag, event.digest, when))
                continue
            key = (event.repository, event.digest)
            when = event.time.astimezone(UTC)
            latest[key] = max(latest.get(key, when), when)
            if event.user_agent and event.user_agent not in agents[key]:
                agents[key] = [event.user_agent, *agents[key]][:MAX_AGENTS]
            per_day[(*key, when.date())] += 1
            count += 1
        if pushed:
            await self._record_pushes(pushed)
        if not count:
            return 0
        digest_rows = [
            {
                "repository": r,
                "digest": d,
                "last_pull": when,
                "user_agents": json.dumps(agents[(r, d)]),
            }
            for (r, d), when in latest.items()
        ]
        day_rows = [
            {"repository": r, "digest": d, "day": day, "pulls": n}
            for (r, d, day), n in per_day.items()
        ]
        digests_upsert, days_upsert = self._upserts()
        try:
            async with self.engine.begin() as connection:
                # one statement, many parameter sets: compiled once, not once a batch
                await connection.execute(digests_upsert, digest_rows)
                await connection.execute(days_upsert, day_rows)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"pull records: writing to {self._safe_url} failed: {exc}") from exc
        return count

    async def _record_pushes(self, rows: set[tuple[str, str, str, datetime]]) -> None:
        insert = self._insert(pushes).on_conflict_do_nothing()
        oldest = max(when for *_, when in rows) - timedelta(days=PUSH_DAYS)
        values = [{"repository": r, "tag": t, "digest": d, "time": w} for r, t, d, w in rows]
        try:
            async with self.engine.begin() as connection:
                await connection.execute(insert, values)
                await connection.execute(sa.delete(pushes).where(pushes.c.time < oldest))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"pull records: writing to {self._safe_url} failed: {exc}") from exc

    async def pushes_since(self, since: datetime, repository: str | None = None) -> list[PushEvent]:
        """The manifest pushes at or after `since` (in `repository`, or all), oldest first."""
        query = sa.select(pushes).where(pushes.c.time >= since).order_by(pushes.c.time)
        if repository is not None:
            query = query.where(pushes.c.repository == repository)
        try:
            async with self.engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"pull records: reading {self._safe_url} failed: {exc}") from exc
        return [PushEvent(r.repository, r.digest, r.tag, _utc(r.time)) for r in rows]

    async def heartbeat(self, receiver: str, started: datetime, now: datetime) -> None:
        """Record that `receiver` (started at `started`) is up at `now`."""
        statement = self._insert(uptime).values(receiver=receiver, started=started, last_seen=now)
        statement = statement.on_conflict_do_update(
            index_elements=["receiver"], set_={"last_seen": statement.excluded.last_seen}
        )
        try:
            async with self.engine.begin() as connection:
                await connection.execute(statement)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"pull records: writing to {self._safe_url} failed: {exc}") from exc

    async def digests(self) -> list[DigestPulls]:
        """Every (repository, digest) ever pulled, with its last pull."""
        try:
            async with self.engine.connect() as connection:
                rows = (await connection.execute(sa.select(pull_digests))).all()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"pull records: reading {self._safe_url} failed: {exc}") from exc
        return [
            DigestPulls(r.repository, r.digest, _utc(r.last_pull), json.loads(r.user_agents))
            for r in rows
        ]

    async def records(self) -> PullRecords:
        """Everything the store holds, as the plan reads it. The uptime is read first: a
        receiver writes a time only once every pull it accepted before then is written, so
        the pulls read after it hold every pull of the time it claims (read after them, it
        could claim pulls written in between). The values come back as the driver gives
        them (SQLite: text) and are converted a column at a time: a million digests took
        22 s a row at a time, mostly in per-row datetimes and JSON."""
        last_query = sa.select(
            pull_digests.c.repository,
            pull_digests.c.digest,
            sa.type_coerce(pull_digests.c.last_pull, sa.String),
            pull_digests.c.user_agents,
        )
        days_query = sa.select(
            pull_days.c.repository,
            pull_days.c.digest,
            sa.type_coerce(pull_days.c.day, sa.String),
            pull_days.c.pulls,
        )
        try:
            async with self.engine.connect() as connection:
                intervals = (await connection.execute(sa.select(uptime))).all()
                last = (await connection.execute(last_query)).all()
                days = (await connection.execute(days_query)).all()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"pull records: reading {self._safe_url} failed: {exc}") from exc
        return PullRecords(
            _frame(last, LAST_COLUMNS, agents="user_agents"),
            _frame(days, DAY_COLUMNS),
            _intervals(intervals),
        )

    async def uptime(self) -> list[tuple[datetime, datetime]]:
        """The (started, last_seen) interval of every receiver."""
        try:
            async with self.engine.connect() as connection:
                rows = (await connection.execute(sa.select(uptime))).all()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"pull records: reading {self._safe_url} failed: {exc}") from exc
        return _intervals(rows)


def _frame(rows: Sequence[sa.Row[Any]], columns: dict[str, str], agents: str = "") -> pd.DataFrame:
    """`rows` (in `columns` order) as a frame of `columns`; the `agents` column's JSON
    lists parsed once per distinct value (rows that share one share the list)."""
    values = dict(zip(columns, zip(*rows, strict=True), strict=True)) if rows else {}
    if agents and rows:
        codes, texts = pd.factorize(pd.Series(values[agents], dtype=object))
        lists = np.empty(len(texts), dtype=object)
        lists[:] = [json.loads(text) for text in texts]
        values[agents] = lists[codes]
    return typed_frame(values, columns)


def _intervals(rows: Sequence[sa.Row[Any]]) -> list[tuple[datetime, datetime]]:
    return [(_utc(r.started), _utc(r.last_seen)) for r in rows]


def _utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
