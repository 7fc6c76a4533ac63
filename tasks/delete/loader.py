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

    Never touches a repository listed in `incomplete`. Raises `DeletionRefused` when a
    repository's plan deletes more than `max_delete_fraction` (unless `force`) or the
    registry refuses deletes. A dry run sends no request at all.
    """
    over = {} if force else check_fraction(plan, max_delete_fraction)
    if over:
        listing = ", ".join(f"{r} ({f:.0%})" for r, f in sorted(over.items()))
        raise DeletionRefused(
            f"refusing to delete more than safety.maxDeleteFraction={max_delete_fraction:.0%} "
            f"of the manifests in: {listing}. Check the plan; rerun with --force if it is right."
        )
    targets = deletion_targets(plan)
    results: list[dict[str, object]] = []
    skip = set(incomplete)
    live = []
    for target in targets:
        if target.repository in skip:
            results.append(
                _result(target, "skipped-incomplete", "the repository's listing was incomplete")
            )
        elif not apply:
            results.append(_result(target, "would-delete", ""))
        else:
            live.append(target)
    if live:
        if ledger is None:
            raise ValueError("a ledger is required to delete")
        done = 0
        total = len(live)

        async def one(target: Target, moved: dict[str, str]) -> dict[str, object]:
            nonlocal done
            try:
                if target.digest in moved:
                    return _result(target, "skipped-moved", moved[target.digest])
                return await _delete(client, target, ledger, flow_run_id)
            finally:
                done += 1
                if progress is not None:
                    progress(done, total)

        async def repository(repo: str, targets: list[Target]) -> list[dict[str, object]]:
            # Re-check just before this repository's deletes; repositories run concurrently.
            moved = await _recheck(client, repo, targets, scanned.get(repo, set()))
            out: list[dict[str, object]] = []
            # Indexes go before the manifests they name.
            indexes = [t for t in targets if t.media_type in mediatypes.INDEXES]
            others = [t for t in targets if t.media_type not in mediatypes.INDEXES]
            for group in (indexes, others):
                out.extend(await asyncio.gather(*(one(t, moved) for t in group)))
            return out

        # Tags each repository had at the scan, grouped once (not filtered per repository).
        scanned: dict[str, set[str]] = {}
        for repo, tag in column_rows(extracted_tags, "repository", "tag"):
            scanned.setdefault(repo, set()).add(tag)
        by_repo: dict[str, list[Target]] = {}
        for target in live:
            by_repo.setdefault(target.repository, []).append(target)
        for out in await asyncio.gather(*(repository(r, ts) for r, ts in by_repo.items())):
            results.extend(out)
    return typed_frame(results, RESULT_COLUMNS)


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
