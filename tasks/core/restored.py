"""What `regsweep restore` put back, so the next runs keep it (keep reason ``restored``).

An image restored by hand was deleted again by the next night's run, and nothing said it
would be. `restore` appends one JSON line per manifest it put back to
$REGSWEEP_HOME/restored.jsonl; the plan keeps each for `safety.keepRestoredFor` (default
7 days) from that time. For good: name it in `cleanup.keepList`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasks.core.home import regsweep_home


@dataclass(frozen=True)
class RestoredImage:
    """A manifest `regsweep restore` put back in `registry` (host) at `time`."""

    registry: str
    repository: str
    digest: str
    time: str  # ISO 8601, UTC

    @property
    def moment(self) -> datetime:
        return datetime.fromisoformat(self.time)


def restored_file() -> Path:
    return regsweep_home() / "restored.jsonl"


def record_restored(entries: list[RestoredImage]) -> None:
    """Append `entries` (one write on O_APPEND: concurrent writers never tear lines)."""
    if not entries:
        return
    path = restored_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(e.__dict__, sort_keys=True) + "\n" for e in entries).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_restored(registry: str) -> list[RestoredImage]:
    """Every restore of `registry` (host) recorded here, oldest first; lines that are not a
    record (a torn last line, a hand edit) are skipped: a missed keep is what the run had
    before this file existed, never a deletion."""
    try:
        lines = restored_file().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = RestoredImage(**json.loads(line))
            entry.moment.astimezone(UTC)
        except (ValueError, TypeError):
            continue
        if entry.registry == registry:
            out.append(entry)
    return out
