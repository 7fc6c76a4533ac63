"""Restore deleted manifests and their tags from the ledger.

A manifest can be put back while the registry still has its blobs (until garbage
collection). Everything is checked first: if any blob or child manifest is missing,
nothing is restored and the error lists what is missing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tasks.delete.errors import RestoreError
from tasks.delete.ledger import LedgerRecord, read_ledger
from tasks.registry import mediatypes
from tasks.registry.blob import blob_exists
from tasks.registry.client import RegistryClient
from tasks.registry.errors import NotFound
from tasks.registry.manifest import get_manifest, put_manifest, resolve_tag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreFilter:
    repository: str | None = None
    digest: str | None = None
    since: datetime | None = None

    def accepts(self, record: LedgerRecord) -> bool:
        if self.repository and record.repository != self.repository:
            return False
        if self.digest and record.digest != self.digest:
            return False
        return not (self.since and datetime.fromisoformat(record.time) < self.since)


def restorable(path: str | Path, registry: str, selection: RestoreFilter) -> list[LedgerRecord]:
    """Return the manifests of `registry` the ledger says a DELETE was (or may have been)
    sent for, and that `selection` accepts: every digest with a ``pending`` record, whatever
    came after (``failed`` and ``gone`` may hide a DELETE the registry carried out before a
    crash). Putting back a manifest that still exists changes nothing."""
    sent: dict[tuple[str, str, str], LedgerRecord] = {}
    for record in read_ledger(path):
        if record.state == "pending":
            sent[(record.registry, record.repository, record.digest)] = record
    return [
        record
        for (reg, _repo, _digest), record in sorted(sent.items())
        if reg == registry and selection.accepts(record)
    ]


async def _missing(client: RegistryClient, record: LedgerRecord, restoring: set[str]) -> list[str]:
    body = json.loads(record.manifest_bytes)
    repo = record.repository
    missing = []
    if record.media_type in mediatypes.INDEXES:
        for child in body.get("manifests") or []:
            digest = child["digest"]
            if digest in restoring:
                continue
            try:
                await get_manifest(client, repo, digest)
            except NotFound:
                missing.append(f"{repo}@{record.digest}: child manifest {digest}")
    else:
        for desc in [body.get("config"), *(body.get("layers") or [])]:
            if isinstance(desc, dict) and not await blob_exists(client, repo, desc["digest"]):
                missing.append(f"{repo}@{record.digest}: blob {desc['digest']}")
    return missing


async def restore(client: RegistryClient, records: list[LedgerRecord]) -> list[LedgerRecord]:
    """Put `records` back (manifest by digest, then each tag); return what was restored.

    A tag that exists again and points at another digest (CI reused the name) is left
    alone, with a warning: restoring must not move a tag someone pushed since.
    Raises `RestoreError` listing every missing blob or child when anything is missing;
    in that case nothing is written.
    """
    restoring = {r.digest for r in records}
    missing: list[str] = []
    for record in records:
        missing += await _missing(client, record, restoring)
    if missing:
        raise RestoreError(
            "cannot restore: the registry no longer has "
            + "; ".join(missing)
            + " (garbage-collected). Nothing was restored."
        )
    # Image manifests before the indexes that name them.
    ordered = sorted(records, key=lambda r: r.media_type in mediatypes.INDEXES)
    for record in ordered:
        raw = record.manifest_bytes
        await put_manifest(client, record.repository, record.digest, raw, record.media_type)
        for tag in record.tags:
            current = await resolve_tag(client, record.repository, tag)
            if current is not None and current != record.digest:
                log.warning(
                    "not restoring tag %s:%s: it now points at %s", record.repository, tag, current
                )
                continue
            await put_manifest(client, record.repository, tag, raw, record.media_type)
    return ordered
