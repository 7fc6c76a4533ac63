"""werf's own e2e cleanup cases (werf/werf `test/legacy_e2e/suites/cleanup/cleanup_test.go`
at 73d8d4ac9, "git history based policy"), encoded on werf's layout: stages and meta records
as werf writes them, the plan as regsweep decides it. Each case names the werf test it
encodes and what werf's test expects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flows.demo.gitrepo import GitRepoBuilder
from tasks.policy.werf_layout import murmur3_32
from tests.policy.helpers import Registry, decisions, plan_for

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
D = timedelta(days=1)
IMAGE = murmur3_32("image")
REPO = "project"


class Werf:
    """A werf repository: `build(commit, content)` pushes a stage per new content (reused
    otherwise) and the meta record of that commit, as `werf build` does."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.stages: dict[str, str] = {}  # content -> stage ID
        self.counter = 0

    def digest(self) -> str:
        self.counter += 1
        return f"sha256:{self.counter:064x}"

    def build(self, commit: str, content: str) -> str:
        if content not in self.stages:
            stage = f"{(content * 56)[:56].encode().hex()[:56]}-{1700000000000 + self.counter}"
            self.registry.image(self.digest(), [stage], NOW - 30 * D, repository=REPO)
            self.stages[content] = stage
        stage = self.stages[content]
        self.registry.image(
            self.digest(), [f"meta-{IMAGE}_{commit}_{stage}"], NOW - 30 * D, repository=REPO
        )
        return stage

    def plan(self, git: GitRepoBuilder, policies: list[dict[str, Any]]) -> dict[str, str]:
        """{tag: action} of every tag."""
        config = {"kubernetes": {"enabled": False}, "cleanup": {"keepPolicies": policies}}
        plan = plan_for(self.registry, git, NOW, config)
        by_digest = decisions(plan)
        table = plan.table
        return {t: by_digest[d] for t, d in zip(table["tag"], table["digest"], strict=True)}


def _branches(last: int | None = None, **per: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {"references": {"branch": "/.*/"}}
    if per or last is not None:
        policy["imagesPerReference"] = {**({"last": last} if last is not None else {}), **per}
    return policy


def _records(actions: dict[str, str], stage: str) -> dict[str, str]:
    return {
        t.split("_")[1][:7]: a
        for t, a in actions.items()
        if t.startswith("meta-") and t.endswith(stage)
    }


def test_keep_image_metadata_only_for_the_latest_commit_one_branch(
    git_repo: GitRepoBuilder,
) -> None:
    """werf: "should keep image metadata only for the latest commit (one branch)": three
    empty commits built with one content -> 3 records, after cleanup 1, the head's."""
    werf = Werf()
    commits = [git_repo.commit("main", NOW - (3 - i) * D) for i in range(3)]
    git_repo.push("main")
    stages = {werf.build(c, "same") for c in commits}
    assert len(stages) == 1  # content-based: one stage for the three commits
    stage = stages.pop()
    actions = werf.plan(git_repo, [_branches()])
    assert actions[stage] == "keep"
    assert _records(actions, stage) == {
        commits[0][:7]: "delete",
        commits[1][:7]: "delete",
        commits[2][:7]: "keep",
    }


def test_keep_all_image_metadata_several_branches(git_repo: GitRepoBuilder) -> None:
    """werf: "should keep all image metadata (several branches)": a branch at each of the
    three commits -> all 3 records stay."""
    werf = Werf()
    commits = []
    for i in range(3):
        commits.append(git_repo.commit("main", NOW - (3 - i) * D))
        git_repo.repo.references.create(f"refs/heads/test_{i}", git_repo.repo.get(commits[-1]).id)
    git_repo.push("main", "test_0", "test_1", "test_2")
    stages = {werf.build(c, "same") for c in commits}
    assert len(stages) == 1  # content-based: one stage for the three commits
    stage = stages.pop()
    actions = werf.plan(git_repo, [_branches()])
    assert set(_records(actions, stage).values()) == {"keep"}


def test_several_images_of_one_commit_are_kept_whatever_last_says(
    git_repo: GitRepoBuilder,
) -> None:
    """werf: "should keep several images that are related to one commit regardless of the
    keep policies (imagesPerReference.last=1)": two builds of one commit, both kept."""
    werf = Werf()
    commit = git_repo.commit("test", NOW - D)
    git_repo.push("test")
    first, second = werf.build(commit, "v1"), werf.build(commit, "v2")
    actions = werf.plan(git_repo, [_branches(last=1)])
    assert actions[first] == actions[second] == "keep"


def test_an_image_of_a_branch_deleted_from_origin_goes(git_repo: GitRepoBuilder) -> None:
    """werf: "should work only with remote references": built on branch test, kept while the
    branch is on origin, gone with its record once it is deleted there."""
    werf = Werf()
    base = git_repo.commit("main", NOW - 3 * D)
    commit = git_repo.commit("test", NOW - D, parents=[base])
    git_repo.push("main", "test")
    stage = werf.build(commit, "feature")
    assert werf.plan(git_repo, [_branches()])[stage] == "keep"
    git_repo.delete_remote_branch("test")
    actions = werf.plan(git_repo, [_branches()])
    assert actions[stage] == "delete"
    assert set(_records(actions, stage).values()) == {"delete"}


def test_remove_image_by_images_per_reference_last(git_repo: GitRepoBuilder) -> None:
    """werf: "should remove image by imagesPerReference.last": of two contents on one
    branch, last: 1 keeps the newer."""
    werf = Werf()
    old = git_repo.commit("test", NOW - 2 * D)
    new = git_repo.commit("test", NOW - D)
    git_repo.push("test")
    first, second = werf.build(old, "a"), werf.build(new, "b")
    actions = werf.plan(git_repo, [_branches(last=1)])
    assert (actions[first], actions[second]) == ("delete", "keep")
