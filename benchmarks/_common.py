"""Shared by the benchmark scripts: RESULT lines, peak memory, timing."""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Benchmarks run as scripts (`python benchmarks/x.py`); make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
}


SMOKE = os.environ.get("REGSWEEP_BENCH_SMOKE") == "1"
"""A size of seconds, as `make test` runs every benchmark so none can rot: the figures are
printed, the targets not judged (a busy machine misses them, a broken benchmark crashes)."""


class Results:
    """Collect `RESULT <name> <value> (target <op> <value>)` lines; exit 0 only if all pass
    (at a smoke size, always: the targets are printed, not judged)."""

    def __init__(self) -> None:
        self.ok = True

    def add(self, name: str, value: float, op: str, target: float) -> None:
        passed = OPS[op](value, target)
        self.ok &= passed
        mark = "" if passed else "  MISSED"
        print(f"RESULT {name} {value:.3f} (target {op} {target}){mark}", flush=True)

    def exit(self) -> None:
        if SMOKE:
            print("smoke size: the targets above are not judged", flush=True)
            sys.exit(0)
        sys.exit(0 if self.ok else 1)


def peak_rss_mib() -> float:
    """Peak resident memory of this process or of any worker process it waited for, in MiB
    (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


@contextmanager
def timed(label: str, out: dict[str, float]) -> Iterator[None]:
    """Measure the block's wall time into out[label] and print it."""
    start = time.perf_counter()
    yield
    out[label] = time.perf_counter() - start
    print(f"{label}: {out[label]:.2f} s", flush=True)


def _raw_worker(
    args: tuple[str, str, list[str], dict[str, str], int, list[bytes] | None],
) -> int:
    """One process: `connections` keep-alive http.client connections, requests split among
    them (with `bodies[i]` for `paths[i]` when given); returns how many answers were not
    2xx."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    base, method, paths, headers, connections, bodies = args
    target = urlsplit(base)
    failures = 0
    lock = threading.Lock()

    def run(share: list[int]) -> None:
        nonlocal failures
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port)
        bad = 0
        for at in share:
            body = bodies[at] if bodies is not None else None
            conn.request(method, paths[at], body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            bad += response.status >= 300
        conn.close()
        with lock:
            failures += bad

    every = list(range(len(paths)))
    threads = [
        threading.Thread(target=run, args=(every[i::connections],)) for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def raw_ceiling(
    base: str,
    method: str,
    paths: list[str],
    headers: dict[str, str] | None = None,
    processes: int | None = None,
    connections: int = 8,
    bodies: list[bytes] | None = None,
) -> float:
    """Requests per second the server answers to minimal keep-alive clients on all cores.

    `paths` (with `bodies`, one each, when given) are split over `processes` (default: every
    core) x `connections`; raises if any answer is not 2xx, so a ceiling is never measured
    on errors.
    """
    import multiprocessing
    import os

    count = processes or os.cpu_count() or 1
    shares = [
        (base, method, paths[i::count], headers or {}, connections, bodies and bodies[i::count])
        for i in range(count)
    ]
    with multiprocessing.get_context("fork").Pool(count) as pool:
        start = time.perf_counter()
        failures = sum(pool.map(_raw_worker, shares))
        elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} of {len(paths)} raw {method} requests failed")
    return len(paths) / elapsed


def plan_fingerprint(table: pd.DataFrame) -> str:
    """sha256 of the plan table as CSV: equal before and after a change that must not
    change plans (printed by the benchmarks that build one)."""
    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()
