"""The report's pull activity table and its note on images kept for a gap in the records."""

from __future__ import annotations

import pandas as pd

from flows.report import RunReport, pull_gap_notes
from tasks.core.frames import typed_frame
from tasks.pulls.records import DAY_COLUMNS, LAST_COLUMNS, PullRecords
from tests.policy.helpers import plan_for
from tests.policy.test_pull_rules import NOW, D, config, dg, records, three_images


def test_activity_counts_pulls_per_repository_in_each_window() -> None:
    last = [
        {"repository": "a", "digest": dg(1), "last_pull": NOW - D, "user_agents": []},
        {"repository": "a", "digest": dg(2), "last_pull": NOW - 20 * D, "user_agents": []},
        {"repository": "b", "digest": dg(3), "last_pull": NOW - 60 * D, "user_agents": []},
    ]
    days = [
        {"repository": "a", "digest": dg(1), "day": pd.Timestamp(NOW - D).normalize(), "pulls": 5},
        {
            "repository": "a",
            "digest": dg(2),
            "day": pd.Timestamp(NOW - 20 * D).normalize(),
            "pulls": 2,
        },
        {
            "repository": "b",
            "digest": dg(3),
            "day": pd.Timestamp(NOW - 60 * D).normalize(),
            "pulls": 7,
        },
        {
            "repository": "b",
            "digest": dg(3),
            "day": pd.Timestamp(NOW - 200 * D).normalize(),
            "pulls": 1,
        },
    ]
    pulls = PullRecords(typed_frame(last, LAST_COLUMNS), typed_frame(days, DAY_COLUMNS), [])
    activity = pulls.activity(NOW)
    assert activity.to_dict(orient="records") == [
        {
            "repository": "a",
            "last_pull": NOW - D,
            "digests": 2,
            "pulls_7d": 5,
            "pulls_30d": 7,
            "pulls_90d": 7,
        },
        {
            "repository": "b",
            "last_pull": NOW - 60 * D,
            "digests": 1,
            "pulls_7d": 0,
            "pulls_30d": 0,
            "pulls_90d": 7,
        },
    ]
    empty = PullRecords(typed_frame([], LAST_COLUMNS), typed_frame([], DAY_COLUMNS), [])
    assert empty.activity(NOW).empty

    plan = plan_for(three_images(), None, NOW, config())
    blobs = pd.DataFrame(columns=["repository", "digest", "blob", "size"])
    results = pd.DataFrame(columns=["repository", "digest", "outcome"])
    markdown = RunReport.build(plan.table, blobs, results, [], [], activity).markdown("dry run")
    assert "| a | 2026-11-29 12:00 UTC | 2 | 5 | 7 | 7 |" in markdown
    assert "| b | 2026-10-01 12:00 UTC | 1 | 0 | 0 | 7 |" in markdown
    assert "pulls, last 30 days" in markdown
    quiet = RunReport.build(plan.table, blobs, results, [], [], empty.activity(NOW))
    assert "no pull recorded" in quiet.markdown("dry run")


def test_images_kept_for_a_gap_are_counted_in_one_note() -> None:
    covered = records({dg(1): NOW - 2 * D})
    gapped = records({dg(1): NOW - 2 * D}, up_since=NOW - 3 * D)
    rule = config(keepImagesPulledWithin="720h")
    assert pull_gap_notes(plan_for(three_images(), None, NOW, rule, pulls=covered)) == []
    [note] = pull_gap_notes(plan_for(three_images(), None, NOW, rule, pulls=gapped))
    assert note.startswith(
        "2 image(s) kept because pull records do not cover the window "
        "(cleanup.keepImagesPulledWithin 720h)"
    )
