"""Restore deleted manifests and their tags from the ledger.

A manifest can be put back while the registry still has its blobs (until garbage
collection). Everything is checked first: if any blob or child manifest is missing,
nothing is restored and the error lists what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tasks.delete.errors import RestoreError
from tasks.delete.ledger import LedgerRecord, latest_states
from tasks.registry import mediatypes
from tasks.registry.blob import blob_exists
from tasks.registry.client import RegistryClient
from tasks.registry.errors import NotFound
from tasks.registry.manifest import get_manifest, put_manifest


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
    """Return the deleted manifests of `registry` in the ledger that `selection` accepts."""
    return [
        record
        for (reg, _repo, _digest), record in sorted(latest_states(path).items())
        if reg == registry and record.state in ("done", "pending") and selection.accepts(record)
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
            await put_manifest(client, record.repository, tag, raw, record.media_type)
    return ordered
