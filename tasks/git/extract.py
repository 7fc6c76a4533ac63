"""Git extraction: references and commits as DataFrames.

``refs`` — one row per branch or tag
    name    str                  branch name without the remote prefix, or tag name
    kind    str                  ``branch`` or ``tag``
    commit  str                  full SHA of the commit the reference points at (peeled)
    date    datetime64[us, UTC]  branch: committer time of its head; annotated tag: tagger
                                 time; lightweight tag: committer time of its commit

``commits`` — one row per commit reachable from any reference (local branches included,
so links to commits of deleted or unpushed branches still resolve)
    sha      str                    full SHA
    parents  list<string>[pyarrow]  parent SHAs, first parent first (built in Arrow; each
                                    element reads as a Python list)
    time     datetime64[us, UTC]    committer time
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pygit2
from pygit2.enums import ReferenceType

from tasks.core.frames import STRING_LISTS, gc_paused
from tasks.git.commit_graph import CommitGraph, read_commit_graph
from tasks.git.errors import GitError, NoBranches, RepositoryNotFound, ShallowClone


@dataclass
class GitExtraction:
    """References and commits of one repository."""

    refs: pd.DataFrame
    commits: pd.DataFrame


def open_repository(path: str | Path) -> pygit2.Repository:
    """Open the repository at `path`; raise `RepositoryNotFound` or `ShallowClone`."""
    try:
        repo = pygit2.Repository(str(Path(path).expanduser()))
    except pygit2.GitError as exc:
        raise RepositoryNotFound(f"git.path {path}: not a Git repository ({exc})") from exc
    if repo.is_shallow:
        raise ShallowClone(
            f"git.path {path} is a shallow clone: fetch the full history "
            "(git fetch --unshallow) so that no image is judged on a partial history"
        )
    return repo


class PeeledReference(NamedTuple):
    """A direct reference, the commit it leads to (None: a tree or a blob) and, for an
    annotated tag, its tagger time (epoch seconds)."""

    name: str
    commit: str | None
    tagger_time: int | None


def peel_references(repo: pygit2.Repository, commits: Container[str]) -> list[PeeledReference]:
    """Every non-symbolic reference of `repo` with the commit it leads to. A target among
    `commits` (SHAs known to be commits, e.g. the commit-graph's) is not read at all."""
    peeled: list[PeeledReference] = []
    for ref in repo.references.iterator():
        if ref.type == ReferenceType.SYMBOLIC:
            continue
        target = str(ref.target)
        if target in commits:
            peeled.append(PeeledReference(ref.name, target, None))
            continue
        commit: str | None = None
        tagger: int | None = None
        try:
            obj = repo.get(target)
            if isinstance(obj, pygit2.Tag):
                tagger = obj.tagger.time if obj.tagger is not None else None
                commit = str(obj.peel(pygit2.Commit).id)
            elif isinstance(obj, pygit2.Commit):
                commit = target
        except (pygit2.GitError, ValueError, KeyError):
            pass  # leads to no commit
        peeled.append(PeeledReference(ref.name, commit, tagger))
    return peeled


@dataclass
class _History:
    """Commits as rows: graph rows first, then commits newer than the graph; parents in
    CSR form (``parent_rows[parent_offsets[i]:parent_offsets[i + 1]]``)."""

    shas: list[str]
    row_of: dict[str, int]
    parent_offsets: np.ndarray
    parent_rows: np.ndarray
    times: np.ndarray  # epoch seconds

    @cached_property
    def child_of_edge(self) -> np.ndarray:
        """For each entry of `parent_rows`, the row whose parent it is."""
        return np.repeat(np.arange(len(self.shas)), np.diff(self.parent_offsets))


def _read_history(
    repo: pygit2.Repository, tips: list[str], graph: CommitGraph | None, row_of: dict[str, int]
) -> _History:
    """The graph's commits plus every commit reachable from `tips` that it lacks (read with
    pygit2), as rows; `row_of` (the graph's rows) gains the rows of the commits read.
    Unreachable graph commits are still here: `_reachable` tells them apart."""
    shas = list(graph.shas) if graph else []
    newer: list[list[str]] = []
    newer_times: list[int] = []
    stack = [tip for tip in tips if tip not in row_of]
    try:
        while stack:
            sha = stack.pop()
            if sha in row_of:
                continue
            commit = repo.get(sha)
            if not isinstance(commit, pygit2.Commit):
                raise GitError(f"commit {sha} is missing from {repo.path}")
            row_of[sha] = len(shas)
            shas.append(sha)
            parents = [str(p) for p in commit.parent_ids]
            newer.append(parents)
            newer_times.append(commit.commit_time)
            stack += [p for p in parents if p not in row_of]
    except pygit2.GitError as exc:
        raise GitError(f"walking {repo.path}: {exc}") from exc
    empty = np.zeros(0, dtype=np.int64)
    graph_offsets = graph.parent_offsets if graph else np.zeros(1, dtype=np.int64)
    newer_counts = np.array([len(p) for p in newer], dtype=np.int64)
    return _History(
        shas=shas,
        row_of=row_of,
        parent_offsets=np.concatenate([graph_offsets, graph_offsets[-1] + np.cumsum(newer_counts)]),
        parent_rows=np.concatenate(
            [
                graph.parent_rows if graph else empty,
                np.array([row_of[p] for ps in newer for p in ps], dtype=np.int64),
            ]
        ),
        times=np.concatenate(
            [graph.times if graph else empty, np.array(newer_times, dtype=np.int64)]
        ),
    )


PRUNING_ROUNDS = 64
"""Rounds of vectorised pruning before `_reachable` walks instead."""


def _reachable(history: _History, tips: list[int]) -> np.ndarray:
    """Which rows are reachable from the `tips` rows, as a boolean array.

    Vectorised: each round drops every commit that is neither a tip nor a parent of a
    commit still kept. It settles after as many rounds as the longest chain of unreachable
    commits (none, after `git gc`); a history that needs more is walked instead.
    """
    count = len(history.shas)
    parents = history.parent_rows
    children = np.bincount(parents, minlength=count)
    is_tip = np.zeros(count, dtype=bool)
    is_tip[tips] = True
    alive = np.ones(count, dtype=bool)
    for _ in range(PRUNING_ROUNDS):
        dead = alive & ~is_tip & (children == 0)
        if not dead.any():
            return alive
        alive &= ~dead
        children -= np.bincount(parents[dead[history.child_of_edge]], minlength=count)
    return _reachable_by_walk(history, tips)


def _reachable_by_walk(history: _History, tips: list[int]) -> np.ndarray:
    """`_reachable` by a depth-first walk (any history, in one pass)."""
    offsets = history.parent_offsets.tolist()
    parents = history.parent_rows.tolist()
    seen = np.zeros(len(history.shas), dtype=bool)
    stack = list(tips)
    while stack:
        row = stack.pop()
        if seen[row]:
            continue
        seen[row] = True
        stack += parents[offsets[row] : offsets[row + 1]]
    return seen


def _commits_frame(history: _History, alive: np.ndarray) -> pd.DataFrame:
    """The reachable rows as the commits frame, built in Arrow: no Python list per commit."""
    rows = np.flatnonzero(alive)
    shas = pa.array(history.shas, type=pa.large_string())
    offsets = history.parent_offsets
    parent_rows = history.parent_rows[alive[history.child_of_edge]]  # every parent of a kept commit
    counts = np.diff(offsets)[rows]
    parents = pa.LargeListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(counts)]), type=pa.int64()),
        shas.take(pa.array(parent_rows, type=pa.int64())),
    )
    commits = pd.DataFrame(
        {
            "sha": pd.Series(pd.array(shas.take(pa.array(rows, type=pa.int64())), dtype="str")),
            "parents": pd.Series(pd.arrays.ArrowExtensionArray(parents), dtype=STRING_LISTS),
        }
    )
    commits["time"] = _datetimes(history.times[rows])
    return commits


def _datetimes(seconds: np.ndarray) -> pd.Series:
    return pd.Series(
        pd.to_datetime(seconds.astype(np.int64), unit="s", utc=True).astype("datetime64[us, UTC]")
    )


def _refs_frame(
    repo: pygit2.Repository,
    peeled: list[PeeledReference],
    history: _History,
    remote: str,
) -> pd.DataFrame:
    """The branches and tags (schema in the module docstring); `NoBranches` if none."""
    prefix = "refs/heads/" if repo.is_bare else f"refs/remotes/{remote}/"
    names: list[str] = []
    kinds: list[str] = []
    commits: list[str] = []
    dates: list[int] = []
    for name, commit, tagger_time in peeled:
        if name.startswith(prefix):
            kind, short = "branch", name[len(prefix) :]
        elif name.startswith("refs/tags/"):
            kind, short = "tag", name[len("refs/tags/") :]
        else:
            continue
        if commit is None:
            if kind == "tag":
                continue  # a tag of a tree or a blob: no image can be linked to it
            raise GitError(f"reference {name}: does not lead to a commit")
        names.append(short)
        kinds.append(kind)
        commits.append(commit)
        dates.append(
            tagger_time if tagger_time is not None else int(history.times[history.row_of[commit]])
        )
    if "branch" not in kinds:
        raise NoBranches(
            f"no branches under {prefix} in {repo.path}: check git.remote, or fetch the clone"
        )
    refs = pd.DataFrame(
        {
            "name": pd.Series(names, dtype="str"),
            "kind": pd.Series(kinds, dtype="str"),
            "commit": pd.Series(commits, dtype="str"),
        }
    )
    refs["date"] = _datetimes(np.array(dates, dtype=np.int64))
    return refs.sort_values(["kind", "name"], ignore_index=True)


def _read_repository(
    repo: pygit2.Repository,
) -> tuple[list[PeeledReference], _History, np.ndarray]:
    """References, the commit rows, and which rows are reachable from a reference."""
    graph = read_commit_graph(repo)
    row_of = {sha: row for row, sha in enumerate(graph.shas)} if graph else {}
    peeled = peel_references(repo, row_of)
    tips = [ref.commit for ref in peeled if ref.commit is not None]
    history = _read_history(repo, tips, graph, row_of)
    return peeled, history, _reachable(history, [row_of[tip] for tip in tips])


def extract_commits(repo: pygit2.Repository) -> pd.DataFrame:
    """Return every commit reachable from any reference (schema in the module docstring).

    Parents and times come from Git's commit-graph file where there is one (see
    `tasks.git.commit_graph`); commits newer than the graph are read from the repository.
    """
    with gc_paused():
        _, history, reachable = _read_repository(repo)
        return _commits_frame(history, reachable)


def extract_git(path: str | Path, remote: str = "origin") -> GitExtraction:
    """Return the references and commits of the repository at `path`."""
    repo = open_repository(path)
    with gc_paused():
        peeled, history, reachable = _read_repository(repo)
        return GitExtraction(
            refs=_refs_frame(repo, peeled, history, remote),
            commits=_commits_frame(history, reachable),
        )
