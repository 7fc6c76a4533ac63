"""Progress of long steps as log lines (visible in the Prefect UI and the worker's output)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

ScanProgress = Callable[[str, int, int], None]
"""Called as progress(repository, tags_done, tags_total) while the registry is scanned."""
DeleteProgress = Callable[[int, int], None]
"""Called as progress(digests_handled, digests_total) while the plan is executed."""


def deletion_progress(logger: logging.Logger | logging.LoggerAdapter) -> DeleteProgress:  # type: ignore[type-arg]
    """A `progress(done, total)` callback logging every tenth of the digests, with the rate."""
    start = time.monotonic()

    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            rate = done / max(time.monotonic() - start, 1e-9)
            logger.info("delete: %d/%d digests handled (%.0f/s)", done, total, rate)

    return report


class ScanTally:
    """Tags done per repository across a scan, for progress lines with the overall rate."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.tags: dict[str, int] = {}
        self.finished: set[str] = set()

    def update(self, repository: str, done: int, total: int) -> bool:
        """Record progress; True when this call finished the repository."""
        self.tags[repository] = done
        if done == total and repository not in self.finished:
            self.finished.add(repository)
            return True
        return False

    def summary(self) -> str:
        """e.g. `3 repositories done, 12,000 tags, 1,450 tags/s`."""
        tags = sum(self.tags.values())
        rate = tags / max(time.monotonic() - self.started, 1e-9)
        return f"{len(self.finished)} repositories done, {tags:,} tags, {rate:,.0f} tags/s"


def scan_progress(
    logger: logging.Logger | logging.LoggerAdapter,  # type: ignore[type-arg]
) -> ScanProgress:
    """A `progress(repository, tags_done, tags_total)` callback logging each repository as
    it completes, with the overall tag rate."""
    tally = ScanTally()

    def report(repository: str, done: int, total: int) -> None:
        if tally.update(repository, done, total):
            logger.info("scan: %s done (%d tags); %s", repository, total, tally.summary())

    return report
