"""Retention scenarios with controlled commit/tagger times and a fixed `now`.

Each scenario builds a real Git repository (origin + clone), images linked to its commits,
and asserts exactly which images the plan keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from flows.demo.gitrepo import GitRepoBuilder
from tasks.policy.table import PLAN_COLUMNS
from tests.policy.helpers import Registry, kept, plan_for

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=60)
H = timedelta(hours=1)
D = timedelta(days=1)


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def policies(*items: dict[str, Any]) -> dict[str, Any]:
    return {"cleanup": {"keepPolicies": list(items), "unlinked": "delete"}}


def branch(name: str, **per_ref: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {"references": {"branch": name}}
    if per_ref:
        policy["imagesPerReference"] = per_ref
    return policy


Scenario = Callable[[GitRepoBuilder, Registry], tuple[dict[str, Any], set[str]]]


def deleted_branch(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    m1 = git.commit("main", NOW - 3 * D)
    m2 = git.commit("main", NOW - 2 * D)
    f1 = git.commit("feature", NOW - D, parents=[m1])
    git.push("main", "feature")
    git.delete_remote_branch("feature")  # the local branch remains
    reg.image(dg(1), ["m1"], OLD, m1)
    reg.image(dg(2), ["m2"], OLD, m2)
    reg.image(dg(3), ["f1"], OLD, f1)
    return policies(branch("/.*/", last=1)), {dg(2)}


def unpushed_commit(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    m1 = git.commit("main", NOW - 2 * D)
    git.push("main")
    local = git.commit("main", NOW - D)  # committed, never pushed
    reg.image(dg(1), ["m1"], OLD, m1)
    reg.image(dg(2), ["local"], OLD, local)
    return policies(branch("main", last=5)), {dg(1)}


def last_zero_and_all(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    shas = [git.commit("main", NOW - (5 - i) * D) for i in range(4)]
    f = git.commit("feature", NOW - D, parents=[shas[0]])
    git.push("main", "feature")
    for i, sha in enumerate(shas):
        reg.image(dg(i + 1), [f"m{i}"], OLD, sha)
    reg.image(dg(9), ["f"], OLD, f)
    return (
        policies(branch("main", last=-1), branch("feature", last=0)),
        {dg(1), dg(2), dg(3), dg(4)},
    )


def two_images_one_commit(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    c1 = git.commit("main", NOW - 2 * D)
    c2 = git.commit("main", NOW - D)
    git.push("main")
    reg.image(dg(1), ["old"], OLD, c1)
    reg.image(dg(2), ["a"], OLD, c2)
    reg.image(dg(3), ["b"], OLD, c2)  # same commit: one slot
    return policies(branch("main", last=1)), {dg(2), dg(3)}


def images_in_alone(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    shas = [git.commit("main", NOW - (10 - i) * D) for i in range(10)]
    git.push("main")
    for i, sha in enumerate(shas):
        reg.image(dg(i + 1), [f"m{i}"], OLD, sha)
    # `in` alone: every image whose commit is within 3 days (no `last` cap).
    return policies(branch("main", **{"in": "72h"})), {dg(8), dg(9), dg(10)}


@pytest.mark.parametrize("operator", ["And", "Or"])
def test_images_per_reference_operator(git_repo: GitRepoBuilder, operator: str) -> None:
    reg = Registry()
    shas = [git_repo.commit("main", NOW - (10 - i) * D) for i in range(10)]
    git_repo.push("main")
    for i, sha in enumerate(shas):
        reg.image(dg(i + 1), [f"m{i}"], OLD, sha)
    config = policies(branch("main", last=2, operator=operator, **{"in": "96h"}))
    plan = plan_for(reg, git_repo, NOW, config)
    # last 2 -> m8, m9; in 96h -> m6..m9 (commit times 4..1 days ago).
    expected = {dg(9), dg(10)} if operator == "And" else {dg(7), dg(8), dg(9), dg(10)}
    assert kept(plan) == expected


@pytest.mark.parametrize("operator", ["And", "Or"])
def test_references_limit_operator(git_repo: GitRepoBuilder, operator: str) -> None:
    reg = Registry()
    base = git_repo.commit("main", NOW - 20 * D)
    heads = {}
    for i, age in enumerate([1, 2, 5, 9]):  # branch b0 newest .. b3 oldest
        heads[i] = git_repo.commit(f"b{i}", NOW - age * D, parents=[base])
        reg.image(dg(i + 1), [f"b{i}"], OLD, heads[i])
    git_repo.push("main", "b0", "b1", "b2", "b3")
    limit = {"last": 1, "in": "144h", "operator": operator}
    config = policies({"references": {"branch": "/b.*/", "limit": limit}})
    plan = plan_for(reg, git_repo, NOW, config)
    # last 1 -> b0; in 6 days -> b0, b1, b2.
    expected = {dg(1)} if operator == "And" else {dg(1), dg(2), dg(3)}
    assert kept(plan) == expected


def limit_in_alone(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    base = git.commit("main", NOW - 20 * D)
    fresh = git.commit("fresh", NOW - D, parents=[base])
    stale = git.commit("stale", NOW - 10 * D, parents=[base])
    git.push("main", "fresh", "stale")
    reg.image(dg(1), ["fresh"], OLD, fresh)
    reg.image(dg(2), ["stale"], OLD, stale)
    return policies({"references": {"branch": "/.*/", "limit": {"in": "168h"}}}), {dg(1)}


def tag_dates(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    # Annotated tag: its tagger time counts (new); lightweight: its commit time (old).
    c1 = git.commit("main", NOW - 30 * D)
    c2 = git.commit("main", NOW - 20 * D)
    git.tag("annotated", c1, NOW - D)
    git.tag("lightweight", c2)
    git.push("main")
    reg.image(dg(1), ["annotated"], OLD, c1)
    reg.image(dg(2), ["lightweight"], OLD, c2)
    config = policies({"references": {"tag": "/.*/", "limit": {"in": "168h"}}})
    return config, {dg(1)}


def overlap_particular_last(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    shas = [git.commit("main", NOW - (5 - i) * D) for i in range(5)]
    git.push("main")
    for i, sha in enumerate(shas):
        reg.image(dg(i + 1), [f"m{i}"], OLD, sha)
    # General then particular: main takes last 3.
    return policies(branch("/.*/", last=1), branch("main", last=3)), {dg(3), dg(4), dg(5)}


def overlap_general_last(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    shas = [git.commit("main", NOW - (5 - i) * D) for i in range(5)]
    git.push("main")
    for i, sha in enumerate(shas):
        reg.image(dg(i + 1), [f"m{i}"], OLD, sha)
    # Particular then general: the last policy selecting main (last 1) wins.
    return policies(branch("main", last=3), branch("/.*/", last=1)), {dg(5)}


def merge_history(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    base = git.commit("main", NOW - 10 * D)
    side = git.commit("topic", NOW - 5 * D, parents=[base])
    main2 = git.commit("main", NOW - 6 * D, parents=[base])
    merge = git.commit("main", NOW - 4 * D, parents=[main2, side])
    git.push("main")
    reg.image(dg(1), ["side"], OLD, side)  # reachable only through the merge's 2nd parent
    reg.image(dg(2), ["main2"], OLD, main2)
    reg.image(dg(3), ["base"], OLD, base)
    assert merge
    return policies(branch("main", last=2)), {dg(1), dg(2)}


def short_sha_labels(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    c1 = git.commit("main", NOW - 2 * D)
    c2 = git.commit("main", NOW - D)
    git.push("main")
    reg.image(dg(1), ["a"], OLD, c1[:7])
    reg.image(dg(2), ["b"], OLD, c2[:9])
    return policies(branch("main", last=1)), {dg(2)}


def tag_pattern_links(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    c1 = git.commit("main", NOW - 2 * D)
    c2 = git.commit("main", NOW - D)
    git.push("main")
    reg.image(dg(1), [f"main-{c1[:10]}"], OLD)
    reg.image(dg(2), [f"main-{c2[:10]}"], OLD)
    config = policies(branch("main", last=1))
    config["link"] = {"tagPattern": r"main-(?P<commit>[0-9a-f]{7,40})"}
    return config, {dg(2)}


def default_policies(git: GitRepoBuilder, reg: Registry) -> tuple[dict[str, Any], set[str]]:
    shas = [git.commit("main", NOW - (12 - i) * D) for i in range(12)]
    feature = [
        git.commit("feature", NOW - (3 - i) * D, parents=None if i else [shas[0]]) for i in range(3)
    ]
    stale = git.commit("stale", NOW - 30 * D, parents=[shas[0]])
    git.push("main", "feature", "stale")
    for i, sha in enumerate(shas):
        reg.image(dg(i + 1), [f"m{i}"], OLD, sha)
    for i, sha in enumerate(feature):
        reg.image(dg(20 + i), [f"f{i}"], OLD, sha)
    reg.image(dg(30), ["stale"], OLD, stale)
    # werf 2's defaults as its code has them (reference_to_scan.go; #6668 set main to 2 in
    # February 2025, #6708 back to 10 in March; the docs still say 2): main keeps its last
    # 10 -> m2..m11; feature: last 2 within 168h -> f1, f2; stale: a branch older than 168h
    # is not selected by the /.*/ policy.
    expected = {dg(i) for i in range(3, 13)} | {dg(21), dg(22)}
    return {"cleanup": {"unlinked": "delete"}}, expected


SCENARIOS: dict[str, Scenario] = {
    "branch-deleted-from-remote": deleted_branch,
    "unpushed-commit": unpushed_commit,
    "last-0-and-minus-1": last_zero_and_all,
    "two-images-one-commit": two_images_one_commit,
    "images-per-reference-in-alone": images_in_alone,
    "limit-in-alone": limit_in_alone,
    "annotated-vs-lightweight-tag-dates": tag_dates,
    "overlap-general-then-particular": overlap_particular_last,
    "overlap-particular-then-general": overlap_general_last,
    "history-through-merge": merge_history,
    "short-sha-labels": short_sha_labels,
    "tag-pattern-links": tag_pattern_links,
    "default-policies": default_policies,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_scenario(git_repo: GitRepoBuilder, scenario: Scenario) -> None:
    reg = Registry()
    config, expected = scenario(git_repo, reg)
    plan = plan_for(reg, git_repo, NOW, config)
    assert kept(plan) == expected


def test_plan_table_schema_and_reasons(git_repo: GitRepoBuilder) -> None:
    c1 = git_repo.commit("main", NOW - 2 * D)
    c2 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    reg = Registry()
    reg.image(dg(1), ["v1.0.0", "build-1"], OLD, c1)  # keep-tag on one tag: untag the other
    reg.image(dg(2), ["build-2"], OLD, c2)
    reg.image(dg(3), ["tmp"], NOW - H)  # unlinked but fresh
    config = policies(branch("main", last=1))
    config["cleanup"]["keepTags"] = ["/v\\d+\\.\\d+\\.\\d+/"]
    plan = plan_for(reg, git_repo, NOW, config).table
    assert list(plan.columns) == [
        "repository",
        "digest",
        "tag",
        "media_type",
        "created",
        "commits",
        "action",
        "reason",
        "reasons",
    ]
    assert str(plan["created"].dtype) == "datetime64[us, UTC]"
    by_tag = plan.set_index("tag")
    assert by_tag.loc["v1.0.0", "reason"] == "keep-tag"
    assert by_tag.loc["build-1", "reason"] == "no-policy"
    assert by_tag.loc["build-1", "action"] == "untag"
    assert by_tag.loc["build-1", "reasons"] == []
    assert by_tag.loc["build-2", "reason"] == "git-policy[0]"
    assert by_tag.loc["build-2", "commits"] == [c2]
    assert by_tag.loc["tmp", "reason"] == "built-within"
    config["cleanup"]["untag"] = "off"
    kept_whole = plan_for(reg, git_repo, NOW, config).table.set_index("tag")
    assert kept_whole.loc["build-1", ["action", "reason"]].tolist() == ["keep", "shared-digest"]


@pytest.mark.parametrize("images", [0, 1], ids=["empty-registry", "one-image"])
def test_plan_table_dtypes(git_repo: GitRepoBuilder, images: int) -> None:
    """The documented dtypes, however many rows (an empty frame must not fall back to
    float64 for the list columns)."""
    c1 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    reg = Registry()
    for n in range(images):
        reg.image(dg(n), ["a"], OLD, c1)
    table = plan_for(reg, git_repo, NOW, policies(branch("main", last=1))).table
    assert {name: str(dtype) for name, dtype in table.dtypes.items()} == {
        name: "object" if dtype == "object" else str(pd.Series([], dtype=dtype).dtype)
        for name, dtype in PLAN_COLUMNS.items()
    }


def test_index_children_and_referrers(git_repo: GitRepoBuilder) -> None:
    c1 = git_repo.commit("main", NOW - 2 * D)
    c2 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    reg = Registry()
    for n, commit in ((1, c1), (2, c1), (4, c2), (5, c2)):
        reg.image(dg(n), [], OLD, commit)  # platform children, untagged
    reg.index(dg(3), ["old"], [dg(1), dg(2)])
    reg.index(dg(6), ["new"], [dg(4), dg(5)])
    reg.image(dg(7), [f"sha256-{dg(6)[7:]}.sig"], OLD)  # signature of the kept index
    reg.image(dg(8), [f"sha256-{dg(3)[7:]}.sig"], OLD)  # signature of the deleted index
    reg.image(dg(9), [], OLD, subject=dg(99))  # referrer whose subject is gone
    plan = plan_for(reg, git_repo, NOW, policies(branch("main", last=1)))
    assert kept(plan) == {dg(4), dg(5), dg(6), dg(7)}
    table = plan.table.drop_duplicates("digest").set_index("digest")
    assert table.loc[dg(7), "reason"] == "referrer"
    assert "index-child" in table.loc[dg(4), "reasons"]


def test_cluster_and_keep_list_keep_images(git_repo: GitRepoBuilder) -> None:
    c1 = git_repo.commit("main", NOW - 2 * D)
    c2 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    reg = Registry()
    reg.image(dg(1), ["a"], OLD, c1)
    reg.image(dg(2), ["b"], OLD, c2)
    reg.image(dg(3), ["c"], OLD, c1)
    reg.image(dg(4), ["d"], OLD, c1)
    cluster = pd.DataFrame(
        [
            {
                "context": "k",
                "namespace": "ns",
                "kind": "Pod",
                "object": "p",
                "container": "c",
                "image": f"reg.test/app@{dg(1)}",
                "registry": "reg.test",
                "repository": "app",
                "tag": "",
                "digest": dg(1),
                "source": "status",
            },
            {
                "context": "k",
                "namespace": "ns",
                "kind": "Deployment",
                "object": "x@3/d",
                "container": "c",
                "image": "reg.test/app:c",
                "registry": "reg.test",
                "repository": "app",
                "tag": "c",
                "digest": "",
                "source": "helm",
            },
            {
                "context": "k",
                "namespace": "ns",
                "kind": "Pod",
                "object": "q",
                "container": "c",
                "image": "other.io/app:d",
                "registry": "other.io",
                "repository": "app",
                "tag": "d",
                "digest": "",
                "source": "spec",
            },
        ]
    )
    plan = plan_for(
        reg,
        git_repo,
        NOW,
        policies(branch("main", last=1)),
        cluster=cluster,
        keep_list=["reg.test/app:d"],
    )
    table = plan.table.set_index("tag")
    assert table.loc["a", "reason"] == "kubernetes"
    assert table.loc["c", "reason"] == "helm-history"
    assert table.loc["d", "reason"] == "keep-list"  # other.io's app:d is another registry
    assert kept(plan) == {dg(1), dg(2), dg(3), dg(4)}


def test_a_referrers_own_tags_do_not_decide_for_it(git_repo: GitRepoBuilder) -> None:
    """keepTags matches the signature tags, but a referrer shares its subject's decision:
    no reason of its own shows up on it, kept or deleted."""
    c1 = git_repo.commit("main", NOW - 2 * D)
    c2 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    reg = Registry()
    reg.image(dg(1), ["old"], OLD, c1)
    reg.image(dg(2), ["new"], OLD, c2)
    reg.image(dg(3), [f"sha256-{dg(1)[7:]}.sig"], OLD)
    reg.image(dg(4), [f"sha256-{dg(2)[7:]}.sig"], OLD)
    config = policies(branch("main", last=1))
    config["cleanup"]["keepTags"] = ["/sha256-.*/"]
    plan = plan_for(reg, git_repo, NOW, config)
    assert kept(plan) == {dg(2), dg(4)}
    table = plan.table.set_index("digest")
    assert (table.loc[dg(3), "action"], table.loc[dg(3), "reason"]) == ("delete", "no-policy")
    assert table.loc[dg(3), "reasons"] == []
    assert (table.loc[dg(4), "reason"], table.loc[dg(4), "reasons"]) == ("referrer", ["referrer"])


def test_git_policy_reasons_order_by_policy_number(git_repo: GitRepoBuilder) -> None:
    """With 11 policies, git-policy[2] comes before git-policy[10] (not as strings)."""
    c1 = git_repo.commit("main", NOW - D)
    git_repo.tag("v1", c1)
    git_repo.push("main")
    reg = Registry()
    reg.image(dg(1), ["a"], OLD, c1)
    items = [branch("nothing-matches") for _ in range(11)]
    items[2] = branch("main", last=1)
    items[10] = {"references": {"tag": "/.*/"}}
    plan = plan_for(reg, git_repo, NOW, policies(*items))
    row = plan.table.set_index("digest").loc[dg(1)]
    assert (row["reason"], row["reasons"]) == ("git-policy[2]", ["git-policy[2]", "git-policy[10]"])


def test_frames_in_several_arrow_chunks_plan_the_same(git_repo: GitRepoBuilder) -> None:
    """Frames put together with pd.concat (Dask results, appended runs) hold their string
    columns in several Arrow chunks; the plan must not care."""
    commits = [git_repo.commit("main", NOW - (5 - n) * D) for n in range(4)]
    git_repo.push("main")
    reg = Registry()
    for n, commit in enumerate(commits):
        reg.image(dg(n), [f"b{n}", f"c{n}"], OLD, commit)
    reg.index(dg(9), ["multi"], [dg(0), dg(1)])
    config = policies(branch("main", last=2))
    expected = plan_for(reg, git_repo, NOW, config)

    def chunked(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([frame.iloc[:1], frame.iloc[1:]], ignore_index=True)

    plan = plan_for(reg, git_repo, NOW, config, chunk=chunked)
    pd.testing.assert_frame_equal(plan.table, expected.table)
    assert plan.evidence == expected.evidence


def test_referrers_fallback_index_and_what_it_lists_share_the_subjects_decision(
    git_repo: GitRepoBuilder,
) -> None:
    """OCI 1.1's fallback index (tag `sha256-<subject hex>`) is not an unlinked image of its
    own: it and the referrers it lists are kept with a kept subject and deleted with a
    deleted one, so no kept index ever names a deleted manifest (issue #13, item 1)."""
    c1 = git_repo.commit("main", NOW - 2 * D)
    c2 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    reg = Registry()
    reg.image(dg(1), ["old"], OLD, c1)
    reg.image(dg(2), ["new"], OLD, c2)
    reg.image(dg(3), [], OLD)  # an SBOM of dg(1) with no `subject` field, listed only
    reg.index(dg(4), [f"sha256-{dg(1)[7:]}"], [dg(3)])
    reg.image(dg(5), [], OLD, subject=dg(2))
    reg.index(dg(6), [f"sha256-{dg(2)[7:]}"], [dg(5)])
    plan = plan_for(reg, git_repo, NOW, policies(branch("main", last=1)))
    assert kept(plan) == {dg(2), dg(5), dg(6)}
    table = plan.table.drop_duplicates("digest").set_index("digest")
    assert table.loc[dg(6), "reasons"] == ["referrer"]
    assert table.loc[dg(5), "reasons"] == ["referrer"]
    assert table.loc[dg(4), "action"] == table.loc[dg(3), "action"] == "delete"


def test_a_referrer_of_two_subjects_is_kept_while_either_is(git_repo: GitRepoBuilder) -> None:
    """Found by the randomised delete test: a `.sig` tag moved onto another signature makes
    it the referrer of two subjects; it must survive as long as one of them does."""
    c1 = git_repo.commit("main", NOW - 2 * D)
    c2 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    reg = Registry()
    reg.image(dg(1), ["old"], OLD, c1)
    reg.image(dg(2), ["new"], OLD, c2)
    reg.image(dg(3), [f"sha256-{dg(1)[7:]}.sig", f"sha256-{dg(2)[7:]}.sig"], OLD)
    plan = plan_for(reg, git_repo, NOW, policies(branch("main", last=1)))
    assert kept(plan) == {dg(2), dg(3)}


def test_a_referrer_that_a_kept_index_lists_is_kept(git_repo: GitRepoBuilder) -> None:
    """Found by the randomised delete test: a signature tag moved onto a child of a kept
    index makes the child a referrer of a deleted subject; the kept index must not end up
    naming a deleted manifest."""
    c1 = git_repo.commit("main", NOW - 2 * D)
    c2 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    reg = Registry()
    reg.image(dg(1), ["old"], OLD, c1)
    reg.image(dg(2), [f"sha256-{dg(1)[7:]}.sig"], OLD)  # also a platform child of dg(3)
    reg.image(dg(4), [], OLD, c2)
    reg.index(dg(3), ["new"], [dg(2), dg(4)])
    plan = plan_for(reg, git_repo, NOW, policies(branch("main", last=1)))
    assert kept(plan) == {dg(2), dg(3), dg(4)}
    table = plan.table.drop_duplicates("digest").set_index("digest")
    assert table.loc[dg(2), "reasons"] == ["index-child"]


def test_a_referrer_of_a_kept_referrer_is_kept_whatever_the_row_order(
    git_repo: GitRepoBuilder,
) -> None:
    """Found by the randomised delete test in CI: a `.sig` tag moved onto an index made it
    the referrer of a kept image; the index's own signature, decided before it, saw it not
    kept yet and was deleted. Referrers are decided to a fixpoint, so row order is moot."""
    c1 = git_repo.commit("main", NOW - D)
    git_repo.push("main")
    for order in ([3, 2, 1], [1, 2, 3]):
        reg = Registry()
        make = {
            1: lambda r: r.image(dg(1), ["new"], OLD, c1),  # the kept subject
            2: lambda r: r.index(dg(2), [f"sha256-{dg(1)[7:]}.sig"], [dg(4)]),  # its referrer
            3: lambda r: r.image(dg(3), [f"sha256-{dg(2)[7:]}.sig"], OLD),  # the referrer's
        }
        for n in order:
            make[n](reg)
        reg.image(dg(4), [], OLD)  # a child of the referrer index
        plan = plan_for(reg, git_repo, NOW, policies(branch("main", last=1)))
        assert kept(plan) == {dg(1), dg(2), dg(3), dg(4)}, order
