"""Finish what a crash cut short: tags that name nothing, and earlier ledgers' open records.

Distribution deletes a manifest's revision before its tags. A registry killed in between
keeps the tags listed, naming a manifest it no longer has: every pull, `skopeo sync` or
mirror job that lists them fails, and a retried DELETE answers 404. The scan finds such a
*dangling* tag (`RegistryExtraction.dangling`: listed, not found, listed again); it is never
an image to keep or delete. Before any deletion, every run (`--apply`) reconciles:

- a dangling tag one of our ledgers explains (a deletion of this registry, in that
  repository, whose tags named it) is *repaired*: the manifest is PUT back by digest from
  the ledger's bytes and DELETEd again, which takes its tags with it and changes nothing
  else; where the registry no longer has its blobs (garbage-collected), the tag is removed
  the way an untag removes one (a tag DELETE where the vendor has one, else a placeholder
  manifest PUT under the tag and DELETEd);
- a dangling tag nothing of ours explains is *damaged*: reported (report, `check`, the
  plan's notes, `verify`) and removed only on request (`regsweep repair --apply`);
- a record an earlier ledger left ``pending`` (the run died before the answer) is closed in
  that ledger: ``done`` when the manifest (or, for an untag, the tag) is gone, ``failed``
  when it is still there; an untag by overwrite cut short with the tag on its placeholder
  is finished (the placeholder DELETEd).

Every repair is recorded in the run's ledger as action ``repair`` before it is sent
(nothing for `regsweep restore` to put back: the tag named nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from tasks.delete.ledger import Ledger, LedgerRecord, known_ledgers, numbered_records
from tasks.delete.outcome import Outcome
from tasks.delete.untag import EMPTY_CONFIG, overwrite_and_delete, placeholder_manifest
from tasks.registry.blob import upload_blob
from tasks.registry.client import RegistryClient
from tasks.registry.errors import RegistryError
from tasks.registry.manifest import (
    delete_manifest,
    delete_tag,
    put_manifest,
    resolve_tag,
    sha256_digest,
)
from tasks.registry.tag import list_tags
from tasks.registry.vendors.base import vendor_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explained:
    """Dangling tags of one repository that an earlier deletion of ours explains."""

    record: LedgerRecord  # the newest record of that deletion with the manifest bytes
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Open:
    """A record an earlier ledger left ``pending``."""

    path: Path
    record: LedgerRecord


@dataclass
class Damage:
    """What the scan's dangling tags and the ledgers say, for one registry."""

    explained: list[Explained]
    unexplained: dict[str, list[str]]  # repository -> dangling tags nothing of ours explains
    open_records: list[Open]

    @property
    def dangling(self) -> int:
        return sum(len(e.tags) for e in self.explained) + sum(
            len(t) for t in self.unexplained.values()
        )

    def notes(self) -> list[str]:
        """One line per kind of damage found (for the report, the plan and `check`)."""
        notes = []
        by_repo: dict[str, int] = {}
        for e in self.explained:
            by_repo[e.record.repository] = by_repo.get(e.record.repository, 0) + len(e.tags)
        if by_repo:
            where = ", ".join(f"{r} ({n})" for r, n in sorted(by_repo.items()))
            notes.append(
                f"tags naming nothing, left by a deletion of ours cut short: {where}; "
                "`run --apply` finishes the deletion"
            )
        if self.unexplained:
            where = ", ".join(
                f"{r} ({', '.join(tags)})" for r, tags in sorted(self.unexplained.items())
            )
            notes.append(
                f"tags naming nothing that no ledger of ours explains: {where}; "
                "`regsweep repair --apply` removes them"
            )
        if self.open_records:
            notes.append(
                f"{len(self.open_records)} ledger record(s) left pending by an earlier run; "
                "`run --apply` closes them"
            )
        return notes


def _same_registry(record: LedgerRecord, client: RegistryClient) -> bool:
    if record.registry_url:
        return record.registry_url.rstrip("/") == client.url.rstrip("/")
    return record.registry == client.host


def assess(
    client: RegistryClient,
    dangling: Iterable[tuple[str, str]],
    ledgers: list[Path] | None = None,
    skip: Path | None = None,
) -> Damage:
    """Sort the `dangling` (repository, tag) pairs into explained and unexplained, and find
    the open records of `ledgers` (default: every known ledger; `skip`, the run's own, is
    not read for open records). Reads files, sends nothing."""
    wanted: dict[str, set[str]] = {}
    for repository, tag in dangling:
        wanted.setdefault(repository, set()).add(tag)
    newest: dict[tuple[str, str], LedgerRecord] = {}  # (repository, tag) -> its deletion
    open_records: list[Open] = []
    for path in ledgers if ledgers is not None else known_ledgers():
        last: dict[tuple[str, str, str, tuple[str, ...]], LedgerRecord] = {}
        for _, record in numbered_records(path):
            if not _same_registry(record, client):
                continue
            key = (record.action, record.repository, record.digest, tuple(record.tags))
            last[key] = record
            if (
                record.action == "delete"
                and record.manifest
                and record.repository in wanted
                and sha256_digest(record.manifest_bytes) == record.digest
            ):
                for tag in wanted[record.repository].intersection(record.tags):
                    held = newest.get((record.repository, tag))
                    if held is None or held.time <= record.time:
                        newest[(record.repository, tag)] = record
        if skip is None or path.resolve() != skip.resolve():
            open_records += [Open(path, r) for r in last.values() if r.state == "pending"]
    explained: dict[tuple[str, str], list[str]] = {}
    records: dict[tuple[str, str], LedgerRecord] = {}
    unexplained: dict[str, list[str]] = {}
    for repository, tags in sorted(wanted.items()):
        for tag in sorted(tags):
            found = newest.get((repository, tag))
            if found is None:
                unexplained.setdefault(repository, []).append(tag)
            else:
                explained.setdefault((repository, found.digest), []).append(tag)
                records[(repository, found.digest)] = found
    return Damage(
        [Explained(records[k], tuple(tags)) for k, tags in sorted(explained.items())],
        unexplained,
        open_records,
    )


def _row(
    repository: str, digest: str, tags: list[str], outcome: Outcome, detail: str
) -> dict[str, object]:
    return {
        "repository": repository,
        "digest": digest,
        "tags": tags,
        "closure": "",
        "outcome": outcome,
        "detail": detail,
    }


async def reconcile(
    client: RegistryClient,
    damage: Damage,
    ledger: Ledger | None,
    flow_run_id: str = "",
    repair_unexplained: bool = False,
) -> list[dict[str, object]]:
    """Repair what `damage` holds (only with a `ledger`: a dry run sends nothing and reports
    ``would-repair``); unexplained dangling tags only with `repair_unexplained`. Return
    result rows (`tasks.delete.loader` columns) with outcome ``repaired``, ``would-repair``,
    ``damaged`` (unexplained, not asked to repair), ``gone`` (pushed again since) or
    ``failed``. Never raises a registry error."""
    rows: list[dict[str, object]] = []
    for item in damage.explained:
        record = item.record
        tags = list(item.tags)
        if ledger is None:
            why = f"names {record.digest}, deleted by run {record.flow_run_id or '?'}"
            rows.append(_row(record.repository, record.digest, tags, "would-repair", why))
            continue
        rows.append(await _finish_deletion(client, record, tags, ledger, flow_run_id))
    for repository, tags in damage.unexplained.items():
        if ledger is None or not repair_unexplained:
            why = "names nothing and no ledger of ours explains it"
            outcome: Outcome = "would-repair" if repair_unexplained else "damaged"
            if not repair_unexplained:
                why += ": `regsweep repair --apply` removes it"
            rows += [_row(repository, "", [tag], outcome, why) for tag in tags]
            continue
        for tag in tags:
            rows.append(await _remove_tag(client, repository, tag, ledger, flow_run_id, None))
    if ledger is not None:
        for open_record in damage.open_records:
            await _close(client, open_record, flow_run_id)
    return rows


def _repair_record(
    client: RegistryClient, repository: str, digest: str, tags: list[str], flow_run_id: str
) -> LedgerRecord:
    return LedgerRecord(
        state="pending",
        registry=client.host,
        registry_url=client.url,
        repository=repository,
        digest=digest,
        tags=tags,
        media_type="",
        manifest="",
        reason="dangling",
        flow_run_id=flow_run_id,
        action="repair",
    )


async def _finish_deletion(
    client: RegistryClient, earlier: LedgerRecord, tags: list[str], ledger: Ledger, run: str
) -> dict[str, object]:
    """PUT the deleted manifest back by digest, then DELETE it: its dangling tags go with it."""
    repo, digest = earlier.repository, earlier.digest
    why = f"finishing the deletion of {digest} by run {earlier.flow_run_id or '?'}"
    record = _repair_record(client, repo, digest, tags, run)
    await ledger.record(replace(record, detail=why))
    try:
        if not await _still_dangling(client, repo, tags):
            await _close_record(ledger, record, "gone", "the tags name something again")
            return _row(repo, digest, tags, "gone", "the tags name something again")
        try:
            await put_manifest(client, repo, digest, earlier.manifest_bytes, earlier.media_type)
        except RegistryError as exc:  # blobs garbage-collected: remove the tags one by one
            log.info("repair %s@%s: PUT back failed (%s); removing the tags", repo, digest, exc)
            await _close_record(ledger, record, "failed", f"PUT back failed: {exc}")
            results = [await _remove_tag(client, repo, t, ledger, run, digest) for t in tags]
            bad = [r for r in results if r["outcome"] != "repaired"]
            return bad[0] if bad else _row(repo, digest, tags, "repaired", why)
        await delete_manifest(client, repo, digest)
    except RegistryError as exc:
        await _close_record(ledger, record, "failed", str(exc))
        return _row(repo, digest, tags, "failed", f"{why}: {exc}")
    await _close_record(ledger, record, "done", why)
    return _row(repo, digest, tags, "repaired", why)


async def _still_dangling(client: RegistryClient, repository: str, tags: list[str]) -> bool:
    """Every one of `tags` still listed and still naming nothing (no push since the scan)."""
    for tag in tags:
        if await resolve_tag(client, repository, tag) is not None:
            return False
    return set(tags) <= set(await list_tags(client, repository))


async def _remove_tag(
    client: RegistryClient,
    repository: str,
    tag: str,
    ledger: Ledger,
    run: str,
    digest: str | None,
) -> dict[str, object]:
    """Remove one dangling tag: the vendor's tag DELETE, else a placeholder PUT under it and
    DELETEd (as an untag by overwrite does)."""
    record = _repair_record(client, repository, digest or "", [tag], run)
    placeholder = placeholder_manifest(repository, tag)
    if not vendor_of(client).tag_api:
        record = replace(record, placeholder=sha256_digest(placeholder))
    await ledger.record(record)
    try:
        if not await _still_dangling(client, repository, [tag]):
            await _close_record(ledger, record, "gone", "the tag names something again")
            return _row(repository, digest or "", [tag], "gone", "the tag names something again")
        if vendor_of(client).tag_api:
            await delete_tag(client, repository, tag)
        else:
            await upload_blob(client, repository, EMPTY_CONFIG)
            await overwrite_and_delete(client, repository, tag, placeholder)
    except RegistryError as exc:
        await _close_record(ledger, record, "failed", str(exc))
        return _row(repository, digest or "", [tag], "failed", f"removing the tag: {exc}")
    await _close_record(ledger, record, "done", "a tag that named nothing, removed")
    return _row(repository, digest or "", [tag], "repaired", "a tag that named nothing, removed")


async def _close_record(ledger: Ledger, record: LedgerRecord, state: str, detail: str) -> None:
    now = datetime.now(UTC).isoformat()
    await ledger.record(replace(record, state=state, detail=detail, time=now))


async def _close(client: RegistryClient, item: Open, run: str) -> None:
    """Close one open record in its own ledger, by what the registry holds now."""
    record = item.record
    by = f"reconciled by run {run or '?'}"
    try:
        if record.action == "untag":
            tag = record.tags[0] if record.tags else ""
            now = await resolve_tag(client, record.repository, tag) if tag else None
            if now is not None and now == record.placeholder:  # cut short on its placeholder
                await delete_manifest(client, record.repository, record.placeholder)
                now = None
            state, detail = (
                ("done", f"{by}: the tag is gone")
                if now is None
                else ("failed", f"{by}: the tag is still there (names {now})")
            )
        elif record.action == "delete":
            there = await resolve_tag(client, record.repository, record.digest) is not None
            state, detail = (
                ("failed", f"{by}: the DELETE was not carried out; the manifest is there")
                if there
                else ("done", f"{by}: the manifest is gone")
            )
        else:  # a repair cut short: its dangling tags are found and repaired again
            state, detail = "failed", f"{by}: the repair was cut short"
    except RegistryError as exc:
        log.warning("reconciling %s: %s", item.path, exc)
        return
    await _close_record(Ledger(item.path), record, state, detail)
