"""The git-history policy (werf's keepPolicies), as DESIGN.md's retention semantics say.

Pure: references, commits and image links in; which images each policy keeps, with the
evidence for `regsweep explain`, out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

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
    window: timedelta | None,
    operator: str,
    rank: int,
    when: datetime,
    now: datetime,
) -> bool:
    """Combine a `last` rank limit (None = unlimited) and an `in` window with And/Or."""
    by_last = last is None or rank < last
    if window is None:
        return by_last
    by_in = when >= now - window
    if last is None:
        return by_in
    return (by_last and by_in) if operator == "And" else (by_last or by_in)


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
    selected = []
    for rank, (name, commit, date) in enumerate(
        zip(matching["name"], matching["commit"], matching["date"], strict=True)
    ):
        if _within(limit.last, limit.in_, limit.operator, rank, date.to_pydatetime(), now):
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

    parents = dict(zip(commits["sha"], commits["parents"], strict=True))
    times = {sha: t.to_pydatetime() for sha, t in zip(commits["sha"], commits["time"], strict=True)}
    by_commit: dict[str, list[Key]] = defaultdict(list)
    for key, shas in links.items():
        for sha in shas:
            by_commit[sha].append(key)

    kept: dict[Key, list[GitKeep]] = defaultdict(list)
    for (name, kind), (index, per_reference, head) in effective.items():
        if kind == "tag":
            for key in by_commit.get(head, []):
                kept[key].append(GitKeep(index, name, kind, 1, head, times.get(head, now)))
            continue
        reached = _reach(head, parents, times, by_commit)
        _rank(reached, per_reference, now, index, name, kept)
    return dict(kept)


def _reach(
    head: str,
    parents: dict[str, list[str]],
    times: dict[str, datetime],
    by_commit: dict[str, list[Key]],
) -> dict[Key, tuple[datetime, str]]:
    """Walk from `head` through all parents; return image -> (newest visited time, commit)."""
    reached: dict[Key, tuple[datetime, str]] = {}
    seen = {head}
    stack = [head]
    while stack:
        sha = stack.pop()
        for key in by_commit.get(sha, ()):
            when = times[sha]
            if key not in reached or when > reached[key][0]:
                reached[key] = (when, sha)
        for parent in parents.get(sha, ()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return reached


def _rank(
    reached: dict[Key, tuple[datetime, str]],
    per_reference: ImagesPerReference,
    now: datetime,
    index: int,
    name: str,
    kept: dict[Key, list[GitKeep]],
) -> None:
    last = per_reference.effective_last()
    by_repository: dict[str, list[tuple[Key, datetime, str]]] = defaultdict(list)
    for key, (when, sha) in reached.items():
        by_repository[key[0]].append((key, when, sha))
    for images in by_repository.values():
        # Distinct times rank newest first: several images on one commit share one slot.
        distinct = sorted({when for _, when, _ in images}, reverse=True)
        rank_of = {when: rank for rank, when in enumerate(distinct)}
        for key, when, sha in images:
            rank = rank_of[when]
            if _within(last, per_reference.in_, per_reference.operator, rank, when, now):
                kept[key].append(GitKeep(index, name, "branch", rank + 1, sha, when))
