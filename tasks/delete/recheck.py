"""Fresh eyes just before deleting: the repository's tags and the cluster, read again.

A plan can be hours old by the time it is applied (a dry run in the morning, `--apply` in the
evening with the same `--now`), and CI pushes all the time. Before each batch of closures the
delete step lists and resolves every tag of the repository again; before the first DELETE of
the run it reads the cluster again (`InUse`). A closure is cancelled when:

- a tag now names one of its members that the plan did not expect on it (a new tag, or a tag
  moved onto it), or an expected tag now names another digest;
- a tag now names an index (known or newly pushed) that holds one of its members;
- the cluster now uses one of its members, by digest or by a tag that names it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from tasks.core.frames import column_rows
from tasks.delete.closure import Closure
from tasks.delete.outcome import Outcome
from tasks.registry.client import RegistryClient
from tasks.registry.errors import InvalidResponse, NotFound
from tasks.registry.manifest import manifest_by_digest, resolve_tag
from tasks.registry.tag import list_tags

# A newly tagged index may nest others; a hostile registry could nest them forever.
_MAX_INDEX_DEPTH = 8


@dataclass(frozen=True)
class InUse:
    """Images the cluster uses now, in this registry: (repository, digest) and
    (repository, tag), each with where it is used."""

    digests: dict[tuple[str, str], str] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_cluster(cls, cluster: pd.DataFrame, hosts: Iterable[str]) -> InUse:
        """The rows of a cluster extraction whose (normalised) registry is one of `hosts`."""
        names = set(hosts)
        digests: dict[tuple[str, str], str] = {}
        tags: dict[tuple[str, str], str] = {}
        for registry, repository, tag, digest, context, namespace, kind, obj in column_rows(
            cluster,
            "registry",
            "repository",
            "tag",
            "digest",
            "context",
            "namespace",
            "kind",
            "object",
        ):
            if registry not in names:
                continue
            where = f"{context}/{namespace} {kind} {obj}"
            if digest:
                digests.setdefault((repository, digest), where)
            if tag:
                tags.setdefault((repository, tag), where)
        return cls(digests, tags)


async def current_tags(client: RegistryClient, repository: str) -> dict[str, str]:
    """Every tag of `repository` now, resolved to its digest (an absent repository has none)."""
    try:
        names = sorted(await list_tags(client, repository))
    except NotFound:
        return {}
    answers = await asyncio.gather(*(resolve_tag(client, repository, tag) for tag in names))
    return {tag: digest for tag, digest in zip(names, answers, strict=True) if digest}


class IndexChildren:
    """Children of the repository's indexes: from the scan, and read on demand for digests
    the scan did not see (an index pushed since)."""

    def __init__(self, client: RegistryClient, repository: str, known: dict[str, set[str]]):
        self._client, self._repository = client, repository
        self._children = dict(known)
        self._scanned = set(known)

    async def reach(self, digest: str, scanned: set[str]) -> set[str]:
        """Every manifest `digest` names through index children, recursively."""
        reached: set[str] = set()
        frontier, depth = [digest], 0
        while frontier and depth < _MAX_INDEX_DEPTH:
            await asyncio.gather(*(self._learn(d, scanned) for d in frontier))
            following = []
            for d in frontier:
                for child in self._children.get(d, ()):
                    if child not in reached:
                        reached.add(child)
                        following.append(child)
            frontier, depth = following, depth + 1
        return reached

    async def _learn(self, digest: str, scanned: set[str]) -> None:
        if digest in self._children or digest in scanned:
            return  # known from the scan: an image manifest, or an index already recorded
        self._children[digest] = set()
        try:
            manifest = await manifest_by_digest(self._client, self._repository, digest)
        except (NotFound, InvalidResponse):
            return
        if manifest.is_index:
            self._children[digest] = {
                str(c["digest"])
                for c in manifest.body.get("manifests") or []
                if isinstance(c, dict) and isinstance(c.get("digest"), str)
            }


async def cancelled_closures(
    closures: list[Closure],
    now: dict[str, str],
    scanned_tags: set[str],
    scanned_digests: set[str],
    children: IndexChildren,
    in_use: InUse | None,
) -> dict[str, tuple[Outcome, str]]:
    """{closure root: (outcome, why)} for the closures the current tags `now` (or the
    cluster) cancel: outcome ``skipped-in-use`` or ``skipped-moved``."""
    member_of: dict[str, Closure] = {t.digest: c for c in closures for t in c.members}
    expected = {t.digest: set(t.tags) for c in closures for t in c.members}
    why: dict[str, tuple[Outcome, str]] = {}

    def cancel(digest: str, reason: str, outcome: Outcome = "skipped-moved") -> None:
        closure = member_of[digest]
        text = reason if digest == closure.root else f"{digest}: {reason}"
        why.setdefault(closure.root, (outcome, text))

    for closure in closures:
        for target in closure.members:
            for tag in target.tags:
                if tag in now and now[tag] != target.digest:
                    cancel(target.digest, f"tag {tag} now points at {now[tag]}")
            if in_use is not None:
                where = in_use.digests.get((closure.repository, target.digest))
                if where is not None:
                    cancel(target.digest, f"now in use: {where}", "skipped-in-use")
    on_index = [tag for tag, digest in now.items() if digest not in member_of]
    reached = await asyncio.gather(*(children.reach(now[tag], scanned_digests) for tag in on_index))
    named = [(tag, digest, digest) for tag, digest in now.items() if digest in member_of]
    for tag, found in zip(on_index, reached, strict=True):
        named += [(tag, now[tag], d) for d in sorted(found) if d in member_of]
    for tag, digest, member in named:
        repository = member_of[member].repository
        if in_use is not None and (where := in_use.tags.get((repository, tag))) is not None:
            cancel(member, f"now in use through tag {tag}: {where}", "skipped-in-use")
        if digest == member and tag not in expected[member]:
            what = "new tag" if tag not in scanned_tags else "tag"
            cancel(member, f"{what} {tag} now points at it")
        elif digest != member:
            cancel(member, f"tag {tag} now names index {digest}, which holds it")
    return why
