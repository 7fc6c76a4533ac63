"""The pull rules (issue #17): keep what was pulled within the window, fail closed where
the records do not cover it, an index when it or a child was pulled, and zot's
mostRecentlyPulledCount."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.core.frames import typed_frame
from tasks.pulls.records import DAY_COLUMNS, LAST_COLUMNS, PullRecords
from tests.policy.helpers import Registry, plan_for

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
D = timedelta(days=1)
OLD = NOW - 200 * D


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def config(**cleanup: Any) -> dict[str, Any]:
    return {
        "kubernetes": {"enabled": False},
        "cleanup": {"disableGitHistoryBasedPolicy": True, "unlinked": "delete", **cleanup},
    }


def records(
    pulled: dict[str, datetime], up_since: datetime = NOW - 400 * D, repository: str = "app"
) -> PullRecords:
    last = [
        {"repository": repository, "digest": d, "last_pull": t, "user_agents": ["containerd/1.7"]}
        for d, t in pulled.items()
    ]
    days = [
        {
            "repository": repository,
            "digest": d,
            "day": datetime(t.year, t.month, t.day, tzinfo=UTC),
            "pulls": 3,
        }
        for d, t in pulled.items()
    ]
    return PullRecords(
        typed_frame(last, LAST_COLUMNS), typed_frame(days, DAY_COLUMNS), [(up_since, NOW)]
    )


def kept(plan: Any) -> set[str]:
    table = plan.table
    return set(table.loc[table["action"] == "keep", "digest"])


def three_images() -> Registry:
    reg = Registry()
    for i in (1, 2, 3):
        reg.image(dg(i), [f"v{i}"], OLD)
    return reg


def test_pulled_within_the_window_is_kept_with_when_by_whom_and_how_often() -> None:
    pulls = records({dg(1): NOW - 2 * D, dg(2): NOW - 40 * D})
    plan = plan_for(three_images(), None, NOW, config(keepImagesPulledWithin="720h"), pulls=pulls)
    assert kept(plan) == {dg(1)}  # dg(2) pulled too long ago, dg(3) never: deleted
    [why] = plan.evidence[("app", dg(1))]
    assert why.startswith("pulled-within: last pulled 2026-11-28 12:00 UTC by containerd/1.7")
    assert "3 pulls in the window" in why
    assert plan.table.set_index("digest").loc[dg(1), "reason"] == "pulled-within"


def test_a_gap_in_the_records_keeps_what_might_have_been_pulled() -> None:
    pulls = records({dg(1): NOW - 2 * D}, up_since=NOW - 3 * D)  # up only 3 of 30 days
    plan = plan_for(three_images(), None, NOW, config(keepImagesPulledWithin="720h"), pulls=pulls)
    assert kept(plan) == {dg(1), dg(2), dg(3)}
    assert "pull records do not cover the window" in plan.evidence[("app", dg(3))][0]


def test_no_records_at_all_keep_everything_a_pull_rule_covers() -> None:
    plan = plan_for(three_images(), None, NOW, config(keepImagesPulledWithin="720h"), pulls=None)
    assert kept(plan) == {dg(1), dg(2), dg(3)}


def test_an_index_is_pulled_when_a_child_was() -> None:
    reg = Registry()
    reg.image(dg(1), [], OLD)
    reg.image(dg(2), [], OLD)
    reg.index(dg(3), ["multi"], [dg(1), dg(2)])
    reg.image(dg(4), ["other"], OLD)
    pulls = records({dg(2): NOW - D})  # the kubelet pulled the arm64 child by digest
    plan = plan_for(reg, None, NOW, config(keepImagesPulledWithin="168h"), pulls=pulls)
    assert kept(plan) == {dg(1), dg(2), dg(3)}


def test_most_recently_pulled_count_in_a_registry_policy() -> None:
    reg = Registry()
    for i in range(1, 6):
        reg.image(dg(i), [f"1.{i}"], OLD, repository="mirror/x")
    pulls = records(
        {dg(1): NOW - 50 * D, dg(2): NOW - 5 * D, dg(3): NOW - 9 * D}, repository="mirror/x"
    )
    policy = {"repositories": ["mirror/*"], "mostRecentlyPulledCount": 2}
    plan = plan_for(reg, None, NOW, config(registryPolicies=[policy]), pulls=pulls)
    assert kept(plan) == {dg(2), dg(3)}
    assert "1st most recently pulled" in plan.evidence[("mirror/x", dg(2))][0]


def test_gaps_are_found_between_receivers_and_at_both_ends() -> None:
    up = [(NOW - 10 * D, NOW - 6 * D), (NOW - 6 * D + timedelta(seconds=5), NOW - 2 * D)]
    pulls = PullRecords(typed_frame([], LAST_COLUMNS), typed_frame([], DAY_COLUMNS), up)
    assert pulls.gaps(NOW - 10 * D, NOW - 2 * D) == []  # 5 s between restarts: no gap
    assert pulls.gaps(NOW - 12 * D, NOW) == [
        (NOW - 12 * D, NOW - 10 * D),
        (NOW - 2 * D, NOW),
    ]
