"""The git-history policy (werf's keepPolicies), as DESIGN.md's retention semantics say.

Pure: references, commits and image links in; which images each policy keeps, with the
evidence for `regsweep explain`, out.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from tasks.frames import from_micros, to_micros
from tasks.policy.config import ImagesPerReference, KeepPolicy, Limit, name_pattern
from tasks.policy.linking import Key


@dataclass(frozen=True)
class GitKeep:
    """Why policy `policy` keeps an image: reached from `reference` at `rank` (1 = newest)."""

    policy: int
    reference: str
    kind: str
    rank: int
    commit: str
    time: datetime

    def describe(self) -> str:
        ordinal = _ordinal(self.rank)
        when = self.time.strftime("%Y-%m-%d %H:%M UTC")
        if self.kind == "tag":
            return (
                f"git-policy[{self.policy}]: tag {self.reference}, commit {self.commit[:7]} {when}"
            )
        return (
            f"git-policy[{self.policy}]: branch {self.reference}, {ordinal} newest image, "
            f"commit {self.commit[:7]} {when}"
        )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _within(
    last: int | None,
    window_start: int | None,
    operator: str,
    rank: int,
    when: int,
) -> bool:
    """Combine a `last` rank limit (None = unlimited) and an `in` window with And/Or.

    Times are epoch microseconds; `window_start` is `now - in` (None = no window).
    """
    by_last = last is None or rank < last
    if window_start is None:
        return by_last
    by_in = when >= window_start
    if last is None:
        return by_in
    return (by_last and by_in) if operator == "And" else (by_last or by_in)


def _window_start(window: timedelta | None, now: datetime) -> int | None:
    return None if window is None else to_micros(now - window)


def select_references(
    refs: pd.DataFrame, policy: KeepPolicy, now: datetime
) -> list[tuple[str, str, str]]:
    """Return (name, kind, commit) of the references `policy` selects, newest first."""
    references = policy.references
    kind = "branch" if references.branch is not None else "tag"
    pattern = name_pattern(references.branch or references.tag or "")
    matching = refs[(refs["kind"] == kind) & refs["name"].map(lambda n: bool(pattern.fullmatch(n)))]
    matching = matching.sort_values(["date", "name"], ascending=[False, True])
    limit = references.limit or Limit()
    start = _window_start(limit.in_, now)
    selected = []
    for rank, (name, commit, date) in enumerate(
        zip(
            matching["name"].tolist(),
            matching["commit"].tolist(),
            matching["date"].astype("int64").tolist(),
            strict=True,
        )
    ):
        if _within(limit.last, start, limit.operator, rank, date):
            selected.append((name, kind, commit))
    return selected


def evaluate_git_policies(
    refs: pd.DataFrame,
    commits: pd.DataFrame,
    links: dict[Key, set[str]],
    policies: list[KeepPolicy],
    now: datetime,
) -> dict[Key, list[GitKeep]]:
    """Return, per kept (repository, digest), every reason the git-history policy keeps it.

    Each reference takes the imagesPerReference of the last policy selecting it. Branches
    walk the history through all parents; tags look at their commit only.
    """
    effective: dict[tuple[str, str], tuple[int, ImagesPerReference, str]] = {}
    for index, policy in enumerate(policies):
        for name, kind, commit in select_references(refs, policy, now):
            effective[(name, kind)] = (index, policy.images_per_reference, commit)

    shas = commits["sha"].tolist()
    history = _History(
        parents=dict(zip(shas, commits["parents"].tolist(), strict=True)),
        times=dict(zip(shas, commits["time"].astype("int64").tolist(), strict=True)),
        by_commit=defaultdict(list),
    )
    for key, linked in links.items():
        for sha in linked:
            history.by_commit[sha].append(key)
    repositories = {key[0] for key in links}

    kept: dict[Key, list[GitKeep]] = defaultdict(list)
    for (name, kind), (index, per_reference, head) in effective.items():
        if kind == "tag":
            tagged = from_micros(history.times.get(head, to_micros(now)))
            for key in history.by_commit.get(head, []):
                kept[key].append(GitKeep(index, name, kind, 1, head, tagged))
            continue
        last = per_reference.effective_last()
        start = _window_start(per_reference.in_, now)
        operator = per_reference.operator
        reached = history.reach(head, repositories, last, start, operator)
        for key, rank, when, sha in _ranked(reached):
            if _within(last, start, operator, rank, when):
                kept[key].append(GitKeep(index, name, "branch", rank + 1, sha, from_micros(when)))
    return dict(kept)


@dataclass
class _History:
    """The commit graph as plain dicts (epoch-microsecond times) and image links per commit.

    `bound[c]` is the newest committer time among `c` and all its ancestors. It equals the
    commit's own time unless committer times go backwards somewhere (clock skew, rebases).
    """

    parents: dict[str, list[str]]
    times: dict[str, int]
    by_commit: dict[str, list[Key]]
    bound: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.bound = _newest_ancestor_times(self.parents, self.times)

    def reach(
        self,
        head: str,
        repositories: set[str],
        last: int | None,
        window_start: int | None,
        operator: str,
    ) -> dict[Key, tuple[int, str]]:
        """Walk from `head` through all parents; return every image that could be kept ->
        (its newest visited commit time, that commit).

        Commits are visited by descending `bound`, so when the next commit's bound is k,
        nothing still unvisited is newer than k and every image time above k is final. The
        walk stops once no image at k or older can be kept: every repository has `last`
        distinct final times above k (rank cut) and/or k is older than the `in` window.
        """
        reached: dict[Key, tuple[int, str]] = {}
        pending: list[tuple[int, Key]] = []  # (-time, image) not yet known to be final
        final: dict[str, set[int]] = defaultdict(set)  # repository -> final distinct times
        full = len(repositories) if last == 0 else 0  # repositories with `last` final times
        heap = [(-self.bound.get(head, 0), head)]
        seen = {head}
        while heap:
            k = -heap[0][0]
            while pending and -pending[0][0] > k:
                negative, key = heapq.heappop(pending)
                if reached[key][0] != -negative:
                    continue  # superseded by a newer commit of the same image
                times = final[key[0]]
                if -negative not in times:
                    times.add(-negative)
                    if len(times) == last:
                        full += 1
            rank_cut = last is not None and full == len(repositories)
            window_cut = window_start is not None and k < window_start
            if _nothing_older_kept(last, window_start, operator, rank_cut, window_cut):
                break
            _, sha = heapq.heappop(heap)
            when = self.times.get(sha, 0)
            for key in self.by_commit.get(sha, ()):
                if key not in reached or when > reached[key][0]:
                    reached[key] = (when, sha)
                    heapq.heappush(pending, (-when, key))
            for parent in self.parents.get(sha, ()):
                if parent not in seen:
                    seen.add(parent)
                    heapq.heappush(heap, (-self.bound.get(parent, 0), parent))
        return reached


PROPAGATION_ROUNDS = 64
"""Rounds of vectorised propagation before `_newest_ancestor_times` walks instead."""


def _newest_ancestor_times(parents: dict[str, list[str]], times: dict[str, int]) -> dict[str, int]:
    """For every commit, the newest committer time among it and its ancestors.

    Vectorised: each round lifts every commit to the newest bound among its parents; it
    settles after as many rounds as the longest run of commits older than an ancestor
    (a few, even with clock skew). A history that needs more falls back to a walk.
    """
    shas = list(times)
    position = {sha: i for i, sha in enumerate(shas)}
    child_list: list[int] = []
    parent_list: list[int] = []
    for sha, commit_parents in parents.items():
        i = position[sha]
        for parent in commit_parents:
            j = position.get(parent)
            if j is not None:
                child_list.append(i)
                parent_list.append(j)
    child_at = np.array(child_list, dtype=np.int64)
    parent_at = np.array(parent_list, dtype=np.int64)
    bound = np.array([times[sha] for sha in shas], dtype=np.int64)
    for _ in range(PROPAGATION_ROUNDS):
        lifted = bound[parent_at]
        rising = lifted > bound[child_at]
        if not rising.any():
            return dict(zip(shas, bound.tolist(), strict=True))
        np.maximum.at(bound, child_at[rising], lifted[rising])
    return _newest_ancestor_times_by_walk(parents, times)


def _newest_ancestor_times_by_walk(
    parents: dict[str, list[str]], times: dict[str, int]
) -> dict[str, int]:
    """`_newest_ancestor_times` by a depth-first walk (any history, in one pass)."""
    bound: dict[str, int] = {}
    for root in parents:
        stack = [(root, False)]
        while stack:
            sha, expanded = stack.pop()
            if sha in bound:
                continue
            if expanded:
                bound[sha] = max(
                    [times.get(sha, 0)] + [bound.get(p, 0) for p in parents.get(sha, ())]
                )
            else:
                stack.append((sha, True))
                stack.extend((p, False) for p in parents.get(sha, ()) if p not in bound)
    return bound


def _nothing_older_kept(
    last: int | None, window_start: int | None, operator: str, rank_cut: bool, window_cut: bool
) -> bool:
    """Can no image older than the next commit be kept? `rank_cut`: every repository has
    `last` newer distinct times; `window_cut`: the commit is older than the `in` window."""
    if window_start is None:
        return rank_cut
    if last is None:
        return window_cut
    return (rank_cut or window_cut) if operator == "And" else (rank_cut and window_cut)


def _ranked(reached: dict[Key, tuple[int, str]]) -> list[tuple[Key, int, int, str]]:
    """(image, rank, time, commit) with ranks per repository over distinct times, newest 0:
    several images on one commit (or one time) share one slot."""
    by_repository: dict[str, list[tuple[Key, int, str]]] = defaultdict(list)
    for key, (when, sha) in reached.items():
        by_repository[key[0]].append((key, when, sha))
    ranked = []
    for images in by_repository.values():
        distinct = sorted({when for _, when, _ in images}, reverse=True)
        rank_of = {when: rank for rank, when in enumerate(distinct)}
        ranked += [(key, rank_of[when], when, sha) for key, when, sha in images]
    return ranked
