"""Run the async stage code from sync tasks, whoever calls them."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
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
