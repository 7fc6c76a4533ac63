"""The plan table: one row per tag and one per untagged image, sorted by repository,
action, tag and digest (the order `explain`, the report and a reader rely on), whatever
order the registry stage listed them in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.policy.table import PLAN_COLUMNS_ORDER
from tests.policy.helpers import Registry, plan_for
from tests.policy.test_pull_rules import dg

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=200)
CONFIG: dict[str, Any] = {
    "kubernetes": {"enabled": False},
    "cleanup": {"disableGitHistoryBasedPolicy": True, "unlinked": "delete", "keepTags": ["/k.*/"]},
}
# repositories listed out of order: "b" sorts after "a/z" and before "b0"
REPOSITORIES = ["b", "a/z", "b0", "a", "ab"]
TAGS = ["k1", "v1", "k2", "v10", "v2", "k10"]


@st.composite
def registries(draw: st.DrawFn) -> tuple[Registry, list[tuple[str, str, str]]]:
    """Random images over repositories listed out of order, some tagged (a kept `k*` tag
    beside a `v*` tag untags the latter), some untagged, and tags of manifests the scan
    did not return. Returns the registry and its (repository, digest, tag) rows."""
    reg = Registry()
    rows: list[tuple[str, str, str]] = []
    for n in range(draw(st.integers(0, 12))):
        repository = draw(st.sampled_from(REPOSITORIES))
        tags = draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True))
        taken = {(r, t) for r, _, t in rows}
        tags = [t for t in tags if (repository, t) not in taken]
        digest = dg(draw(st.integers(1, 6)) * 100 + n)  # digests not in row order
        if draw(st.booleans()) or not tags:
            reg.image(digest, tags, OLD, repository=repository)
        else:  # a tag of a manifest the scan did not return
            reg.tags += [{"repository": repository, "tag": t, "digest": digest} for t in tags]
        rows += [(repository, digest, t) for t in tags] or [(repository, digest, "")]
    return reg, rows


def order_key(row: Any) -> tuple[str, str, str, str]:
    return (row.repository, row.action, row.tag, row.digest)


@settings(max_examples=200, deadline=None)
@given(registries())
def test_the_table_is_every_row_once_in_reading_order(
    case: tuple[Registry, list[tuple[str, str, str]]],
) -> None:
    reg, rows = case
    table = plan_for(reg, None, NOW, CONFIG).table
    listed = list(table.itertuples(index=False))
    assert listed == sorted(listed, key=order_key)
    assert sorted(zip(table["repository"], table["digest"], table["tag"], strict=True)) == sorted(
        rows
    )
    media = {(i["repository"], i["digest"]): i["media_type"] for i in reg.images}
    for row in listed:  # the image's own media type; "" for a manifest the scan missed
        assert row.media_type == media.get((row.repository, row.digest), "")
        if row.tag.startswith("k") and (row.repository, row.digest) in media:
            assert row.action == "keep"


def test_an_empty_registry_plans_an_empty_table_of_every_column() -> None:
    table = plan_for(Registry(), None, NOW, CONFIG).table
    assert table.empty and list(table.columns) == PLAN_COLUMNS_ORDER


def test_actions_sort_delete_keep_untag_within_a_repository() -> None:
    reg = Registry()
    reg.image(dg(1), ["v1", "k1"], OLD, repository="b")  # k1 kept, v1 untagged
    reg.image(dg(2), ["v2"], OLD, repository="b")  # deleted
    reg.image(dg(3), ["v3"], OLD, repository="a")
    table = plan_for(reg, None, NOW, CONFIG).table
    assert list(zip(table["repository"], table["action"], table["tag"], strict=True)) == [
        ("a", "delete", "v3"),
        ("b", "delete", "v2"),
        ("b", "keep", "k1"),
        ("b", "untag", "v1"),
    ]
