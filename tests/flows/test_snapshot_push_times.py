"""A run's saved inputs carry the vendor's push times: a replan decides as the run did, and a
run saved before push times were read still replans (by `created`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flows.pipeline import Stages, compute_plan
from flows.snapshot import load_inputs, replan, save_inputs
from tasks.core.config import parse_config
from tests.policy.helpers import Registry, extraction_of
from tests.policy.test_push_times import EPOCH, NOW, REPO, D, config, dg, kept, pushed


def test_saved_push_times_replan_as_the_run_planned(tmp_path: Path) -> None:
    reg = Registry()
    for n in range(1, 4):
        reg.image(dg(n), [f"v{n}"], EPOCH + n * D, repository=REPO)
    rows = [pushed(dg(1), NOW - D), pushed(dg(2), NOW - 9 * D), pushed(dg(3), None)]
    registry = extraction_of(reg, rows)
    cfg = parse_config(
        {"registry": {"url": "https://reg.test"}} | config(mostRecentlyPushedCount=1)
    )
    stages = Stages(registry=lambda _: registry, git=lambda _: None, cluster=lambda _: None)
    planned = compute_plan(cfg, NOW, stages)
    assert kept(planned.plan) == {dg(1), dg(3)}  # the newest pushed; the unlisted one
    save_inputs(tmp_path, cfg, NOW, planned)

    _, _, inputs = load_inputs(tmp_path)
    assert inputs.pushed is not None
    pd.testing.assert_frame_equal(inputs.pushed, registry.pushed)
    again = replan(tmp_path)
    assert again.table.equals(planned.plan.table)
    assert again.evidence == planned.plan.evidence

    (tmp_path / "inputs" / "pushed.parquet").unlink()  # as a run saved before push times
    assert load_inputs(tmp_path)[2].pushed is None
    assert kept(replan(tmp_path)) == {dg(3)}  # by `created`: v3 is the newest build
