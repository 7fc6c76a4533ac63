"""The keep rule that came closest to keeping a deletion, where no Git policy can be measured
(`tasks.policy.why_not.closest_rules`): how far outside keepImagesBuiltWithinLastNHours the
image was built. The Git half is judged against `explain` in tests/flows/test_explain_why_not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tasks.core.config import Config, parse_config
from tasks.policy import why_not
from tasks.policy.history import CommitHistory
from tasks.policy.why_not import closest_rules, walk_cost

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def table() -> pd.DataFrame:
    created = [NOW - timedelta(days=10), NOW - timedelta(hours=1), pd.NaT]
    return pd.DataFrame(
        {
            "repository": ["app"] * 3,
            "digest": ["sha256:old", "sha256:new", "sha256:unknown"],
            "tag": ["a", "b", "c"],
            "created": pd.to_datetime(created, utc=True),
        }
    )


def config(**cleanup: object) -> Config:
    base = {"disableGitHistoryBasedPolicy": True, **cleanup}
    return parse_config(
        {"registry": {"url": "http://r.test"}, "kubernetes": {"enabled": False}, "cleanup": base}
    )


def test_the_build_age_window_is_the_closest_rule_without_git() -> None:
    keys = [("app", "sha256:old"), ("app", "sha256:new"), ("app", "sha256:unknown")]
    found = closest_rules(table(), [], config(), None, NOW, keys)
    # built 10 days ago: outside the 2 h window by 10 days less 2 h; the new one is inside
    # the window (not a miss) and the one without a creation time has nothing to measure
    assert found == {
        ("app", "sha256:old"): "built 2026-05-22 00:00 UTC, outside "
        "keepImagesBuiltWithinLastNHours (2h) by 10 days"
    }
    off = config(disableBuiltWithinLastNHoursPolicy=True)
    assert closest_rules(table(), [], off, None, NOW, keys) == {}


def test_over_the_walk_budget_the_build_age_line_stands_in_for_git(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refs = pd.DataFrame({"name": ["main"], "kind": ["branch"], "commit": ["c1"], "time": [NOW]})
    history = CommitHistory.from_frame(
        pd.DataFrame({"sha": ["c1"], "time": [NOW], "parents": [[]]})
    )
    keys = [("app", "sha256:old")]
    assert walk_cost((refs, history), keys) == 1  # one reference, one commit, one repository
    monkeypatch.setattr(why_not, "WALK_BUDGET", 0)
    found = closest_rules(table(), [], config(), (refs, history), NOW, keys)
    assert found[keys[0]].startswith("built 2026-05-22 00:00 UTC")
