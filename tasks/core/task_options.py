"""Prefect options shared by the extraction tasks.

Extraction is keyed on its inputs (configuration and snapshot time) and the task source, and
persisted, so a rerun of a failed run skips it. One retry after a delay covers failures a
retry can fix (the HTTP client already retries single requests).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE

EXTRACTION_TASK_OPTIONS: dict[str, Any] = {
    "retries": 1,
    "retry_delay_seconds": 10,
    "cache_policy": INPUTS + TASK_SOURCE,
    "persist_result": True,
    "cache_expiration": timedelta(days=2),
}
