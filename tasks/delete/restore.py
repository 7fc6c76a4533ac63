"""Restore deleted manifests and their tags from the ledger.

A manifest can be put back while the registry still has its blobs (until garbage
collection). Everything is checked first: if any blob or child manifest is missing,
nothing is restored and the error lists what is missing.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasks.core import mediatypes
from tasks.core.reference import is_digest, is_repository_name, is_tag_name
from tasks.core.registry_kinds import REGISTRY_KINDS
from tasks.core.restored import RestoredImage, record_restored
from tasks.delete.errors import LedgerError, RestoreError
from tasks.delete.ledger import LedgerRecord, numbered_records, read_ledger
from tasks.registry.blob import blob_exists
from tasks.registry.client import RegistryClient
from tasks.registry.errors import NotFound
from tasks.registry.manifest import get_manifest, put_manifest, resolve_tag, sha256_digest
from tasks.registry.vendors import vendor_class
from tasks.registry.vendors.base import Vendor, vendor_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreFilter:
    repository: str | None = None
    digest: str | None = None
    since: datetime | None = None

    def accepts(self, record: LedgerRecord) -> bool:
        if self.repository and record.repository != self.repository:
            return False
        if self.digest and not _same_digest(record.digest, self.digest):
            return False
        return not (self.since and datetime.fromisoformat(record.time) < self.since)


def _same_digest(recorded: str, given: str) -> bool:
    """`given` names `recorded`: the whole digest, or a prefix of it (with or without the
    algorithm, at least 6 hex digits)."""
    hexes = given.removeprefix("sha256:")
    return recorded == given or (
        len(hexes) >= 6 and recorded.removeprefix("sha256:").startswith(hexes)
    )


def restorable(path: str | Path, registry: str, selection: RestoreFilter) -> list[LedgerRecord]:
    """Return the manifests of `registry` (a host, or a URL with its scheme) the ledger says
    a DELETE was (or may have been) sent for, and that `selection` accepts: every digest (and
    every untagged tag) with a ``pending`` record, whatever came after (``failed`` and
    ``gone`` may hide a DELETE the registry carried out before a crash). Putting back a
    manifest that still exists changes nothing.

    Raises `LedgerError` naming the line when the file is not a ledger or a record to restore
    does not hold together (see `check_record`): then nothing may be restored.
    """
    by_url = "://" in registry
    sent: dict[tuple[str, str, str, str, tuple[str, ...]], tuple[int, LedgerRecord]] = {}
    for number, record in numbered_records(path):
        if record.state == "pending" and record.action != "repair":  # a repair: nothing to put back
            where = record.registry_url if by_url else record.registry
            # an untag and a later deletion of the same digest are two things to put back
            key = (where, record.repository, record.digest, record.action, tuple(record.tags))
            sent[key] = (number, record)
    chosen = []
    for (where, *_), (number, record) in sorted(sent.items()):
        if where == registry and selection.accepts(record):
            try:
                check_record(record)
            except LedgerError as exc:
                raise LedgerError(f"{path}:{number}: {exc}") from None
            chosen.append(record)
    return chosen


def ledger_registries(path: str | Path) -> list[str]:
    """The registry URLs the ledger's pending records name (empty strings for records written
    before the URL was recorded)."""
    return sorted(
        {r.registry_url for r in read_ledger(path) if r.state == "pending" and r.action != "repair"}
    )


def check_record(record: LedgerRecord) -> None:
    """Raise `LedgerError` unless the record can be put back as it says: a valid repository,
    tags and digest, manifest bytes that hash to the digest, and a manifest of the recorded
    media type (a ledger edited by hand or by an attacker must not re-point a live tag)."""
    if not is_repository_name(record.repository):
        raise LedgerError(f"repository {record.repository!r} is not a valid name")
    bad_tags = [t for t in record.tags if not is_tag_name(t)]
    if bad_tags:
        raise LedgerError(f"tags {bad_tags!r} are not valid tag names")
    if not is_digest(record.digest):
        raise LedgerError(f"digest {record.digest!r} is not a sha256 digest")
    try:
        raw = base64.b64decode(record.manifest, validate=True)
    except ValueError:
        raise LedgerError(f"{record.digest}: manifest is not base64") from None
    if sha256_digest(raw) != record.digest:
        raise LedgerError(f"{record.digest}: the manifest bytes do not hash to the digest")
    if record.media_type not in mediatypes.IMAGE_MANIFESTS | mediatypes.INDEXES:
        raise LedgerError(f"{record.digest}: unknown media type {record.media_type!r}")
    try:
        body = json.loads(raw)
    except ValueError:
        raise LedgerError(f"{record.digest}: the manifest is not JSON") from None
    if record.vendor and (
        record.vendor not in REGISTRY_KINDS or not vendor_class(record.vendor).restores_versions
    ):
        raise LedgerError(f"{record.digest}: unknown vendor {record.vendor!r}")
    if record.vendor and not (record.vendor_id.isdigit() and record.vendor_api):
        raise LedgerError(f"{record.digest}: a {record.vendor} record without its version id")
    declared = body.get("mediaType") if isinstance(body, dict) else None
    if not isinstance(body, dict) or declared not in (None, record.media_type):
        raise LedgerError(
            f"{record.digest}: the manifest says {declared!r}, the record {record.media_type!r}"
        )


@dataclass(frozen=True)
class Restored:
    """One manifest put back: the tags put back and those left alone (tag -> its digest now)."""

    record: LedgerRecord
    tags: tuple[str, ...]
    skipped: dict[str, str]


async def _missing(client: RegistryClient, record: LedgerRecord, restoring: set[str]) -> list[str]:
    body = json.loads(record.manifest_bytes)
    repo = record.repository
    missing = []
    if record.media_type in mediatypes.INDEXES:
        for child in body.get("manifests") or []:
            digest = child.get("digest") if isinstance(child, dict) else None
            if not isinstance(digest, str) or not is_digest(digest):
                raise LedgerError(f"{repo}@{record.digest}: child {digest!r} is not a digest")
            if digest in restoring:
                continue
            try:
                await get_manifest(client, repo, digest)
            except NotFound:
                missing.append(f"{repo}@{record.digest}: child manifest {digest}")
    else:
        for desc in [body.get("config"), *(body.get("layers") or [])]:
            if not isinstance(desc, dict):
                continue
            blob = desc.get("digest")
            if not isinstance(blob, str) or not is_digest(blob):
                raise LedgerError(f"{repo}@{record.digest}: blob {blob!r} is not a digest")
            if not await blob_exists(client, repo, blob):
                missing.append(f"{repo}@{record.digest}: blob {blob}")
    return missing


async def restore(client: RegistryClient, records: list[LedgerRecord]) -> list[Restored]:
    """Put `records` back (manifest by digest, then each tag); return what was restored.

    A tag that exists again and points at another digest (CI reused the name) is left
    alone, and reported: restoring must not move a tag someone pushed since. A tag on the
    placeholder of an untag by overwrite (an untag that failed half-way) is regsweep's own,
    and is pointed back.
    Raises `RestoreError` listing every missing blob or child when anything is missing;
    in that case nothing is written.
    """
    for record in records:
        check_record(record)
    restoring = {r.digest for r in records}
    missing: list[str] = []
    for record in records:
        if not record.vendor:  # a vendor restores its own (GitHub: within 30 days)
            missing += await _missing(client, record, restoring)
    if missing:
        raise RestoreError(
            "cannot restore: the registry no longer has "
            + "; ".join(missing)
            + " (garbage-collected). Nothing was restored."
        )
    # Image manifests before the indexes that name them.
    ordered = sorted(records, key=lambda r: r.media_type in mediatypes.INDEXES)
    done = []
    vendors: dict[tuple[str, str], Vendor] = {}
    try:
        for record in ordered:
            done.append(await _restore_one(client, record, vendors))
    finally:
        # The next runs keep what was put back (keep reason `restored`), for a grace period.
        when = datetime.now(UTC).isoformat()
        record_restored(
            [RestoredImage(client.host, d.record.repository, d.record.digest, when) for d in done]
        )
    return done


async def _restore_one(
    client: RegistryClient, record: LedgerRecord, vendors: dict[tuple[str, str], Vendor]
) -> Restored:
    """Put one record back: the manifest (where a vendor's API deleted it, through that
    API: GitHub restores the version), then its tags."""
    raw = record.manifest_bytes
    if record.vendor:
        vendor = _vendor(client, record, vendors)
        await vendor.restore_version(record.repository, record.vendor_id)
    else:
        await put_manifest(client, record.repository, record.digest, raw, record.media_type)
    tags, skipped = [], {}
    for tag in record.tags:
        current = await resolve_tag(client, record.repository, tag)
        if current not in (None, record.digest, record.placeholder or None):
            log.warning(
                "not restoring tag %s:%s: it now points at %s", record.repository, tag, current
            )
            skipped[tag] = current
            continue
        if current != record.digest:
            await put_manifest(client, record.repository, tag, raw, record.media_type)
        tags.append(tag)
    return Restored(record, tuple(tags), skipped)


def _vendor(
    client: RegistryClient, record: LedgerRecord, vendors: dict[tuple[str, str], Vendor]
) -> Vendor:
    """The vendor that deleted `record`, at the API it names: the client's own, or one per
    API the vendor trusts (a ledger is a file anyone with write access could edit); closed
    with the client."""
    api = record.vendor_api.rstrip("/")
    vendor = vendor_of(client)
    if vendor.name == record.vendor and vendor.api == api:
        return vendor
    key = (record.vendor, api)
    if key not in vendors:
        vendors[key] = vendor_class(record.vendor).for_restore(client, api)
    return vendors[key]
