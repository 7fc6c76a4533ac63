"""cleanup.registryPolicies (issue #17, first part): zot's push rules per repository glob,
reason `pushed-recently`, the first matching policy replacing `cleanup.unlinked` there."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from tasks.core.config import parse_config
from tasks.core.errors import ConfigError
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tasks.registry.client import RegistryClient
from tests.policy.helpers import Registry, plan_for
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

NOW = datetime(2026, 11, 30, tzinfo=UTC)
D = timedelta(days=1)


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def no_git(**cleanup: Any) -> dict[str, Any]:
    return {
        "kubernetes": {"enabled": False},
        "cleanup": {"disableGitHistoryBasedPolicy": True, **cleanup},
    }


def kept(plan: Any) -> set[str]:
    table = plan.table
    return set(table.loc[table["action"] == "keep", "digest"])


def mirror(reg: Registry, count: int, repository: str = "mirror/nginx") -> None:
    """`count` images, image i pushed i days ago, tagged `1.<i>`."""
    for i in range(count):
        reg.image(dg(i + 1), [f"1.{i}"], NOW - i * D - timedelta(hours=1), repository=repository)


def test_most_recently_pushed_count_keeps_the_newest_and_deletes_the_rest() -> None:
    reg = Registry()
    mirror(reg, 8)
    policy = {"repositories": ["mirror/*"], "mostRecentlyPushedCount": 3}
    plan = plan_for(reg, None, NOW, no_git(registryPolicies=[policy]))
    assert kept(plan) == {dg(1), dg(2), dg(3)}  # unlinked: keep does not apply there
    first = plan.table.set_index("digest").loc[dg(1)]
    assert first["reason"] == "pushed-recently"
    assert "1st most recently pushed in mirror/nginx" in plan.evidence[("mirror/nginx", dg(1))][0]


def test_pushed_within_and_count_are_ored() -> None:
    reg = Registry()
    mirror(reg, 8)
    policy = {"repositories": ["mirror/*"], "mostRecentlyPushedCount": 1, "pushedWithin": "72h"}
    plan = plan_for(reg, None, NOW, no_git(registryPolicies=[policy]))
    assert kept(plan) == {dg(1), dg(2), dg(3)}  # 1 newest, plus pushed 1h, 1d1h, 2d1h ago


def test_tags_select_the_candidates_and_other_tags_follow_other_rules() -> None:
    reg = Registry()
    mirror(reg, 4)
    reg.image(dg(50), ["latest"], NOW - 30 * D, repository="mirror/nginx")
    policy = {"repositories": ["mirror/*"], "tags": ["/1\\..*/"], "mostRecentlyPushedCount": 1}
    plan = plan_for(reg, None, NOW, no_git(registryPolicies=[policy], keepTags=["latest"]))
    assert kept(plan) == {dg(1), dg(50)}  # `latest` is kept by keepTags, not the policy


def test_the_first_matching_policy_decides_and_unmatched_repositories_keep_unlinked() -> None:
    reg = Registry()
    mirror(reg, 5, "mirror/nginx")
    for i in range(3):
        reg.image(dg(100 + i), [f"x{i}"], NOW - 40 * D, repository="team/app")
    policies = [
        {"repositories": ["mirror/nginx"], "mostRecentlyPushedCount": 1},
        {"repositories": ["mirror/*"], "mostRecentlyPushedCount": 4},
    ]
    plan = plan_for(reg, None, NOW, no_git(registryPolicies=policies))
    assert kept(plan) == {dg(1)} | {dg(100), dg(101), dg(102)}  # team/app: unlinked keep


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"repositories": ["m/*"]}, "registryPolicies[0]"),
        ({"repositories": [], "mostRecentlyPushedCount": 1}, "registryPolicies[0].repositories"),
        ({"repositories": ["m/*"], "pushedWithin": "soon"}, "registryPolicies[0].pushedWithin"),
        ({"repositories": ["m/*"], "mostRecentlyPushedCount": -1}, "mostRecentlyPushedCount"),
        ({"repositories": ["m/*"], "tags": ["/[/"], "pushedWithin": "1h"}, "tags[0]"),
    ],
    ids=["no-rule", "no-repository", "bad-duration", "negative", "bad-regex"],
)
def test_a_bad_registry_policy_is_a_config_error_naming_it(
    policy: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"registry": {"url": "https://reg.test"}} | no_git(registryPolicies=[policy]))
    assert field in str(raised.value)


@settings(max_examples=80, deadline=None)
@given(
    ages=st.lists(
        st.tuples(st.integers(min_value=0, max_value=60), st.sampled_from([0, 1, 59])),
        min_size=0,
        max_size=25,
    ),
    count=st.integers(min_value=0, max_value=30),
    within_days=st.integers(min_value=0, max_value=60),
)
def test_invariants_kept_is_exactly_the_newest_count_or_within(
    ages: list[tuple[int, int]], count: int, within_days: int
) -> None:
    """Random repositories (ties and exact window edges included): the kept set is exactly
    (the `count` newest by push time) or (pushed within the window, edge included), never
    more, never less; nothing else in the repository."""
    reg = Registry()
    created = {}
    for i, (days, minutes) in enumerate(ages):
        created[dg(i + 1)] = NOW - days * D - timedelta(minutes=minutes)
        reg.image(dg(i + 1), [f"t{i}"], created[dg(i + 1)], repository="m/x")
    policy: dict[str, Any] = {"repositories": ["m/*"], "pushedWithin": f"{within_days * 24}h"}
    if count:
        policy["mostRecentlyPushedCount"] = count
    config = no_git(registryPolicies=[policy], disableBuiltWithinLastNHoursPolicy=True)
    plan = plan_for(reg, None, NOW, config)
    # newest first; ties by row order, as the plan ranks them
    order = sorted(created, key=lambda d: (-created[d].timestamp(), d))
    newest = set(order[:count])
    recent = {d for d, when in created.items() if when >= NOW - within_days * D}
    assert kept(plan) == newest | recent


def test_a_mirror_keeps_its_newest_on_the_real_registry(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """End to end on the real registry: a third-party mirror (no commit labels) keeps its 2
    most recently pushed images and those of the last 3 days; the rest is deleted; skopeo
    lists exactly what the policy keeps, and pulls every kept tag whole."""

    async def push() -> None:
        async with RegistryClient(registry.url) as client:
            for i in range(6):
                created = NOW - i * 2 * D - timedelta(hours=1)
                await push_image(client, "mirror/tool", [f"1.{i}"], created=created, seed=str(i))
            await push_image(client, "team/app", ["old"], created=NOW - 90 * D, seed="app")

    asyncio.run(push())
    config = parse_config(
        {
            "registry": {"url": registry.url, "repositories": ["mirror/*", "team/*"]},
            **no_git(
                registryPolicies=[
                    {
                        "repositories": ["mirror/*"],
                        "mostRecentlyPushedCount": 2,
                        "pushedWithin": "72h",
                    }
                ]
            ),
        }
    )
    planned = compute_plan(config, NOW, local_stages())
    run_deletion(
        config,
        planned.plan.table,
        planned.registry,
        DeleteRequest(apply=True, ledger_path=str(tmp_path / "ledger.jsonl")),
    )
    # pushed 1h, 2d1h (both newest two and within 72h): kept; 4d1h.. : deleted
    assert skopeo_tags(registry.url, "mirror/tool") == ["1.0", "1.1"]
    assert skopeo_tags(registry.url, "team/app") == ["old"]  # unmatched: unlinked: keep
    assert_every_tag_pulls(registry.url, ["mirror/tool", "team/app"])
