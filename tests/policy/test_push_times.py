"""The vendor's push times in the registry policies' push rules (issue #17): where the
registry stage read them (`PlanInputs.pushed`), they rank instead of `created`; an image the
vendor's listing lacks is kept (not known to be old); elsewhere `created` ranks as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy.helpers import Registry, plan_for

NOW = datetime(2026, 11, 30, tzinfo=UTC)
D = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # what reproducible builds write as `created`
SOURCE = "ECR imagePushedAt"
REPO = "mirror/tool"


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def config(**policy: Any) -> dict[str, Any]:
    entry = {"repositories": ["mirror/*"], **policy}
    return {
        "kubernetes": {"enabled": False},
        "cleanup": {
            "disableGitHistoryBasedPolicy": True,
            "disableBuiltWithinLastNHoursPolicy": True,
            "registryPolicies": [entry],
        },
    }


def pushed(digest: str, when: datetime | None, repository: str = REPO) -> dict[str, Any]:
    return {"repository": repository, "digest": digest, "pushed": when, "source": SOURCE}


def kept(plan: Any) -> set[str]:
    table = plan.table
    return set(table.loc[table["action"] == "keep", "digest"])


def test_vendor_push_times_rank_where_created_is_the_same_for_all() -> None:
    """Reproducible builds: every `created` is 1970; the vendor's times tell the newest."""
    reg = Registry()
    times = {dg(1): NOW - 5 * D, dg(2): NOW - 1 * D, dg(3): NOW - 9 * D, dg(4): NOW - 2 * D}
    for n, digest in enumerate(times):
        reg.image(digest, [f"v{n}"], EPOCH, repository=REPO)
    rows = [pushed(d, when) for d, when in times.items()]
    plan = plan_for(reg, None, NOW, config(mostRecentlyPushedCount=2), pushed=rows)
    assert kept(plan) == {dg(2), dg(4)}
    evidence = plan.evidence[(REPO, dg(2))][0]
    assert "1st most recently pushed in mirror/tool" in evidence
    assert f"by {SOURCE}" in evidence


def test_pushed_within_reads_the_vendor_time_not_created() -> None:
    """A mirrored image built long ago and pushed yesterday is kept; one built yesterday but
    (by the vendor's record) pushed 40 days ago is not."""
    reg = Registry()
    reg.image(dg(1), ["old-build"], NOW - 400 * D, repository=REPO)
    reg.image(dg(2), ["new-build"], NOW - 1 * D, repository=REPO)
    rows = [pushed(dg(1), NOW - 1 * D), pushed(dg(2), NOW - 40 * D)]
    plan = plan_for(reg, None, NOW, config(pushedWithin="720h"), pushed=rows)
    assert kept(plan) == {dg(1)}
    line = plan.evidence[(REPO, dg(1))][0]
    assert line.startswith("pushed-recently: cleanup.registryPolicies[0]: pushed ")
    assert f"by {SOURCE}, within pushedWithin 720h" in line


def test_an_image_the_vendor_does_not_list_is_kept_and_takes_no_rank() -> None:
    """NaT: the listing lacked it (deleted or pushed while it was paged). Kept, with evidence
    saying why; the count still keeps the newest two of the listed ones."""
    reg = Registry()
    for n in range(1, 5):
        reg.image(dg(n), [f"v{n}"], NOW - 300 * D, repository=REPO)
    rows = [pushed(dg(1), None), pushed(dg(2), NOW - 3 * D)]
    rows += [pushed(dg(3), NOW - 2 * D), pushed(dg(4), NOW - 50 * D)]
    plan = plan_for(reg, None, NOW, config(mostRecentlyPushedCount=2), pushed=rows)
    assert kept(plan) == {dg(1), dg(2), dg(3)}
    assert "lists no push time for it" in plan.evidence[(REPO, dg(1))][0]
    assert SOURCE in plan.evidence[(REPO, dg(1))][0]


def test_every_image_unlisted_keeps_them_all() -> None:
    reg = Registry()
    for n in range(1, 4):
        reg.image(dg(n), [f"v{n}"], NOW - 300 * D, repository=REPO)
    rows = [pushed(dg(n), None) for n in range(1, 4)]
    plan = plan_for(reg, None, NOW, config(pushedWithin="24h"), pushed=rows)
    assert kept(plan) == {dg(1), dg(2), dg(3)}


def test_a_repository_without_vendor_times_ranks_by_created_as_before() -> None:
    reg = Registry()
    reg.image(dg(1), ["a"], NOW - 1 * D, repository=REPO)
    reg.image(dg(2), ["b"], NOW - 9 * D, repository=REPO)
    reg.image(dg(3), ["c"], NOW - 1 * D, repository="mirror/other")
    reg.image(dg(4), ["d"], NOW - 9 * D, repository="mirror/other")
    rows = [pushed(dg(3), NOW - 20 * D, "mirror/other"), pushed(dg(4), NOW - 2 * D, "mirror/other")]
    plan = plan_for(reg, None, NOW, config(mostRecentlyPushedCount=1), pushed=rows)
    assert kept(plan) == {dg(1), dg(4)}  # mirror/tool by created, mirror/other by the vendor
    assert "by " not in plan.evidence[(REPO, dg(1))][0]


def test_an_index_is_as_new_as_its_newest_pushed_child() -> None:
    reg = Registry()
    reg.image(dg(11), [], EPOCH, repository=REPO)
    reg.image(dg(12), [], EPOCH, repository=REPO)
    reg.index(dg(10), ["multi"], [dg(11), dg(12)], repository=REPO)
    reg.image(dg(20), ["single"], EPOCH, repository=REPO)
    rows = [pushed(dg(10), None), pushed(dg(11), NOW - 30 * D), pushed(dg(12), NOW - 1 * D)]
    rows += [pushed(dg(20), NOW - 2 * D)]
    plan = plan_for(reg, None, NOW, config(mostRecentlyPushedCount=1), pushed=rows)
    assert kept(plan) == {dg(10), dg(11), dg(12)}  # the index (a child pushed 1 day ago)


def test_no_images_and_an_empty_push_frame_plan_nothing() -> None:
    plan = plan_for(Registry(), None, NOW, config(mostRecentlyPushedCount=1), pushed=[])
    assert plan.table.empty


@settings(max_examples=80, deadline=None)
@given(
    images=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=400),  # created, days ago
            st.one_of(st.none(), st.integers(min_value=0, max_value=60)),  # pushed, days ago
        ),
        max_size=20,
    ),
    count=st.integers(min_value=0, max_value=25),
    within_days=st.integers(min_value=0, max_value=60),
)
def test_invariants_of_push_rules_with_vendor_times(
    images: list[tuple[int, int | None]], count: int, within_days: int
) -> None:
    """Random repositories with vendor times (some unlisted): kept is exactly the unlisted,
    plus the `count` newest listed by push time, plus those pushed within the window; the
    image `created` plays no part."""
    reg = Registry()
    rows, times = [], {}
    for i, (built, push) in enumerate(images):
        digest = dg(i + 1)
        reg.image(digest, [f"t{i}"], NOW - built * D, repository=REPO)
        times[digest] = None if push is None else NOW - push * D - timedelta(minutes=i % 3)
        rows.append(pushed(digest, times[digest]))
    policy: dict[str, Any] = {"pushedWithin": f"{within_days * 24}h"}
    if count:
        policy["mostRecentlyPushedCount"] = count
    plan = plan_for(reg, None, NOW, config(**policy), pushed=rows)
    unlisted = {d for d, when in times.items() if when is None}
    listed = {d: when for d, when in times.items() if when is not None}
    order = sorted(listed, key=lambda d: (-listed[d].timestamp(), d))
    recent = {d for d, when in listed.items() if when >= NOW - within_days * D}
    assert kept(plan) == unlisted | set(order[:count]) | recent
