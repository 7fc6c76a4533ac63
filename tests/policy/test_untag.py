"""The `untag` action (issue #18): a tag no rule keeps goes even when another, kept tag
shares its digest, but only where the digest is kept for its tags alone; a digest a rule
keeps as a whole keeps every tag on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.cluster.extract import IMAGE_COLUMNS as CLUSTER_COLUMNS
from tasks.core.frames import typed_frame
from tests.policy.helpers import HOST, Registry, plan_for
from tests.policy.test_pull_rules import dg

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=200)


def config(**cleanup: Any) -> dict[str, Any]:
    return {
        "kubernetes": {"enabled": True},
        "cleanup": {"disableGitHistoryBasedPolicy": True, "unlinked": "delete", **cleanup},
    }


def uses(*references: tuple[str, str, str]) -> pd.DataFrame:
    """Cluster rows: (tag, digest, source) of images in repository `app`."""
    rows = [
        {
            "context": "k",
            "namespace": "prod",
            "kind": "Deployment",
            "object": "web",
            "container": "c",
            "image": f"{HOST}/app" + (f"@{digest}" if digest else f":{tag}"),
            "registry": HOST,
            "repository": "app",
            "tag": tag,
            "digest": digest,
            "source": source,
        }
        for tag, digest, source in references
    ]
    return typed_frame(rows, CLUSTER_COLUMNS)


def actions(plan: Any) -> dict[str, str]:
    return dict(zip(plan.table["tag"], plan.table["action"], strict=True))


def test_a_tag_kept_by_keep_tags_leaves_its_digest_siblings_to_untag() -> None:
    reg = Registry()
    reg.image(dg(1), ["v1.2.0", "latest", "branch-abc"], OLD)
    reg.image(dg(2), ["branch-old"], OLD)
    plan = plan_for(reg, None, NOW, config(keepTags=["/v.*/"]))
    assert actions(plan) == {
        "v1.2.0": "keep",
        "latest": "untag",
        "branch-abc": "untag",
        "branch-old": "delete",
    }
    untagged = plan.table[plan.table["action"] == "untag"]
    assert set(untagged["reason"]) == {"no-policy"} and untagged["reasons"].map(len).eq(0).all()


def test_a_cluster_or_helm_reference_by_tag_keeps_that_tag_and_one_by_digest_every_tag() -> None:
    reg = Registry()
    reg.image(dg(1), ["v1", "tmp-1"], OLD)
    reg.image(dg(2), ["v2", "tmp-2"], OLD)
    reg.image(dg(3), ["v3", "tmp-3"], OLD)
    cluster = uses(("v1", "", "spec"), ("v2", "", "helm"), ("", dg(3), "status"))
    plan = plan_for(reg, None, NOW, config(), cluster=cluster)
    assert actions(plan) == {
        "v1": "keep",
        "tmp-1": "untag",
        "v2": "keep",
        "tmp-2": "untag",
        "v3": "keep",  # by digest: which tag the pod restarts with is not known
        "tmp-3": "keep",
    }
    reasons = plan.table.set_index("tag")["reason"]
    assert (reasons["v1"], reasons["v2"], reasons["tmp-3"]) == (
        "kubernetes",
        "helm-history",
        "kubernetes",
    )


def test_a_digest_kept_as_a_whole_keeps_every_tag_and_untag_off_keeps_them_all() -> None:
    reg = Registry()
    reg.image(dg(1), ["v1", "fresh-tmp"], NOW - timedelta(minutes=5))  # built-within
    reg.image(dg(2), ["v2", "tmp"], OLD)
    reg.image(dg(3), ["listed", "other"], OLD)
    cfg = config(keepTags=["/v.*/"])
    plan = plan_for(reg, None, NOW, cfg, keep_list=[f"{HOST}/app@{dg(3)}"])
    assert actions(plan) == {
        "v1": "keep",
        "fresh-tmp": "keep",
        "v2": "keep",
        "tmp": "untag",
        "listed": "keep",  # the keep list names the digest: every tag stays
        "other": "keep",
    }
    off = plan_for(reg, None, NOW, config(keepTags=["/v.*/"], untag="off"))
    assert "untag" not in set(off.table["action"])
    assert off.table.set_index("tag").loc["tmp", "reason"] == "shared-digest"


def test_signature_tags_follow_their_subject_and_are_never_untagged() -> None:
    reg = Registry()
    subject = reg.image(dg(1), ["v1", "tmp"], OLD)
    reg.image(dg(2), [f"sha256-{subject[7:]}.sig"], OLD)
    plan = plan_for(reg, None, NOW, config(keepTags=["/v.*/"]))
    assert actions(plan) == {"v1": "keep", "tmp": "untag", f"sha256-{subject[7:]}.sig": "keep"}


@st.composite
def registries(draw: st.DrawFn) -> tuple[Registry, list[str], pd.DataFrame, list[str]]:
    """A repository of images with shared tags, a keepTags set, cluster references by tag
    or digest, and a keep list."""
    reg = Registry()
    names = iter(range(10_000))
    tags_of: dict[str, list[str]] = {}
    for n in range(draw(st.integers(0, 8))):
        count = draw(st.integers(0, 4))
        kinds = draw(st.lists(st.sampled_from(["v", "b", "x"]), min_size=count, max_size=count))
        tags = [f"{k}{next(names)}" for k in kinds]
        fresh = draw(st.booleans())
        reg.image(dg(n + 1), tags, NOW - timedelta(minutes=5) if fresh else OLD)
        tags_of[dg(n + 1)] = tags
    all_tags = [t for tags in tags_of.values() for t in tags]
    digests = list(tags_of)
    refs: list[tuple[str, str, str]] = []
    if all_tags:
        for tag in draw(st.lists(st.sampled_from(all_tags), max_size=3)):
            refs.append((tag, "", draw(st.sampled_from(["spec", "helm"]))))
    if digests:
        for digest in draw(st.lists(st.sampled_from(digests), max_size=2)):
            refs.append(("", digest, "status"))
    listed = [f"{HOST}/app:{t}" for t in draw(st.lists(st.sampled_from(all_tags or ["-"])))]
    return reg, ["/v.*/"], uses(*refs), listed


@settings(max_examples=150, deadline=None)
@given(registries())
def test_invariants_of_untag(case: tuple[Registry, list[str], pd.DataFrame, list[str]]) -> None:
    reg, keep_tags, cluster, listed = case
    plan = plan_for(reg, None, NOW, config(keepTags=keep_tags), cluster=cluster, keep_list=listed)
    off = plan_for(
        reg, None, NOW, config(keepTags=keep_tags, untag="off"), cluster=cluster, keep_list=listed
    )
    table = plan.table
    by_digest = table.groupby("digest")["action"].agg(set).to_dict()
    for digest, found in by_digest.items():
        # a digest is deleted whole, or kept with at least one kept row beside its untags
        assert found == {"delete"} or "keep" in found, (digest, found)
    # untag never changes which digests are kept or deleted
    assert by_digest.keys() == set(off.table["digest"])
    assert {d for d, found in by_digest.items() if found == {"delete"}} == set(
        off.table.loc[off.table["action"] == "delete", "digest"]
    )
    assert "untag" not in set(off.table["action"])
    # an untagged tag is one no rule keeps: not a keepTags match, not referenced by tag,
    # not listed, and its digest is kept by no rule that keeps a digest whole
    fresh = {i["digest"] for i in reg.images if i["created"] > NOW - timedelta(hours=2)}
    by_tag_refs = set(cluster.loc[cluster["tag"] != "", "tag"])
    by_digest_refs = set(cluster.loc[cluster["digest"] != "", "digest"])
    listed_tags = {entry.rsplit(":", 1)[1] for entry in listed}
    for row in table[table["action"] == "untag"].itertuples(index=False):
        assert not row.tag.startswith("v")
        assert row.tag not in by_tag_refs | listed_tags
        assert row.digest not in fresh | by_digest_refs
    # and every such tag on a digest kept for its tags alone is untagged
    for row in off.table[off.table["reason"] == "shared-digest"].itertuples(index=False):
        if row.digest not in fresh | by_digest_refs:
            assert actions(plan)[row.tag] == "untag", row
