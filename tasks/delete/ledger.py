"""The deletion ledger: append-only JSON Lines, one record per state change of a deletion.

A record is written (and flushed to disk) *before* the DELETE is sent with state
``pending`` and the manifest bytes, then again with ``done``, ``gone`` (404: already
deleted) or ``failed``. A crash therefore leaves an exact record of what may have happened.

Record fields: time (ISO 8601 UTC), state, registry, repository, digest, tags (list),
media_type, manifest (base64 of the exact bytes), reason, flow_run_id, detail.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATES = ("pending", "done", "gone", "failed")


@dataclass
class LedgerRecord:
    state: str
    registry: str
    repository: str
    digest: str
    tags: list[str]
    media_type: str
    manifest: str  # base64
    reason: str
    flow_run_id: str = ""
    detail: str = ""
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def manifest_bytes(self) -> bytes:
        return base64.b64decode(self.manifest)


class Ledger:
    """Append records to the ledger file at `path` (created with its directory).

    Every append returns only once its record is on disk (fsync). Concurrent `record` calls
    are committed as a group: records that arrive while a write is in progress go to disk
    together in the next write, one fsync for the lot.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: list[tuple[str, asyncio.Future[None]]] = []
        self._flushing = False

    @staticmethod
    def _line(record: LedgerRecord) -> str:
        if record.state not in STATES:
            raise ValueError(f"unknown ledger state {record.state!r}")
        return json.dumps(asdict(record), sort_keys=True) + "\n"

    def _write(self, lines: list[str]) -> None:
        # One write(2) on an O_APPEND descriptor: several processes sharing the ledger
        # (per-repository delete tasks on Dask workers of one machine) never interleave lines.
        data = "".join(lines).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:  # a regular file takes it in one call; loop only in case it doesn't
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, record: LedgerRecord) -> None:
        """Write one record durably (blocking)."""
        self._write([self._line(record)])

    async def record(self, record: LedgerRecord) -> None:
        """Write one record durably, sharing the fsync with concurrent callers."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((self._line(record), done))
        if not self._flushing:
            self._flushing = True
            try:
                while self._queue:
                    batch, self._queue = self._queue, []
                    try:
                        await asyncio.to_thread(self._write, [line for line, _ in batch])
                    except OSError as exc:
                        for _, waiter in batch:
                            waiter.set_exception(exc)
                    else:
                        for _, waiter in batch:
                            waiter.set_result(None)
            finally:
                self._flushing = False
        await done


def read_ledger(path: str | Path) -> Iterator[LedgerRecord]:
    """Yield every record of the ledger at `path`, oldest first; skip a torn last line."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            try:
                data: dict[str, Any] = json.loads(line)
            except ValueError:
                continue  # a crash mid-write leaves at most one torn line
            yield LedgerRecord(**data)


def latest_states(path: str | Path) -> dict[tuple[str, str, str], LedgerRecord]:
    """Return the last record per (registry, repository, digest)."""
    latest: dict[tuple[str, str, str], LedgerRecord] = {}
    for record in read_ledger(path):
        latest[(record.registry, record.repository, record.digest)] = record
    return latest
