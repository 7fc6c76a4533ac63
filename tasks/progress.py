"""Progress of long steps as log lines (visible in the Prefect UI and the worker's output)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def deletion_progress(logger: logging.Logger | logging.LoggerAdapter) -> Callable[[int, int], None]:  # type: ignore[type-arg]
    """A `progress(done, total)` callback logging every tenth of the digests, with the rate."""
    start = time.monotonic()

    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            rate = done / max(time.monotonic() - start, 1e-9)
            logger.info("delete: %d/%d digests handled (%.0f/s)", done, total, rate)

    return report


def scan_progress(
    logger: logging.Logger | logging.LoggerAdapter,  # type: ignore[type-arg]
) -> Callable[[str, int, int], None]:
    """A `progress(repository, tags_done, tags_total)` callback logging each repository as
    it completes, with the overall tag rate."""
    start = time.monotonic()
    tags = 0
    repositories = 0

    def report(repository: str, done: int, total: int) -> None:
        nonlocal tags, repositories
        if done == total:
            tags += total
            repositories += 1
            rate = tags / max(time.monotonic() - start, 1e-9)
            logger.info(
                "scan: %s done (%d tags); %d repositories, %d tags so far (%.0f tags/s)",
                repository,
                total,
                repositories,
                tags,
                rate,
            )

    return report
