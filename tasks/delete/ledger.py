"""The deletion ledger: append-only JSON Lines, one record per state change of a deletion.

A record is written (and flushed to disk) *before* the DELETE is sent with state
``pending`` and the manifest bytes, then again with ``done``, ``gone`` (404: already
deleted) or ``failed``. A crash therefore leaves an exact record of what may have happened.

Record fields: time (ISO 8601 UTC), state, registry (host), registry_url (with its scheme:
what `regsweep restore` talks to), repository, digest, tags (list),
media_type, manifest (base64 of the exact bytes), reason, flow_run_id, detail, action
(``delete``: the digest and every tag on it; ``untag``: the one tag in `tags`, the digest
stays; ``repair``: dangling tags removed, see `tasks.delete.reconcile`: nothing to restore),
placeholder (an untag by overwrite: the digest of the placeholder manifest the
tag was pointed at before it was deleted, so a restore knows that tag as its own) and
vendor, vendor_api, vendor_id (a deletion through a vendor's API: which, where, and its id
of the manifest; `regsweep restore` asks that API to restore it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from tasks.core.home import regsweep_home
from tasks.delete.errors import LedgerError

STATES = ("pending", "done", "gone", "failed")
ACTIONS = ("delete", "untag", "repair")


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
    registry_url: str = ""  # absent in ledgers written before it was recorded
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    action: str = "delete"  # or "untag" (absent in ledgers written before untag existed)
    placeholder: str = ""
    vendor: str = ""  # "github" when its REST API deleted it (`tasks.registry.vendors.github`)
    vendor_api: str = ""  # that API's URL
    vendor_id: str = ""  # and what it calls the manifest (GitHub: the package version id)

    @property
    def manifest_bytes(self) -> bytes:
        return base64.b64decode(self.manifest)


def ledger_index() -> Path:
    """The file listing every ledger regsweep has written on this machine, one absolute path
    a line: how a run finds earlier runs' ledgers (`tasks.delete.reconcile`), wherever
    `--ledger` put them."""
    return regsweep_home() / "ledgers"


def known_ledgers() -> list[Path]:
    """Every ledger in the index that still exists, oldest first."""
    try:
        lines = ledger_index().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    paths = [Path(line) for line in dict.fromkeys(line.strip() for line in lines) if line]
    return [p for p in paths if p.is_file()]


def _index(path: Path) -> None:
    index = ledger_index()
    line = f"{path.resolve()}\n"
    try:
        if line in index.read_text(encoding="utf-8").splitlines(keepends=True):
            return
    except FileNotFoundError:
        index.parent.mkdir(parents=True, exist_ok=True)
    # One append of one line on O_APPEND: concurrent writers never tear each other's lines.
    fd = os.open(index, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


class Ledger:
    """Append records to the ledger file at `path` (created with its directory, and named in
    the `ledger_index`).

    Every append returns only once its record is on disk (fsync). Concurrent `record` calls
    are committed as a group: records that arrive while a write is in progress go to disk
    together in the next write, one fsync for the lot.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _index(self.path)
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


_FIELDS = {f.name: f.type for f in fields(LedgerRecord)}
_REQUIRED = {
    f.name for f in fields(LedgerRecord) if f.default is MISSING and f.default_factory is MISSING
}


def read_ledger(path: str | Path) -> Iterator[LedgerRecord]:
    """Yield every record of the ledger at `path`, oldest first (see `numbered_records`)."""
    for _, record in numbered_records(path):
        yield record


def numbered_records(path: str | Path) -> Iterator[tuple[int, LedgerRecord]]:
    """Yield (line number, record) for every record of the ledger at `path`, oldest first.

    A crash mid-append leaves at most one torn line, the last, without its newline: it is
    skipped. Raises `LedgerError` naming the line for any other line that is not a record
    (not UTF-8, not JSON, a missing, unknown or mistyped field, an unknown state), and for a
    file with content but no record at all.
    """
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    found = False
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        torn = number == len(lines)  # the last piece, not ended by a newline
        try:
            record = _parse(raw)
        except LedgerError as exc:
            if torn and found:
                return
            raise LedgerError(f"{path}:{number}: {exc}") from None
        found = True
        yield number, record
    if data.strip() and not found:
        raise LedgerError(f"{path}: not a regsweep ledger (no record in it)")


def _parse(raw: bytes) -> LedgerRecord:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise LedgerError("not a JSON record") from None
    if not isinstance(data, dict):
        raise LedgerError("not a JSON object")
    missing = sorted(_REQUIRED - set(data))
    unknown = sorted(set(data) - set(_FIELDS))
    if missing or unknown:
        raise LedgerError(f"fields missing {missing} or unknown {unknown}")
    for name, value in data.items():
        wanted = list if name == "tags" else str
        if not isinstance(value, wanted) or (
            name == "tags" and not all(isinstance(t, str) for t in value)
        ):
            raise LedgerError(f"field {name!r} is not a {wanted.__name__}")
    if data["state"] not in STATES:
        raise LedgerError(f"unknown state {data['state']!r}")
    if data.get("action", "delete") not in ACTIONS:
        raise LedgerError(f"unknown action {data['action']!r}")
    return LedgerRecord(**data)
