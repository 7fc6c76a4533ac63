"""The report lists what a run deletes and untags (issue #32: counts alone hid it): every
row in the `deletions` artifact, the first DELETIONS_SHOWN in the markdown report."""

from __future__ import annotations

import pandas as pd

from flows.report import DELETIONS_SHOWN, RunReport, deletions
from flows.result import problems
from tasks.core.frames import typed_frame
from tasks.delete.loader import RESULT_COLUMNS


def results(count: int) -> pd.DataFrame:
    rows = [
        {
            "repository": "team/app",
            "digest": f"sha256:{n:064x}",
            "tags": (f"pr-{n}",),
            "closure": f"sha256:{n:064x}",
            "outcome": "deleted" if n % 2 else "would-untag",
            "detail": "",
        }
        for n in range(count)
    ]
    rows.append({**rows[0], "digest": "sha256:" + "f" * 64, "outcome": "skipped-in-use"})
    return typed_frame(rows, RESULT_COLUMNS)


def images(count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "repository": ["team/app"] * count,
            "digest": [f"sha256:{n:064x}" for n in range(count)],
            "size": [1024 * n for n in range(count)],
        }
    )


def test_every_deletion_is_listed_with_its_size_and_none_that_was_spared() -> None:
    closest = {("team/app", f"sha256:{n:064x}"): f"rule {n}" for n in range(4)}
    listed = deletions(results(4), images(4), closest)
    assert listed.to_dict(orient="records") == [
        {
            "repository": "team/app",
            "tags": f"pr-{n}",
            "digest": f"sha256:{n:064x}",
            "size": 1024 * n,
            "outcome": "deleted" if n % 2 else "would-untag",
            "closest": f"rule {n}" if n % 2 else "",  # an untag's digest stays
        }
        for n in range(4)
    ]


def test_the_markdown_shows_the_first_rows_and_says_how_many_more() -> None:
    count = DELETIONS_SHOWN + 2
    report = RunReport(
        pd.DataFrame(columns=["repository", "kept", "deleted", "untagged", "bytes_reclaimable"]),
        pd.DataFrame(columns=["action", "reason", "digests"]),
        results(count),
        [],
        deletions=deletions(results(count), images(count)),
    )
    text = report.markdown("regsweep apply")
    rows = [line for line in text.splitlines() if line.startswith("| team/app |")]
    assert len(rows) == DELETIONS_SHOWN
    assert f"sha256:{0:064x}" in rows[0] and "| 0 B | would-untag |  |" in rows[0]
    assert "... and 2 more: the `deletions` table artifact lists them all" in text


def test_a_refusal_shared_by_many_deletions_is_one_line_with_a_count() -> None:
    """A run-wide guard refuses every deletion for one reason: the run says it once."""
    guard = "12 of 20 images name only commits Git does not know: rerun with --force"
    rows = [
        {**row, "outcome": "refused", "detail": guard}
        for row in results(3).to_dict(orient="records")[:3]
    ]
    rows.append({**rows[0], "digest": "sha256:" + "e" * 64, "outcome": "failed", "detail": "500"})
    lines = problems(typed_frame(rows, RESULT_COLUMNS))
    assert lines == [f"refused 3 deletion(s): {guard}", f"failed: team/app@sha256:{'e' * 64} — 500"]
