"""The git-history policy (werf's keepPolicies), as DESIGN.md's retention semantics say.

Pure: references, commits and image links in; which images each policy keeps, with the
evidence for `regsweep explain`, out. Commits and images are rows (integers) throughout.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

import numpy as np
import pandas as pd

from tasks.frames import from_micros, to_micros
from tasks.policy.config import ImagesPerReference, KeepPolicy, Limit, name_pattern


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


@dataclass
class CommitHistory:
    """The commits frame as rows: SHAs, committer times (epoch microseconds), parents in CSR
    form (``parent_rows[parent_offsets[i]:parent_offsets[i + 1]]``; parents the frame does
    not list are left out) and `bound`: per commit the newest committer time among it and
    all its ancestors. It equals the commit's own time unless committer times go backwards
    somewhere (clock skew, rebases)."""

    shas: list[str]
    row_of: dict[str, int]
    times: np.ndarray
    parent_offsets: np.ndarray
    parent_rows: np.ndarray
    bound: np.ndarray

    @classmethod
    def from_frame(cls, commits: pd.DataFrame) -> CommitHistory:
        shas = commits["sha"].tolist()
        row_of = {sha: row for row, sha in enumerate(shas)}
        parents = commits["parents"].tolist()
        counts = np.fromiter(map(len, parents), dtype=np.int64, count=len(parents))
        rows = np.array([row_of.get(p, -1) for p in chain.from_iterable(parents)], dtype=np.int64)
        listed = rows >= 0
        if not listed.all():
            counts = np.bincount(
                np.repeat(np.arange(len(shas)), counts)[listed], minlength=len(shas)
            )
            rows = rows[listed]
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts)])
        times = commits["time"].astype("int64").to_numpy()
        return cls(shas, row_of, times, offsets, rows, _newest_ancestor_times(offsets, rows, times))


def evaluate_git_policies(
    refs: pd.DataFrame,
    history: CommitHistory,
    image_commits: dict[int, set[str]],
    repository_of: list[str],
    policies: list[KeepPolicy],
    now: datetime,
) -> dict[int, list[GitKeep]]:
    """Return, per kept image row, every reason the git-history policy keeps it.

    `image_commits` are the SHAs each image row is linked to; `repository_of[row]` is its
    repository (ranks count per repository). Each reference takes the imagesPerReference of
    the last policy selecting it. Branches walk the history through all parents; tags look
    at their commit only.
    """
    references = _References(refs)
    effective: dict[tuple[str, str], tuple[int, ImagesPerReference, str]] = {}
    for index, policy in enumerate(policies):
        for name, kind, commit in references.select(policy, now):
            effective[(name, kind)] = (index, policy.images_per_reference, commit)

    by_commit: dict[int, list[int]] = defaultdict(list)
    for image, shas in image_commits.items():
        for sha in shas:
            commit_row = history.row_of.get(sha)
            if commit_row is not None:
                by_commit[commit_row].append(image)
    walk = _Walk(history, by_commit, repository_of)

    kept: dict[int, list[GitKeep]] = defaultdict(list)
    for (name, kind), (index, per_reference, head_sha) in effective.items():
        head = history.row_of.get(head_sha)
        if head is None:
            continue  # not a commit of the frame: nothing is linked to it
        if kind == "tag":
            tagged = from_micros(walk.times[head])
            for image in by_commit.get(head, ()):
                kept[image].append(GitKeep(index, name, kind, 1, head_sha, tagged))
            continue
        last = per_reference.effective_last()
        start = _window_start(per_reference.in_, now)
        operator = per_reference.operator
        reached = walk.reach(head, last, start, operator)
        for image, rank, when, commit_row in _ranked(reached, repository_of):
            if _within(last, start, operator, rank, when):
                kept[image].append(
                    GitKeep(
                        index, name, "branch", rank + 1, history.shas[commit_row], from_micros(when)
                    )
                )
    return dict(kept)


class _References:
    """The refs frame as plain lists, to select from once per policy."""

    def __init__(self, refs: pd.DataFrame) -> None:
        self.rows = list(
            zip(
                refs["name"].tolist(),
                refs["kind"].tolist(),
                refs["commit"].tolist(),
                refs["date"].astype("int64").tolist(),
                strict=True,
            )
        )

    def select(self, policy: KeepPolicy, now: datetime) -> list[tuple[str, str, str]]:
        """(name, kind, commit) of the references `policy` selects, newest first."""
        references = policy.references
        kind = "branch" if references.branch is not None else "tag"
        pattern = name_pattern(references.branch or references.tag or "")
        matching = [r for r in self.rows if r[1] == kind and pattern.fullmatch(r[0])]
        matching.sort(key=lambda r: (-r[3], r[0]))
        limit = references.limit or Limit()
        start = _window_start(limit.in_, now)
        return [
            (name, kind, commit)
            for rank, (name, _, commit, date) in enumerate(matching)
            if _within(limit.last, start, limit.operator, rank, date)
        ]


class _Walk:
    """History walks from branch heads over commit rows, with the images on each commit."""

    def __init__(
        self, history: CommitHistory, by_commit: dict[int, list[int]], repository_of: list[str]
    ) -> None:
        self.times: list[int] = history.times.tolist()
        self.bound: list[int] = history.bound.tolist()
        self.offsets: list[int] = history.parent_offsets.tolist()
        self.parents: list[int] = history.parent_rows.tolist()
        self.by_commit = by_commit
        self.repository_of = repository_of
        self.repositories = {repository_of[i] for images in by_commit.values() for i in images}

    def reach(
        self, head: int, last: int | None, window_start: int | None, operator: str
    ) -> dict[int, tuple[int, int]]:
        """Walk from `head` through all parents; return every image that could be kept ->
        (its newest visited commit time, that commit's row).

        Commits are visited by descending `bound`, so when the next commit's bound is k,
        nothing still unvisited is newer than k and every image time above k is final. The
        walk stops once no image at k or older can be kept: every repository has `last`
        distinct final times above k (rank cut) and/or k is older than the `in` window.
        """
        times, bound, offsets, parents = self.times, self.bound, self.offsets, self.parents
        repository_of, by_commit = self.repository_of, self.by_commit
        reached: dict[int, tuple[int, int]] = {}
        pending: list[tuple[int, int]] = []  # (-time, image) not yet known to be final
        final: dict[str, set[int]] = defaultdict(set)  # repository -> final distinct times
        repositories = len(self.repositories)
        full = repositories if last == 0 else 0  # repositories with `last` final times
        heap = [(-bound[head], head)]
        seen = {head}
        while heap:
            k = -heap[0][0]
            while pending and -pending[0][0] > k:
                negative, image = heapq.heappop(pending)
                if reached[image][0] != -negative:
                    continue  # superseded by a newer commit of the same image
                distinct = final[repository_of[image]]
                if -negative not in distinct:
                    distinct.add(-negative)
                    if len(distinct) == last:
                        full += 1
            rank_cut = last is not None and full == repositories
            window_cut = window_start is not None and k < window_start
            if _nothing_older_kept(last, window_start, operator, rank_cut, window_cut):
                break
            _, commit = heapq.heappop(heap)
            when = times[commit]
            for image in by_commit.get(commit, ()):
                if image not in reached or when > reached[image][0]:
                    reached[image] = (when, commit)
                    heapq.heappush(pending, (-when, image))
            for parent in parents[offsets[commit] : offsets[commit + 1]]:
                if parent not in seen:
                    seen.add(parent)
                    heapq.heappush(heap, (-bound[parent], parent))
        return reached


PROPAGATION_ROUNDS = 64
"""Rounds of vectorised propagation before `_newest_ancestor_times` walks instead."""


def _newest_ancestor_times(
    parent_offsets: np.ndarray, parent_rows: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """For every commit row, the newest committer time among it and its ancestors.

    Vectorised: each round lifts every commit to the newest bound among its parents; it
    settles after as many rounds as the longest run of commits older than an ancestor
    (a few, even with clock skew). A history that needs more falls back to a walk.
    """
    child_at = np.repeat(np.arange(len(times)), np.diff(parent_offsets))
    bound = times.astype(np.int64, copy=True)
    for _ in range(PROPAGATION_ROUNDS):
        lifted = bound[parent_rows]
        rising = lifted > bound[child_at]
        if not rising.any():
            return bound
        np.maximum.at(bound, child_at[rising], lifted[rising])
    return _newest_ancestor_times_by_walk(parent_offsets, parent_rows, times)


def _newest_ancestor_times_by_walk(
    parent_offsets: np.ndarray, parent_rows: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """`_newest_ancestor_times` by a depth-first walk (any history, in one pass)."""
    offsets: list[int] = parent_offsets.tolist()
    parents: list[int] = parent_rows.tolist()
    own: list[int] = times.tolist()
    bound: list[int | None] = [None] * len(own)
    for root in range(len(own)):
        stack = [(root, False)]
        while stack:
            commit, expanded = stack.pop()
            if bound[commit] is not None:
                continue
            mine = parents[offsets[commit] : offsets[commit + 1]]
            if expanded:
                bound[commit] = max([own[commit]] + [bound[p] or 0 for p in mine])
            else:
                stack.append((commit, True))
                stack.extend((p, False) for p in mine if bound[p] is None)
    return np.array(bound, dtype=np.int64)


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


def _ranked(
    reached: dict[int, tuple[int, int]], repository_of: list[str]
) -> list[tuple[int, int, int, int]]:
    """(image, rank, time, commit) with ranks per repository over distinct times, newest 0:
    several images on one commit (or one time) share one slot."""
    by_repository: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for image, (when, commit) in reached.items():
        by_repository[repository_of[image]].append((image, when, commit))
    ranked = []
    for images in by_repository.values():
        distinct = sorted({when for _, when, _ in images}, reverse=True)
        rank_of = {when: rank for rank, when in enumerate(distinct)}
        ranked += [(image, rank_of[when], when, commit) for image, when, commit in images]
    return ranked
