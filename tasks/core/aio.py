"""Run the async stage code from sync tasks, whoever calls them."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)`, also when this thread already runs an event loop.

    Prefect runs a sync task in the caller's thread; when the flow itself was started from
    async code (`prefect flow-run retry`, some workers) that thread has a running loop and
    `asyncio.run` refuses. Then the coroutine gets its own loop in a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def for_each(items: list[T], work: Callable[[T], Awaitable[None]], workers: int) -> None:
    """Run `work` on every item with at most `workers` running at once: a fixed number of
    tasks however long the list (a task per tag up front took 3 GiB at 1,000,000 tags)."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(min(workers, len(items)))))
