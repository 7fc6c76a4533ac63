"""Delete what the plan says, by manifest digest, with guards, re-checks and a ledger.

``results`` — one row per (repository, digest) the plan deletes
    repository  str
    digest      str
    tags        object (list[str])  tags the plan expected on the digest
    outcome     str   deleted | gone | would-delete | skipped-moved | skipped-incomplete |
                      refused | failed
    detail      str   why, for anything but deleted / would-delete
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from tasks.delete.errors import DeletionRefused
from tasks.delete.ledger import Ledger, LedgerRecord
from tasks.frames import column_rows, typed_frame
from tasks.registry import mediatypes
from tasks.registry.client import RegistryClient
from tasks.registry.errors import DeleteUnsupported, NotFound, RegistryError
from tasks.registry.manifest import delete_manifest, manifest_by_digest, resolve_tag
from tasks.registry.tag import list_tags

log = logging.getLogger(__name__)

RESULT_COLUMNS = {
    "repository": "str",
    "digest": "str",
    "tags": "object",
    "outcome": "str",
    "detail": "str",
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Target:
    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str
    reason: str


def deletion_targets(plan: pd.DataFrame) -> list[Target]:
    """Return the digests to delete: those whose every plan row says delete.

    Indexes come first, so that a child is never deleted while an index still names it.
    """
    by_digest = plan.groupby(["repository", "digest"], sort=True)
    targets = []
    for (repo, digest), rows in by_digest:
        if (rows["action"] != "delete").any():
            continue
        tags = tuple(sorted(t for t in rows["tag"] if t))
        targets.append(
            Target(
                str(repo),
                str(digest),
                tags,
                str(rows["media_type"].iloc[0]),
                str(rows["reason"].iloc[0]),
            )
        )
    return sorted(
        targets, key=lambda t: (t.media_type not in mediatypes.INDEXES, t.repository, t.digest)
    )


def check_fraction(plan: pd.DataFrame, max_fraction: float) -> dict[str, float]:
    """Return {repository: fraction} for repositories whose plan deletes more than allowed."""
    digests = plan.groupby("repository")["digest"].nunique()
    kept = plan[plan["action"] == "keep"].groupby("repository")["digest"].nunique()
    over = {}
    for repo, total in digests.items():
        deleted = total - int(kept.get(repo, 0))
        fraction = deleted / total if total else 0.0
        if fraction > max_fraction:
            over[str(repo)] = fraction
    return over


@dataclass
class Settled:
    """The plan's deletions sorted out before any request: `results` holds the digests that
    will not be deleted now (dry run, incomplete repository), `live` the rest by repository."""

    results: list[dict[str, object]]
    live: dict[str, list[Target]]


def settle_targets(
    plan: pd.DataFrame,
    *,
    apply: bool,
    incomplete: list[str],
    max_delete_fraction: float,
    force: bool = False,
) -> Settled:
    """Check the plan against the guard and sort its deletable digests (no request sent).

    Raises `DeletionRefused` when a repository's plan deletes more than
    `max_delete_fraction` (unless `force`). Never lets a repository listed in `incomplete`
    through.
    """
    over = {} if force else check_fraction(plan, max_delete_fraction)
    if over:
        listing = ", ".join(f"{r} ({f:.0%})" for r, f in sorted(over.items()))
        raise DeletionRefused(
            f"refusing to delete more than safety.maxDeleteFraction={max_delete_fraction:.0%} "
            f"of the manifests in: {listing}. Check the plan; rerun with --force if it is right."
        )
    skip = set(incomplete)
    settled = Settled([], {})
    for target in deletion_targets(plan):
        if target.repository in skip:
            settled.results.append(
                _result(target, "skipped-incomplete", "the repository's listing was incomplete")
            )
        elif not apply:
            settled.results.append(_result(target, "would-delete", ""))
        else:
            settled.live.setdefault(target.repository, []).append(target)
    return settled


def tags_by_repository(extracted_tags: pd.DataFrame) -> dict[str, set[str]]:
    """Return {repository: tags it had at the scan}."""
    scanned: dict[str, set[str]] = {}
    for repo, tag in column_rows(extracted_tags, "repository", "tag"):
        scanned.setdefault(repo, set()).add(tag)
    return scanned


async def execute_plan(
    client: RegistryClient,
    plan: pd.DataFrame,
    extracted_tags: pd.DataFrame,
    *,
    apply: bool,
    ledger: Ledger | None,
    incomplete: list[str],
    max_delete_fraction: float,
    force: bool = False,
    flow_run_id: str = "",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Delete the plan's deletable digests (only when `apply`); return the results table.

    See `settle_targets` for the guards; each repository is then re-checked and deleted by
    `delete_repository`, repositories concurrently. A dry run sends no request at all.
    """
    settled = settle_targets(
        plan,
        apply=apply,
        incomplete=incomplete,
        max_delete_fraction=max_delete_fraction,
        force=force,
    )
    results = settled.results
    if settled.live:
        if ledger is None:
            raise ValueError("a ledger is required to delete")
        counter = _Counter(sum(len(ts) for ts in settled.live.values()), progress)
        scanned = tags_by_repository(extracted_tags)
        for out in await asyncio.gather(
            *(
                delete_repository(
                    client, repo, targets, scanned.get(repo, set()), ledger, flow_run_id, counter
                )
                for repo, targets in settled.live.items()
            )
        ):
            results.extend(out)
    return typed_frame(results, RESULT_COLUMNS)


class _Counter:
    """Counts finished digests for a progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.done, self.total, self.progress = 0, total, progress

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


async def delete_repository(
    client: RegistryClient,
    repo: str,
    targets: list[Target],
    scanned_tags: set[str],
    ledger: Ledger,
    flow_run_id: str = "",
    finished: Callable[[], None] | None = None,
) -> list[dict[str, object]]:
    """Re-check one repository's tags, then delete its targets (indexes first); return one
    result per target. `scanned_tags` are the repository's tags at the scan."""
    moved = await _recheck(client, repo, targets, scanned_tags)

    async def one(target: Target) -> dict[str, object]:
        try:
            if target.digest in moved:
                return _result(target, "skipped-moved", moved[target.digest])
            return await _delete(client, target, ledger, flow_run_id)
        finally:
            if finished is not None:
                finished()

    out: list[dict[str, object]] = []
    # Indexes go before the manifests they name.
    indexes = [t for t in targets if t.media_type in mediatypes.INDEXES]
    others = [t for t in targets if t.media_type not in mediatypes.INDEXES]
    for group in (indexes, others):
        out.extend(await asyncio.gather(*(one(t) for t in group)))
    return out


def _result(target: Target, outcome: str, detail: str) -> dict[str, object]:
    return {
        "repository": target.repository,
        "digest": target.digest,
        "tags": list(target.tags),
        "outcome": outcome,
        "detail": detail,
    }


async def _recheck(
    client: RegistryClient, repo: str, targets: list[Target], known: set[str]
) -> dict[str, str]:
    """Return {digest: why} for the targets in `repo` whose tags changed since the scan.

    Every tag of the repository is resolved again (CI may have pushed meanwhile). A digest
    is still deletable only if the tags on it now are among the tags the plan expected and
    every expected tag that still exists still points at it. A tag moved onto it, a new
    tag, or an expected tag moved away each cancels its deletion. `known` (the repository's
    tags at the scan) only words the reason: "new tag" or "tag".
    """
    moved: dict[str, str] = {}
    try:
        now_tags = sorted(await list_tags(client, repo))
    except NotFound:
        now_tags = []
    answers = await asyncio.gather(*(resolve_tag(client, repo, tag) for tag in now_tags))
    current = {tag: digest for tag, digest in zip(now_tags, answers, strict=True) if digest}
    on_digest: dict[str, list[str]] = {}
    for tag, digest in current.items():
        on_digest.setdefault(digest, []).append(tag)
    for target in targets:
        expected = set(target.tags)
        for tag in sorted(expected):
            if tag in current and current[tag] != target.digest:
                moved[target.digest] = f"tag {tag} now points at {current[tag]}"
        for tag in on_digest.get(target.digest, []):
            if tag not in expected:
                what = "new tag" if tag not in known else "tag"
                moved[target.digest] = f"{what} {tag} now points at it"
    return moved


async def _delete(
    client: RegistryClient, target: Target, ledger: Ledger, flow_run_id: str
) -> dict[str, object]:
    repo, digest = target.repository, target.digest
    raw, media_type = b"", target.media_type

    async def record(state: str, detail: str = "") -> None:
        await ledger.record(
            LedgerRecord(
                state=state,
                registry=client.host,
                repository=repo,
                digest=digest,
                tags=list(target.tags),
                media_type=media_type,
                manifest=base64.b64encode(raw).decode(),
                reason=target.reason,
                flow_run_id=flow_run_id,
                detail=detail,
            )
        )

    try:
        manifest = await manifest_by_digest(client, repo, digest)
    except NotFound:
        # Gone before this attempt: deleted by an earlier attempt of this run (its pending
        # record holds the bytes) or by someone else. Recorded so the ledger is complete.
        await record("gone", "manifest not found before sending DELETE")
        return _result(target, "gone", "already deleted before this attempt")
    except RegistryError as exc:
        return _result(target, "failed", f"reading the manifest for the ledger: {exc}")
    raw, media_type = manifest.raw, manifest.media_type

    await record("pending")
    try:
        existed = await delete_manifest(client, repo, digest)
    except DeleteUnsupported as exc:
        await record("failed", str(exc))
        raise DeletionRefused(str(exc)) from exc
    except RegistryError as exc:
        await record("failed", str(exc))
        log.warning("delete %s@%s failed: %s", repo, digest, exc)
        return _result(target, "failed", str(exc))
    await record("done" if existed else "gone")
    return _result(target, "deleted" if existed else "gone", "" if existed else "already gone")
