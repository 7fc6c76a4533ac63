"""Build DataFrames in the exact schema a stage documents."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa


def use_system_allocator() -> None:
    """Allocate Arrow memory with the C library's allocator, unless the user chose one in
    ARROW_DEFAULT_MEMORY_POOL. pyarrow's default, mimalloc, backs large buffers with 2 MB
    huge pages that the kernel zeroes on first touch; at a million images that zeroing was
    a third of the plan's time, and grew with any other frame held in memory (pull records:
    the plan 1.39x slower with them; with the system allocator 1.16-1.21x, and the plan
    without them 1.78 -> 1.42 s)."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())


use_system_allocator()  # on import: every stage's frames are built after this module loads


def typed_frame(
    rows: list[dict[str, Any]] | dict[str, Any], columns: dict[str, str]
) -> pd.DataFrame:
    """Return a DataFrame of `rows` (records, or {name: values}) with exactly `columns`
    ({name: dtype}) in that order.

    Datetime columns accept ISO 8601 strings, datetimes or None (NaT); ``object`` columns
    are left as they are (lists, dicts).
    """
    df = pd.DataFrame(rows, columns=list(columns))
    for name, dtype in columns.items():
        if dtype.startswith("datetime64"):
            df[name] = pd.to_datetime(df[name], utc=True, format="ISO8601").astype(dtype)
        elif dtype != "object":
            df[name] = df[name].astype(dtype)
    return df


def column_rows(df: pd.DataFrame, *names: str) -> zip[tuple[Any, ...]]:
    """Iterate `names` columns of `df` row by row, as plain Python values.

    Much faster than zipping the Series themselves (Arrow-backed strings box every element).
    """
    return zip(*(df[name].tolist() for name in names), strict=True)


def arrow_strings(column: pd.Series) -> pa.Array:
    """A string column as one Arrow array: no copy for an Arrow-backed column in one chunk
    (a frame put together with `pd.concat` has several)."""
    values = pa.array(column, type=pa.large_string())
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


STRING_LISTS = pd.ArrowDtype(pa.large_list(pa.large_string()))
"""The dtype of list-of-string columns built in Arrow (elements come out as Python lists)."""


def arrow_string_lists(column: pd.Series) -> pa.Array:
    """A list-of-strings column (Arrow-backed, or Python lists / arrays) as one Arrow array."""
    values = pa.array(column, type=pa.large_list(pa.large_string()))
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around bulk building of acyclic data.

    Building 10^5..10^6 small lists, tuples and dicts triggers many full collections that
    find nothing (measured: 40% of the Git extraction and plan time); reference counting
    still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_micros(moment: datetime) -> int:
    """Epoch microseconds of a timezone-aware time (the unit of our datetime64[us] columns)."""
    return int(moment.timestamp() * 1_000_000)


def from_micros(micros: int) -> datetime:
    """The UTC time of epoch microseconds."""
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
