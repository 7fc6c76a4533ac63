"""Closures: the manifests a deletion must decide, re-check and execute together.

A manifest *holds* another when deleting the first while keeping the second, or the other way
round, would leave something broken or orphaned:

- an index holds its children (a surviving index must never name a missing child);
- a subject holds its referrers: those naming it in `subject`, those tagged
  `sha256-<hex>.sig|.att|.sbom`, and its OCI 1.1 referrers fallback index tagged
  `sha256-<hex>` (which in turn holds, as an index, the referrers it lists).

A closure is a connected set of plan deletions under "holds" within one repository. Its
members are deleted in levels, holders before what they hold, so a crash at any point leaves
only orphans (an unreferenced child, a referrer without its subject) that the next run deletes,
never a surviving manifest pointing at a missing one. A re-check that cancels any member
cancels the whole closure.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from tasks.core.frames import column_rows
from tasks.core.reference import referrer_tag_subject

Holds = dict[str, dict[str, set[str]]]
"""{repository: {holder digest: digests it holds}}."""


@dataclass(frozen=True)
class Target:
    """One manifest the plan deletes, with the tags the plan expected on it."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str
    reason: str

    @property
    def key(self) -> str:
        """ "repository@digest": how a person confirms it (`run --apply` on a terminal)."""
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class Closure:
    """Plan deletions of one repository that stand or fall together; `levels` in deletion
    order (every holder in an earlier level than what it holds)."""

    repository: str
    levels: tuple[tuple[Target, ...], ...]

    @property
    def members(self) -> tuple[Target, ...]:
        return tuple(t for level in self.levels for t in level)

    @property
    def root(self) -> str:
        """The digest that names the closure in reports: its first holder."""
        return self.levels[0][0].digest

    def __len__(self) -> int:
        return sum(len(level) for level in self.levels)


def holds_from_scan(images: pd.DataFrame, tags: pd.DataFrame, index_edges: pd.DataFrame) -> Holds:
    """The "holds" relation of every scanned repository (see the module docstring)."""
    holds: Holds = defaultdict(lambda: defaultdict(set))
    for repository, parent, child in column_rows(index_edges, "repository", "parent", "child"):
        holds[repository][parent].add(child)
    for repository, digest, subject in column_rows(images, "repository", "digest", "subject"):
        if subject:
            holds[repository][subject].add(digest)
    for repository, tag, digest in column_rows(tags, "repository", "tag", "digest"):
        subject = referrer_tag_subject(tag)
        if subject is not None:
            holds[repository][subject].add(digest)
    return {repo: dict(by_holder) for repo, by_holder in holds.items()}


def deletion_targets(plan: pd.DataFrame) -> list[Target]:
    """The digests to delete: those whose every plan row says delete, sorted."""
    targets = []
    for (repo, digest), rows in plan.groupby(["repository", "digest"], sort=True):
        if (rows["action"] != "delete").any():
            continue
        targets.append(
            Target(
                str(repo),
                str(digest),
                tuple(sorted(t for t in rows["tag"] if t)),
                str(rows["media_type"].iloc[0]),
                str(rows["reason"].iloc[0]),
            )
        )
    return targets


def build_closures(targets: list[Target], holds: Holds) -> list[Closure]:
    """Group `targets` into closures, each with its members in deletion order; closures come
    sorted by repository and root digest."""
    by_repository: dict[str, list[Target]] = defaultdict(list)
    for target in targets:
        by_repository[target.repository].append(target)
    closures = []
    for repository in sorted(by_repository):
        closures += _closures_of(repository, by_repository[repository], holds.get(repository, {}))
    return closures


def _closures_of(
    repository: str, targets: list[Target], holds: dict[str, set[str]]
) -> list[Closure]:
    by_digest = {t.digest: t for t in targets}
    edges = [
        (holder, held)
        for holder, held_digests in holds.items()
        if holder in by_digest
        for held in held_digests
        if held in by_digest and held != holder
    ]
    parent = {digest: digest for digest in by_digest}

    def find(digest: str) -> str:
        while parent[digest] != digest:
            parent[digest] = parent[parent[digest]]
            digest = parent[digest]
        return digest

    for holder, held in edges:
        a, b = find(holder), find(held)
        if a != b:
            parent[max(a, b)] = min(a, b)
    components: dict[str, list[str]] = defaultdict(list)
    for digest in sorted(by_digest):
        components[find(digest)].append(digest)

    held_by: dict[str, set[str]] = defaultdict(set)
    for holder, held in edges:
        held_by[held].add(holder)
    closures = []
    for members in components.values():
        levels = _levels(members, held_by)
        closures.append(
            Closure(repository, tuple(tuple(by_digest[d] for d in level) for level in levels))
        )
    return sorted(closures, key=lambda c: c.root)


def _levels(members: list[str], held_by: dict[str, set[str]]) -> list[list[str]]:
    """Members in topological levels: a member comes after every member holding it. Content
    addressing rules out cycles, but a hostile registry can claim one (a subject naming its
    own referrer): such members go last, together."""
    remaining = set(members)
    levels = []
    while remaining:
        level = sorted(d for d in remaining if not (held_by.get(d, set()) & remaining))
        if not level:
            levels.append(sorted(remaining))
            break
        levels.append(level)
        remaining.difference_update(level)
    return levels
