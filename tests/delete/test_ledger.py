"""The ledger file shared by several processes (per-repository delete tasks on Dask workers
of one machine): appends never interleave."""

from __future__ import annotations

import base64
import multiprocessing
from pathlib import Path

from tasks.delete.ledger import Ledger, LedgerRecord, read_ledger

RECORDS_PER_WRITER = 150
WRITERS = 4


def _record(writer: int, n: int) -> LedgerRecord:
    # ~64 KiB of manifest bytes: far above a page and Python's write buffer.
    manifest = base64.b64encode(bytes([writer]) * 48_000).decode()
    return LedgerRecord(
        state="pending",
        registry="r.example",
        repository=f"repo-{writer}",
        digest=f"sha256:{writer:02d}{n:062d}",
        tags=[f"t{n}"],
        media_type="application/vnd.oci.image.manifest.v1+json",
        manifest=manifest,
        reason="no-policy",
    )


def _write_many(path: str, writer: int) -> None:
    ledger = Ledger(path)
    for n in range(RECORDS_PER_WRITER):
        ledger.append(_record(writer, n))


def test_processes_appending_to_one_ledger_leave_only_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(path), w)) for w in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    lines = path.read_text().splitlines()
    records = list(read_ledger(path))
    assert len(lines) == len(records) == WRITERS * RECORDS_PER_WRITER  # no torn line skipped
    for record in records:
        writer = int(record.repository.split("-")[1])
        assert record.manifest_bytes == bytes([writer]) * 48_000
    per_writer = {w: [r.digest for r in records if r.repository == f"repo-{w}"] for w in range(4)}
    assert all(
        digests == [_record(w, n).digest for n in range(RECORDS_PER_WRITER)]
        for w, digests in per_writer.items()
    )
