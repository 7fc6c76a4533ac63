"""The plan stage as a cached Prefect task (the work is in `tasks.policy.stage`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from tasks.policy.stage import make_plan

plan_task = task(name="plan", cache_policy=INPUTS + TASK_SOURCE, persist_result=True)(make_plan)
"""Prefect task: `make_plan`, cached on its inputs."""
