"""The run-wide sanity guards and their documented thresholds (issue #13, item 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from flows.demo.gitrepo import GitRepoBuilder
from tasks.delete.guards import (
    MIN_LINKED_FOR_GIT_GUARD,
    UNKNOWN_COMMITS_LIMIT,
    cluster_refusal,
    git_refusal,
    unmatched_hosts,
)
from tests.policy.helpers import Registry, plan_for

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=60)


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


@pytest.mark.parametrize(
    ("known", "unknown", "refused"),
    [
        (0, 5, True),  # git.path is another repository: nothing we built is in it
        (2, 3, True),  # most links unknown
        (3, 3, False),  # half is not "most"
        (5, 0, False),
        (0, MIN_LINKED_FOR_GIT_GUARD - 1, False),  # too few links to tell
        (0, 0, False),  # nothing linked at all
    ],
    ids=["all-unknown", "most-unknown", "half", "all-known", "too-few", "none"],
)
def test_git_guard_refuses_when_most_linked_images_name_unknown_commits(
    git_repo: GitRepoBuilder, known: int, unknown: int, refused: bool
) -> None:
    commit = git_repo.commit("main", NOW - timedelta(days=1))
    git_repo.push("main")
    reg = Registry()
    for n in range(known):
        reg.image(dg(n + 1), [f"k{n}"], OLD, commit)
    for n in range(unknown):
        reg.image(dg(n + 100), [f"u{n}"], OLD, f"{n + 1:040x}")  # full SHAs Git lacks
    message = git_refusal(plan_for(reg, git_repo, NOW))
    assert bool(message) == refused
    if refused:
        assert f"{unknown} of {known + unknown} images" in message
        assert unknown > UNKNOWN_COMMITS_LIMIT * (known + unknown)


def _cluster(*hosts: str) -> pd.DataFrame:
    return pd.DataFrame({"registry": pd.Series(list(hosts), dtype="str")})


def test_cluster_guard_names_what_the_cluster_uses_instead() -> None:
    names = {"reg.example.com", "mirror.local"}
    assert cluster_refusal(_cluster("reg.example.com", "docker.io"), names) == ""
    assert cluster_refusal(_cluster("mirror.local"), names) == ""
    message = cluster_refusal(_cluster("docker.io", "docker.io", "quay.io"), names)
    assert "docker.io (2), quay.io (1)" in message
    assert "registry.aliases" in message
    assert "no images" in cluster_refusal(_cluster(), names)  # an empty cluster protects nothing
    assert unmatched_hosts(_cluster("a", "b", "a", "reg.example.com"), names) == {"a": 2, "b": 1}
