"""The git-history policy (werf's keepPolicies), as DESIGN.md's retention semantics say.

Pure: references, commits and image links in; which images each policy keeps, with the
evidence for `regsweep explain`, out. Commits and images are rows (integers) throughout.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from tasks.core.config import ImagesPerReference, KeepPolicy, Limit, name_pattern
from tasks.core.frames import from_micros, to_micros
from tasks.policy.history import CommitHistory


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
    heads = history.rows([commit for _, _, commit in effective.values()]).tolist()
    walk = _Walk(history, image_commits, repository_of)

    kept: dict[int, list[GitKeep]] = defaultdict(list)
    for ((name, kind), (index, per_reference, head_sha)), head in zip(
        effective.items(), heads, strict=True
    ):
        if head < 0:
            continue  # not a commit of the frame: nothing is linked to it
        if kind == "tag":
            tagged = from_micros(walk.times[head])
            for image in walk.images_on(head):
                kept[image].append(GitKeep(index, name, kind, 1, head_sha, tagged))
            continue
        last = per_reference.effective_last()
        start = _window_start(per_reference.in_, now)
        operator = per_reference.operator
        reached = walk.reach(head, last, start, operator)
        for image, rank, when, commit_row in _ranked(reached, repository_of):
            if _within(last, start, operator, rank, when):
                sha = history.sha(commit_row)
                kept[image].append(GitKeep(index, name, "branch", rank + 1, sha, from_micros(when)))
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
        self, history: CommitHistory, image_commits: dict[int, set[str]], repository_of: list[str]
    ) -> None:
        self.times: list[int] = history.times.tolist()
        self.bound: list[int] = history.bound.tolist()
        self.offsets: list[int] = history.parent_offsets.tolist()
        self.parents: list[int] = history.parent_rows.tolist()
        images = [image for image, shas in image_commits.items() for _ in shas]
        commits = history.rows([sha for shas in image_commits.values() for sha in shas])
        linked = commits >= 0
        order = np.argsort(commits[linked], kind="stable")
        self.images: list[int] = np.asarray(images, dtype=np.int64)[linked][order].tolist()
        self.image_offsets: list[int] = np.concatenate(
            [[0], np.cumsum(np.bincount(commits[linked], minlength=len(self.times)))]
        ).tolist()
        self.repository_of = repository_of
        self.repositories = set(map(repository_of.__getitem__, self.images))

    def images_on(self, commit: int) -> list[int]:
        """The image rows linked to commit row `commit`."""
        return self.images[self.image_offsets[commit] : self.image_offsets[commit + 1]]

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
        repository_of = self.repository_of
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
            for image in self.images_on(commit):
                if image not in reached or when > reached[image][0]:
                    reached[image] = (when, commit)
                    heapq.heappush(pending, (-when, image))
            for parent in parents[offsets[commit] : offsets[commit + 1]]:
                if parent not in seen:
                    seen.add(parent)
                    heapq.heappush(heap, (-bound[parent], parent))
        return reached


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
