"""Is the registry whole? What must survive, read again after the delete step.

A run that lost something (a push racing a DELETE, a crash, a registry bug, another tool)
must not report success: the first to notice would be a failing Pod. After an apply the
flow re-reads

- every image the plan kept: its digest, and each tag the plan kept on it;
- every image the cluster uses (read again just before deleting), by digest and by tag,
  and with it the images of the kept Helm revisions;
- every tag of the scanned repositories: each must name a manifest (a *dangling* tag,
  listed but naming nothing, breaks every `docker pull` and mirror job that meets it).

Anything missing fails the run (exit 4). Where the run's own ledger removed it, it is put
back from the ledger at once (`restore_missing`) and the report says so. `regsweep verify`
runs the same reads alone: every tag, and every image the cluster uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from tasks.core.aio import for_each
from tasks.core.frames import column_rows
from tasks.delete.errors import LedgerError, RestoreError
from tasks.delete.ledger import LedgerRecord
from tasks.delete.recheck import InUse
from tasks.delete.restore import RestoreFilter, restorable, restore
from tasks.registry.client import RegistryClient
from tasks.registry.errors import NotFound, RegistryError
from tasks.registry.manifest import resolve_tag
from tasks.registry.tag import list_tags

TAG_WORKERS = 64  # tags resolved at once per repository


@dataclass(frozen=True, order=True)
class Needed:
    """An image that must be in the registry: by `digest`, by `tag`, or both."""

    repository: str
    digest: str
    tag: str
    why: str


@dataclass(frozen=True)
class Missing:
    """Something needed (or a listed tag) that the registry does not have."""

    repository: str
    reference: str  # ``:tag`` or ``@digest``
    why: str
    restored: str = ""  # how it was put back, if it was

    def line(self) -> str:
        back = f" — {self.restored}" if self.restored else ""
        return f"{self.repository}{self.reference}: {self.why}{back}"


@dataclass
class Verdict:
    """What a verification found: `missing` needed images and `dangling` tags."""

    repositories: int = 0
    tags: int = 0
    needed: int = 0
    missing: list[Missing] = field(default_factory=list)
    dangling: list[tuple[str, str]] = field(default_factory=list)  # (repository, tag)
    errors: list[str] = field(default_factory=list)  # repositories that could not be read
    repaired: list[str] = field(default_factory=list)  # dangling tags finished at once

    def after_repairs(self, rows: list[dict[str, object]]) -> Verdict:
        """The verdict once the dangling tags in `rows` (`tasks.delete.reconcile` results)
        that were repaired are gone."""
        done = {
            (str(r["repository"]), str(t))
            for r in rows
            if r["outcome"] in ("repaired", "gone")
            for t in r["tags"]  # type: ignore[attr-defined]
        }
        lines = [f"{r}:{t}: a deletion of ours cut short, finished" for r, t in sorted(done)]
        return replace(
            self,
            dangling=[d for d in self.dangling if d not in done],
            repaired=self.repaired + lines,
        )

    @property
    def whole(self) -> bool:
        """Nothing missing, no dangling tag, and every repository read."""
        return not (self.missing or self.dangling or self.errors)

    def lines(self) -> list[str]:
        """One line per problem, most urgent first."""
        out = [f"missing {m.line()}" for m in self.missing]
        out += [f"dangling {r}:{t}: listed, names no manifest" for r, t in self.dangling]
        return out + [f"unreadable {e}" for e in self.errors]


def plan_needs(plan: pd.DataFrame) -> list[Needed]:
    """What the plan keeps: every kept digest, and every tag it keeps on it."""
    needed = []
    for repository, digest, tag, action, reason in column_rows(
        plan, "repository", "digest", "tag", "action", "reason"
    ):
        if action == "keep":
            needed.append(Needed(repository, digest, tag, f"kept by the plan ({reason})"))
        elif action == "untag":  # the tag goes, the digest stays
            needed.append(Needed(repository, digest, "", f"kept by the plan ({reason})"))
    return needed


def cluster_needs(in_use: InUse, only: Iterable[tuple[str, str]] | None = None) -> list[Needed]:
    """What the cluster uses, by digest and by tag; with `only` ((repository, reference)
    pairs), just the images that were there to be seen (a Pod naming an image that was
    never pushed is not something a run lost)."""
    allowed = set(only) if only is not None else None
    needed = []
    for (repository, digest), where in in_use.digests.items():
        if allowed is None or (repository, digest) in allowed:
            needed.append(Needed(repository, digest, "", f"used by {where}"))
    for (repository, tag), where in in_use.tags.items():
        if allowed is None or (repository, tag) in allowed:
            needed.append(Needed(repository, "", tag, f"used by {where}"))
    return needed


async def verify(
    client: RegistryClient, repositories: Iterable[str], needed: Iterable[Needed]
) -> Verdict:
    """Read every tag of `repositories` and everything `needed`; return the verdict. Never
    raises a registry error: a repository that cannot be read is in `errors`."""
    wanted: dict[str, list[Needed]] = {}
    for item in sorted(set(needed)):
        wanted.setdefault(item.repository, []).append(item)
    names = sorted(set(repositories) | set(wanted))
    verdict = Verdict(repositories=len(names), needed=sum(len(v) for v in wanted.values()))
    for repository, (tags, missing, dangling, error) in zip(
        names,
        await asyncio.gather(*(_verify_one(client, r, wanted.get(r, [])) for r in names)),
        strict=True,
    ):
        verdict.tags += tags
        verdict.missing += missing
        verdict.dangling += [(repository, t) for t in dangling]
        if error:
            verdict.errors.append(f"{repository}: {error}")
    return verdict


async def _verify_one(
    client: RegistryClient, repository: str, needed: list[Needed]
) -> tuple[int, list[Missing], list[str], str]:
    try:
        current, dangling = await resolve_all(client, repository)
        present = set(current.values())
        missing = []
        for item in needed:
            if item.tag and item.tag not in current:
                missing.append(Missing(repository, f":{item.tag}", item.why))
            elif item.digest and item.digest not in present:
                if await resolve_tag(client, repository, item.digest) is None:
                    missing.append(Missing(repository, f"@{item.digest}", item.why))
                else:
                    present.add(item.digest)
        return len(current) + len(dangling), missing, dangling, ""
    except RegistryError as exc:
        return 0, [], [], f"{type(exc).__name__}: {exc}"


async def resolve_all(client: RegistryClient, repository: str) -> tuple[dict[str, str], list[str]]:
    """Every tag of `repository` resolved ({tag: digest}), and its dangling tags: listed, not
    found, and listed again after (a tag deleted meanwhile is not listed twice)."""
    try:
        names = await list_tags(client, repository)
    except NotFound:
        return {}, []
    current: dict[str, str] = {}
    not_found: list[str] = []

    async def one(tag: str) -> None:
        digest = await resolve_tag(client, repository, tag)
        if digest is None:
            not_found.append(tag)
        else:
            current[tag] = digest

    await for_each(names, one, TAG_WORKERS)
    if not not_found:
        return current, []
    try:
        listed = set(await list_tags(client, repository))
    except NotFound:
        return current, []
    return current, sorted(t for t in not_found if t in listed)


async def restore_missing(
    client: RegistryClient, verdict: Verdict, ledger_path: str | Path
) -> Verdict:
    """Put back, from the run's ledger, every missing image that ledger removed (a deletion
    or an untag of this run); return the verdict with each such item marked `restored`.
    Whatever cannot be put back stays missing, its `restored` saying why."""
    if not verdict.missing or not Path(ledger_path).is_file():
        return verdict
    try:
        records = restorable(ledger_path, client.url, RestoreFilter())
    except LedgerError as exc:
        return replace(
            verdict,
            missing=[replace(m, restored=f"not restored: {exc}") for m in verdict.missing],
        )
    chosen: dict[int, LedgerRecord] = {}
    by_item: dict[Missing, LedgerRecord] = {}
    for item in verdict.missing:
        for record in records:
            if record.repository == item.repository and (
                item.reference == f"@{record.digest}"
                or (item.reference.startswith(":") and item.reference[1:] in record.tags)
            ):
                chosen[id(record)] = by_item[item] = record
    if not chosen:
        return verdict
    try:
        await restore(client, list(chosen.values()))
        note = "put back from this run's ledger"
    except (RestoreError, LedgerError, RegistryError) as exc:
        note = f"not restored: {exc}"
    return replace(
        verdict,
        missing=[
            replace(m, restored=note if m in by_item else m.restored) for m in verdict.missing
        ],
    )
