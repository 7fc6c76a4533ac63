"""Git extraction: references and commits as DataFrames.

``refs`` — one row per branch or tag
    name    str                  branch name without the remote prefix, or tag name
    kind    str                  ``branch`` or ``tag``
    commit  str                  full SHA of the commit the reference points at (peeled)
    date    datetime64[us, UTC]  branch: committer time of its head; annotated tag: tagger
                                 time; lightweight tag: committer time of its commit

``commits`` — one row per commit reachable from any reference (local branches included,
so links to commits of deleted or unpushed branches still resolve)
    sha      str                  full SHA
    parents  object (list[str])   parent SHAs, first parent first
    time     datetime64[us, UTC]  committer time
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pygit2
from pygit2.enums import ReferenceType

from tasks.frames import gc_paused, typed_frame
from tasks.git.commit_graph import read_commit_graph
from tasks.git.errors import GitError, NoBranches, RepositoryNotFound, ShallowClone

REF_COLUMNS = {"name": "str", "kind": "str", "commit": "str", "date": "datetime64[us, UTC]"}
COMMIT_COLUMNS = {"sha": "str", "parents": "object", "time": "datetime64[us, UTC]"}


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


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


Peeled = list[tuple[str, pygit2.Reference, pygit2.Commit | None]]
"""(name, reference, the commit it leads to or None) for every direct reference."""


def peel_references(repo: pygit2.Repository) -> Peeled:
    """Every non-symbolic reference of `repo` with the commit it leads to (None for a
    reference to a tree or blob), read once for both frames."""
    peeled: Peeled = []
    for ref in repo.references.iterator():
        if ref.type == ReferenceType.SYMBOLIC:
            continue
        try:
            commit: pygit2.Commit | None = ref.peel(pygit2.Commit)
        except (pygit2.GitError, ValueError, KeyError):
            commit = None
        peeled.append((ref.name, ref, commit))
    return peeled


def extract_refs(
    repo: pygit2.Repository, remote: str = "origin", peeled: Peeled | None = None
) -> pd.DataFrame:
    """Return the branches and tags of `repo` (schema in the module docstring).

    Branches of a clone are `refs/remotes/<remote>/*`; of a bare repository `refs/heads/*`.
    Raises `NoBranches` when there are none, since every linked image would then be deleted.
    """
    prefix = "refs/heads/" if repo.is_bare else f"refs/remotes/{remote}/"
    rows: list[dict[str, Any]] = []
    for name, ref, commit in peeled if peeled is not None else peel_references(repo):
        if name.startswith(prefix):
            kind, short = "branch", name[len(prefix) :]
        elif name.startswith("refs/tags/"):
            kind, short = "tag", name[len("refs/tags/") :]
        else:
            continue
        if commit is None:
            raise GitError(f"reference {name}: does not lead to a commit")
        when = commit.commit_time
        if kind == "tag":
            try:
                target = repo[ref.target]
            except (pygit2.GitError, ValueError, KeyError) as exc:
                raise GitError(f"reference {name}: {exc}") from exc
            if isinstance(target, pygit2.Tag) and target.tagger is not None:
                when = target.tagger.time
        rows.append({"name": short, "kind": kind, "commit": str(commit.id), "date": _time(when)})
    refs = typed_frame(rows, REF_COLUMNS)
    if not (refs["kind"] == "branch").any():
        where = "refs/heads/" if repo.is_bare else f"refs/remotes/{remote}/"
        raise NoBranches(
            f"no branches under {where} in {repo.path}: check git.remote, or fetch the clone"
        )
    return refs.sort_values(["kind", "name"], ignore_index=True)


def extract_commits(repo: pygit2.Repository, peeled: Peeled | None = None) -> pd.DataFrame:
    """Return every commit reachable from any reference (schema in the module docstring).

    Parents and times come from Git's commit-graph file where there is one (see
    `tasks.git.commit_graph`); commits newer than the graph are read from the repository.
    """
    references = peeled if peeled is not None else peel_references(repo)
    tips = [str(commit.id) for _, _, commit in references if commit is not None]
    graph = read_commit_graph(repo)
    graph_parents = dict(zip(graph.shas, graph.parents, strict=True)) if graph else {}
    graph_times = dict(zip(graph.shas, graph.times, strict=True)) if graph else {}
    shas: list[str] = []
    parents: list[list[str]] = []
    times: list[int] = []
    seen: set[str] = set()
    stack = tips
    try:
        while stack:
            sha = stack.pop()
            if sha in seen:
                continue
            seen.add(sha)
            commit_parents = graph_parents.get(sha)
            if commit_parents is None:
                commit = repo.get(sha)
                if not isinstance(commit, pygit2.Commit):
                    raise GitError(f"commit {sha} is missing from {repo.path}")
                commit_parents = [str(p) for p in commit.parent_ids]
                times.append(commit.commit_time)
            else:
                times.append(graph_times[sha])
            shas.append(sha)
            parents.append(commit_parents)
            stack += commit_parents  # a parent seen meanwhile is skipped when popped
    except pygit2.GitError as exc:
        raise GitError(f"walking {repo.path}: {exc}") from exc
    commits = pd.DataFrame({"sha": pd.Series(shas, dtype="str"), "parents": parents})
    commits["time"] = pd.to_datetime(pd.Series(times, dtype="int64"), unit="s", utc=True).astype(
        "datetime64[us, UTC]"
    )
    return commits


def extract_git(path: str | Path, remote: str = "origin") -> GitExtraction:
    """Return the references and commits of the repository at `path`."""
    repo = open_repository(path)
    with gc_paused():
        peeled = peel_references(repo)
        return GitExtraction(
            refs=extract_refs(repo, remote, peeled), commits=extract_commits(repo, peeled)
        )
