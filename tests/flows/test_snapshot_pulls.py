"""A run's saved inputs carry its pull records: a what-if replan of a pull window needs
neither the registry nor the pull store, and decides as the run did."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flows.pipeline import Stages, compute_plan
from flows.snapshot import load_inputs, replan, save_inputs
from tasks.core.config import parse_config
from tests.policy.helpers import extraction_of
from tests.policy.test_pull_rules import NOW, D, config, dg, kept, records, three_images


def test_saved_pull_records_replan_as_the_run_planned_and_answer_what_ifs(tmp_path: Path) -> None:
    reg = three_images()
    registry = extraction_of(reg)
    pulls = records({dg(1): NOW - 2 * D, dg(2): NOW - 40 * D})
    document = {"registry": {"url": "https://reg.test"}, "pulls": {}} | config(
        keepImagesPulledWithin="720h"
    )
    cfg = parse_config(document)
    planned = compute_plan(
        cfg,
        NOW,
        Stages(
            registry=lambda _: registry,
            git=lambda _: None,
            cluster=lambda _: None,
            pulls=lambda _: pulls,
        ),
    )
    assert kept(planned.plan) == {dg(1)}
    save_inputs(tmp_path, cfg, NOW, planned)

    _, _, inputs = load_inputs(tmp_path)
    assert inputs.pulls is not None
    pd.testing.assert_frame_equal(inputs.pulls.last, pulls.last)
    pd.testing.assert_frame_equal(inputs.pulls.days, pulls.days)
    assert inputs.pulls.uptime == pulls.uptime
    again = replan(tmp_path)
    assert again.table.equals(planned.plan.table)
    assert again.evidence == planned.plan.evidence
    assert kept(replan(tmp_path, {"keepImagesPulledWithin": "1440h"})) == {dg(1), dg(2)}
    # the window moved past the records' start: the gap keeps everything, as a run would
    assert kept(replan(tmp_path, now=NOW + 400 * D)) == {dg(1), dg(2), dg(3)}
