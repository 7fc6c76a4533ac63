"""Shared by the benchmark scripts: RESULT lines, peak memory, timing."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Benchmarks run as scripts (`python benchmarks/x.py`); make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
}


class Results:
    """Collect `RESULT <name> <value> (target <op> <value>)` lines; exit 0 only if all pass."""

    def __init__(self) -> None:
        self.ok = True

    def add(self, name: str, value: float, op: str, target: float) -> None:
        passed = OPS[op](value, target)
        self.ok &= passed
        mark = "" if passed else "  MISSED"
        print(f"RESULT {name} {value:.3f} (target {op} {target}){mark}", flush=True)

    def exit(self) -> None:
        sys.exit(0 if self.ok else 1)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(label: str, out: dict[str, float]) -> Iterator[None]:
    """Measure the block's wall time into out[label] and print it."""
    start = time.perf_counter()
    yield
    out[label] = time.perf_counter() - start
    print(f"{label}: {out[label]:.2f} s", flush=True)
