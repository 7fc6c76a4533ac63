"""Untag: remove a tag the plan says goes while its digest stays (plan action ``untag``).

How, by `cleanup.untag`:

- ``api``: ``DELETE /v2/<name>/manifests/<tag>`` where the registry deletes tags (OCI
  distribution spec 1.1; Distribution 3.0+, GitLab's registry). Asked once per repository,
  by deleting a tag that cannot exist (`Vendor.deletes_tags`): a registry
  that cannot (Distribution 2.8 answers 400) keeps its tags, reported ``skipped-unsupported``
  with the hint below.
- ``overwrite`` (Distribution 2.8; regclient's method): PUT a placeholder manifest unique to
  this tag and run (an OCI manifest of the empty config, the tag and a nonce in its
  annotations) under the tag, then DELETE the placeholder by digest, which takes the tag
  with it. Asked first, once per repository (DELETE of a digest that cannot exist): where
  deletes are disabled no placeholder is ever PUT (``skipped-unsupported``). Its window: a
  push to the tag between the re-check and the PUT is overwritten and then untagged (the
  pushed manifest stays, by digest). If the DELETE fails the tag is pointed back at its
  digest at once. A repository's overwrites run one at a time, and a 404 to the DELETE of
  the placeholder just PUT (an earlier attempt took the manifest, perhaps not the tag)
  repeats the PUT and the DELETE, so no tag is left naming a deleted manifest.

Every untag re-reads the tag first (moved or gone since the scan: skipped; used by the
cluster through that tag now: skipped) and is in the ledger: ``pending`` with the digest's
manifest bytes before the first write, then ``done``, ``gone`` or ``failed``; `regsweep
restore` re-tags from the record alone.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pandas as pd

from tasks.core import mediatypes
from tasks.core.aio import for_each
from tasks.core.frames import column_rows
from tasks.delete.ledger import Ledger, LedgerRecord
from tasks.delete.outcome import Outcome
from tasks.delete.recheck import InUse
from tasks.registry.blob import upload_blob
from tasks.registry.client import RegistryClient
from tasks.registry.errors import DeleteUnsupported, RegistryError, RegistryUnavailable
from tasks.registry.manifest import (
    delete_manifest,
    delete_tag,
    manifest_by_digest,
    put_manifest,
    resolve_tag,
    sha256_digest,
)
from tasks.registry.vendors.base import vendor_of

log = logging.getLogger(__name__)

UNTAG_WORKERS = 16
OVERWRITE_ATTEMPTS = 3  # PUT + DELETE of a placeholder, when its DELETE finds it gone
EMPTY_CONFIG = b"{}"  # the OCI image spec's empty descriptor content
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
PLACEHOLDER_ANNOTATION = "io.regsweep.untag"
UNSUPPORTED_HINT = (
    "the registry does not delete tags (Distribution before 3.0, ghcr.io): set cleanup.untag: "
    "overwrite to untag by a placeholder manifest, or off to keep such tags"
)


DELETES_DISABLED = (
    "the registry has deletes disabled (405 to DELETE of a digest that cannot exist): an "
    "untag by overwrite would leave the tag on its placeholder, so none is attempted"
)


@dataclass(frozen=True, order=True)
class UntagTarget:
    """A tag the plan untags, and the digest it must still name."""

    repository: str
    tag: str
    digest: str

    @property
    def key(self) -> str:
        """ "repository:tag": how a person confirms it (`run --apply` on a terminal)."""
        return f"{self.repository}:{self.tag}"


def untag_targets(plan: pd.DataFrame) -> list[UntagTarget]:
    """The plan's ``untag`` rows, sorted."""
    rows = plan[plan["action"] == "untag"]
    found = column_rows(rows, "repository", "tag", "digest")
    return sorted(UntagTarget(r, t, d) for r, t, d in found)


def untag_result(target: UntagTarget, outcome: Outcome, detail: str) -> dict[str, object]:
    """A row of the delete step's results table (`tasks.delete.loader`)."""
    return {
        "repository": target.repository,
        "digest": target.digest,
        "tags": [target.tag],
        "closure": "",
        "outcome": outcome,
        "detail": detail,
    }


def placeholder_manifest(repository: str, tag: str) -> bytes:
    """A manifest nothing else can have: deleting it by digest removes only `tag`."""
    empty = {
        "mediaType": EMPTY_MEDIA_TYPE,
        "digest": sha256_digest(EMPTY_CONFIG),
        "size": len(EMPTY_CONFIG),
    }
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": empty,
        "layers": [empty],
        "annotations": {
            PLACEHOLDER_ANNOTATION: f"{repository}:{tag} {secrets.token_hex(16)}",
            "org.opencontainers.image.description": "regsweep untag placeholder; safe to delete",
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


async def overwrite_and_delete(
    client: RegistryClient, repository: str, tag: str, placeholder: bytes
) -> None:
    """Point `tag` at `placeholder` and DELETE the placeholder by digest, which takes the tag
    with it; raise `RegistryError` when that cannot be done. A 404 to our DELETE of what we
    PUT a moment ago means an earlier attempt of this DELETE (its answer lost, then retried)
    took the manifest but may not have taken the tag: the tag would name nothing, so again,
    from the PUT (OVERWRITE_ATTEMPTS times)."""
    digest = sha256_digest(placeholder)
    for _ in range(OVERWRITE_ATTEMPTS):
        await put_manifest(client, repository, tag, placeholder, mediatypes.OCI_MANIFEST)
        if await delete_manifest(client, repository, digest):
            return
    raise RegistryError(
        f"{repository}:{tag}: the placeholder {digest} kept vanishing before its DELETE "
        f"({OVERWRITE_ATTEMPTS} attempts)"
    )


async def untag_repository(
    client: RegistryClient,
    targets: list[UntagTarget],
    ledger: Ledger,
    method: str,
    flow_run_id: str = "",
    in_use: InUse | None = None,
    stop: str = "",
    finished: Callable[[int], None] | None = None,
) -> list[dict[str, object]]:
    """Untag one repository's `targets` by `method` (``api`` or ``overwrite``); return one
    result per target. Never raises a registry error: whatever fails is in the results."""
    if not targets:
        return []
    repository = targets[0].repository
    if vendor_of(client).tag_api:  # a vendor's own tag delete untags outright: no placeholder
        method = "api"
    if not stop and method == "api":
        try:
            if not await vendor_of(client).deletes_tags(repository):
                stop = UNSUPPORTED_HINT
        except RegistryError as exc:
            stop = f"asking whether {repository} deletes tags failed: {exc}"
    elif not stop:  # overwrite: a tag on a placeholder its DELETE cannot remove is an outage
        try:
            if not await vendor_of(client).deletes_manifests(repository):
                stop = DELETES_DISABLED
        except RegistryError as exc:
            stop = f"asking whether {repository} deletes manifests failed: {exc}"
    if stop:
        unsupported = stop in (UNSUPPORTED_HINT, DELETES_DISABLED)
        outcome: Outcome = "skipped-unsupported" if unsupported else "not-attempted"
        if finished is not None:
            finished(len(targets))
        return [untag_result(t, outcome, stop) for t in targets]
    if method == "overwrite":
        try:
            await upload_blob(client, repository, EMPTY_CONFIG)
        except RegistryError as exc:
            why = f"uploading the placeholder's empty config failed: {exc}"
            if finished is not None:
                finished(len(targets))
            return [untag_result(t, "failed", why) for t in targets]
    out: list[dict[str, object]] = []
    untag = _Untag(client, ledger, method, flow_run_id, in_use)

    async def one(target: UntagTarget) -> None:
        out.append(await untag.run(target))
        if finished is not None:
            finished(1)

    # Overwrite: one tag at a time. A registry's DELETE by digest looks up the tags that
    # name the manifest while other DELETEs remove tags in the same repository; under
    # that race Distribution 2.8 deleted a placeholder and left its tag naming it.
    await for_each(targets, one, 1 if method == "overwrite" else UNTAG_WORKERS)
    return sorted(out, key=lambda r: str(r["tags"]))


@dataclass
class _Untag:
    client: RegistryClient
    ledger: Ledger
    method: str
    flow_run_id: str
    in_use: InUse | None

    async def run(self, target: UntagTarget) -> dict[str, object]:
        repo, tag, digest = target.repository, target.tag, target.digest
        if self.in_use is not None:
            where = self.in_use.tags.get((repo, tag))
            if where is not None:
                return untag_result(target, "skipped-in-use", f"now in use: {where}")
        try:
            now = await resolve_tag(self.client, repo, tag)
            if now is None:
                return untag_result(target, "gone", "the tag was gone before this attempt")
            if now != digest:
                return untag_result(target, "skipped-moved", f"tag {tag} now points at {now}")
            manifest = await manifest_by_digest(self.client, repo, digest)
        except RegistryError as exc:
            return untag_result(target, "failed", f"re-reading the tag: {exc}")
        record = LedgerRecord(
            state="pending",
            registry=self.client.host,
            registry_url=self.client.url,
            repository=repo,
            digest=digest,
            tags=[tag],
            media_type=manifest.media_type,
            manifest=base64.b64encode(manifest.raw).decode(),
            reason="no-policy",
            flow_run_id=self.flow_run_id,
            action="untag",
        )
        if self.method == "overwrite":
            return await self._overwrite(target, record, manifest.raw)
        await self.ledger.record(record)
        try:
            existed = await delete_tag(self.client, repo, tag)
        except RegistryError as exc:
            return await self._failed(target, record, exc)
        await self._record(record, "done" if existed else "gone")
        return untag_result(target, "untagged" if existed else "gone", "")

    async def _overwrite(
        self, target: UntagTarget, record: LedgerRecord, raw: bytes
    ) -> dict[str, object]:
        repo, tag = target.repository, target.tag
        placeholder = placeholder_manifest(repo, tag)
        record = replace(record, placeholder=sha256_digest(placeholder))
        await self.ledger.record(record)
        try:
            await overwrite_and_delete(self.client, repo, tag, placeholder)
        except RegistryError as exc:
            detail = str(exc)
            try:  # never leave the tag on the placeholder
                if await resolve_tag(self.client, repo, tag) == record.placeholder:
                    await put_manifest(self.client, repo, tag, raw, record.media_type)
                    detail += f"; tag {tag} pointed back at {target.digest}"
            except RegistryError as again:
                detail += (
                    f"; pointing tag {tag} back at {target.digest} failed ({again}): "
                    "`regsweep restore` does it from the ledger"
                )
            await self._record(record, "failed", detail)
            log.warning("untag %s:%s failed: %s", repo, tag, detail)
            return untag_result(target, "failed", detail)
        await self._record(record, "done")
        return untag_result(target, "untagged", "")

    async def _failed(
        self, target: UntagTarget, record: LedgerRecord, exc: RegistryError
    ) -> dict[str, object]:
        outcome: Outcome = "failed"
        if isinstance(exc, DeleteUnsupported):
            outcome, detail = "skipped-unsupported", f"{exc}; {UNSUPPORTED_HINT}"
        else:
            detail = str(exc)
            try:  # the answer may have been lost after the registry untagged it
                if await resolve_tag(self.client, target.repository, target.tag) is None:
                    await self._record(record, "done", f"the DELETE's answer was lost ({exc})")
                    return untag_result(target, "untagged", "")
            except RegistryError:
                detail += " (the tag may have been deleted: the registry did not answer)"
            if isinstance(exc, RegistryUnavailable):
                detail += " (the registry stopped answering)"
        await self._record(record, "failed", detail)
        return untag_result(target, outcome, detail)

    async def _record(self, record: LedgerRecord, state: str, detail: str = "") -> None:
        now = datetime.now(UTC).isoformat()
        await self.ledger.record(replace(record, state=state, detail=detail, time=now))
