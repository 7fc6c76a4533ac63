"""Commits read through Git's commit-graph file equal commits read from the objects: with
commits newer than the graph, octopus merges, split graph chains, far-future times,
unreachable commits still in the graph, and a damaged graph."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pygit2
import pytest

from tasks.git import extract
from tasks.git.commit_graph import read_commit_graph
from tasks.git.errors import GitError
from tasks.git.extract import extract_commits, extract_git


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True)


class History:
    def __init__(self, path: Path) -> None:
        self.repo = pygit2.init_repository(str(path), bare=True)
        self.tree = self.repo.TreeBuilder().write()
        self.clock = 1_700_000_000

    def commit(self, parents: list[pygit2.Oid]) -> pygit2.Oid:
        self.clock += 60
        sig = pygit2.Signature("CI", "ci@example.com", self.clock, 0)
        return self.repo.create_commit(None, sig, sig, f"c{self.clock}", self.tree, parents)

    def far_future(self, parent: pygit2.Oid) -> pygit2.Oid:
        """A commit dated after 2106: its time needs the graph's 34-bit field. (pygit2 cuts
        times to 32 bits when it writes a commit; git does not.)"""
        env = {"GIT_COMMITTER_DATE": f"@{2**33 + 5} +0000", "GIT_AUTHOR_DATE": "@1 +0000"}
        done = subprocess.run(
            [
                "git",
                "--git-dir",
                self.repo.path,
                "commit-tree",
                str(self.tree),
                "-p",
                str(parent),
                "-m",
                "far future",
            ],
            check=True,
            capture_output=True,
            text=True,
            env={
                "PATH": "/usr/bin:/bin",
                "GIT_AUTHOR_NAME": "CI",
                "GIT_AUTHOR_EMAIL": "ci@x",
                "GIT_COMMITTER_NAME": "CI",
                "GIT_COMMITTER_EMAIL": "ci@x",
                **env,
            },
        )
        return pygit2.Oid(hex=done.stdout.strip())

    def line(self, start: pygit2.Oid | None, length: int) -> pygit2.Oid:
        tip = start
        for _ in range(length):
            tip = self.commit([tip] if tip else [])
        assert tip is not None
        return tip


def by_objects(repo: pygit2.Repository) -> set[tuple[str, tuple[str, ...], pd.Timestamp]]:
    repo.config["core.commitGraph"] = False
    try:
        assert read_commit_graph(repo) is None
        return rows(extract_commits(repo))
    finally:
        repo.config["core.commitGraph"] = True


def rows(commits: pd.DataFrame) -> set[tuple[str, tuple[str, ...], pd.Timestamp]]:
    return {
        (sha, tuple(parents), when)
        for sha, parents, when in zip(
            commits["sha"], commits["parents"], commits["time"], strict=True
        )
    }


@pytest.fixture
def history(tmp_path: Path) -> History:
    h = History(tmp_path / "repo.git")
    main = h.line(None, 50)
    sides = [h.line(main, 3) for _ in range(4)]
    octopus = h.commit([main, *sides])  # 5 parents: the graph's extra-edge list
    future = h.far_future(octopus)
    h.repo.references.create("refs/heads/main", h.line(future, 5))
    h.repo.references.create("refs/heads/gone", h.line(main, 4))
    h.repo.create_tag(
        "v1",
        sides[0],
        pygit2.enums.ObjectType.COMMIT,
        pygit2.Signature("CI", "ci@example.com", h.clock, 0),
        "v1",
    )
    return h


@pytest.mark.parametrize("rounds", [64, 1], ids=["pruned", "falls-back-to-walk"])
def test_graph_commits_equal_object_commits(
    history: History, rounds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract, "PRUNING_ROUNDS", rounds)
    path = Path(history.repo.path)
    git(path, "commit-graph", "write", "--reachable")
    graph = read_commit_graph(history.repo)
    assert graph is not None and len(graph.shas) == 50 + 12 + 2 + 5 + 4
    # After the graph: new commits, a branch deleted (its commits stay in the graph).
    tip = history.repo.references["refs/heads/main"].target
    history.repo.references["refs/heads/main"].set_target(history.line(tip, 7))
    history.repo.references.delete("refs/heads/gone")
    commits = extract_commits(history.repo)
    assert rows(commits) == by_objects(history.repo)
    assert len(commits) == 50 + 12 + 2 + 5 + 7
    future = commits.loc[commits["time"] > pd.Timestamp("2200-01-01", tz="UTC")]
    assert len(future) == 1


def test_split_graph_chain(history: History) -> None:
    path = Path(history.repo.path)
    git(path, "commit-graph", "write", "--reachable", "--split")
    tip = history.repo.references["refs/heads/main"].target
    merged = history.commit([history.line(tip, 3), history.line(tip, 2)])
    history.repo.references["refs/heads/main"].set_target(merged)
    git(path, "commit-graph", "write", "--reachable", "--split=no-merge")
    chain = path / "objects" / "info" / "commit-graphs" / "commit-graph-chain"
    assert len(chain.read_text().split()) == 2
    graph = read_commit_graph(history.repo)
    assert graph is not None and str(merged) in graph.shas
    assert rows(extract_commits(history.repo)) == by_objects(history.repo)


def test_a_damaged_graph_is_not_used(history: History) -> None:
    path = Path(history.repo.path)
    git(path, "commit-graph", "write", "--reachable")
    graph_file = path / "objects" / "info" / "commit-graph"
    data = bytearray(graph_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph_file.chmod(0o644)
    graph_file.write_bytes(bytes(data))
    assert read_commit_graph(history.repo) is None
    assert rows(extract_commits(history.repo)) == by_objects(history.repo)


def test_references_to_trees(history: History) -> None:
    """A tag of a tree (linux has one) is no reference for the policies; a branch that leads
    to no commit is refused."""
    git(Path(history.repo.path), "commit-graph", "write", "--reachable")
    history.repo.references.create("refs/tags/just-a-tree", history.tree)
    history.repo.create_tag(
        "annotated-tree",
        history.tree,
        pygit2.enums.ObjectType.TREE,
        pygit2.Signature("CI", "ci@example.com", history.clock, 0),
        "a tree",
    )
    extraction = extract_git(history.repo.path)
    assert set(extraction.refs["name"]) == {"main", "gone", "v1"}
    assert rows(extraction.commits) == by_objects(history.repo)
    history.repo.references.create("refs/heads/broken", history.tree)
    with pytest.raises(GitError, match="refs/heads/broken: does not lead to a commit"):
        extract_git(history.repo.path)
