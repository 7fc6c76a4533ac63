"""Build DataFrames in the exact schema a stage documents."""

from __future__ import annotations

from typing import Any

import pandas as pd


def typed_frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """Return a DataFrame of `rows` with exactly `columns` ({name: dtype}) in that order.

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
