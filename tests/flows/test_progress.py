"""Progress lines for long scans and deletions (the flow's tasks log through these)."""

from __future__ import annotations

import logging

import pytest

from tasks.core.progress import ScanTally, deletion_progress, scan_progress


def test_deletion_progress_every_tenth_and_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.progress")
    report = deletion_progress(logger)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for done in range(1, 96):
            report(done, 95)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 11  # 9, 18, ..., 90 and 95
    assert lines[0].startswith("delete: 9/95 digests handled")
    assert lines[-1].startswith("delete: 95/95 digests handled")


def test_scan_progress_per_repository(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.progress")
    report = scan_progress(logger)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for repository, total in (("a", 3), ("b", 2)):
            for done in range(1, total + 1):
                report(repository, done, total)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(";")[0] for line in lines] == [
        "scan: a done (3 tags)",
        "scan: b done (2 tags)",
    ]
    assert "2 repositories done, 5 tags" in lines[-1]
    assert lines[-1].endswith("tags/s")


def test_scan_tally_counts_each_repository_once_with_partial_progress() -> None:
    tally = ScanTally()
    assert not tally.update("a", 1, 3)
    assert tally.update("a", 3, 3)
    assert not tally.update("a", 3, 3)  # a repeated final report is not a second repository
    assert not tally.update("b", 1_500, 2_000)
    assert tally.summary().startswith("1 repositories done, 1,503 tags, ")
