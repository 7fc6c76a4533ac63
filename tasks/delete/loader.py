"""Delete what the plan says, closure by closure, with guards, re-checks and a ledger.

``results`` — one row per (repository, digest) the plan deletes and per tag it untags
    repository  str
    digest      str
    tags        object (list[str])  tags the plan expected on the digest (an untag: its tag)
    closure     str   digest of the closure's first holder (see `tasks.delete.closure`);
                      empty for an untag (see `tasks.delete.untag`)
    outcome     str   one of `tasks.delete.outcome.OUTCOMES`
    detail      str   why, for anything but deleted / would-delete

The step, per repository: settle the guards (no request), then for each batch of closures
re-read every tag (and, once per run, the cluster) and delete the closures the re-check does
not cancel, each in its levels; right before each level's DELETE, the tags named since the
re-check are read again (`tasks.delete.pushes.FreshTags`), and a change that names a member
left cancels the rest of its closure. With push records (`pulls.watchPushes`), tags pushed
onto a deleted manifest during the step are put back afterwards (`tasks.delete.pushes.heal`).
A failure stays in its repository; a failed holder stops its closure, so nothing it names is
deleted while it survives.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from tasks.core.frames import column_rows, typed_frame
from tasks.core.progress import DeleteProgress
from tasks.delete.closure import Closure, Target, build_closures, deletion_targets, holds_from_scan
from tasks.delete.ledger import Ledger, LedgerRecord
from tasks.delete.outcome import Outcome
from tasks.delete.pushes import Deleted, FreshTags, PushFeed, heal
from tasks.delete.recheck import IndexChildren, InUse, cancelled_closures, current_tags
from tasks.delete.untag import UntagTarget, untag_repository, untag_result, untag_targets
from tasks.pulls.errors import PullsError
from tasks.registry.client import RegistryClient
from tasks.registry.errors import DeleteUnsupported, NotFound, RegistryError, RegistryUnavailable
from tasks.registry.frames import RegistryExtraction
from tasks.registry.manifest import manifest_by_digest, resolve_tag
from tasks.registry.vendors.base import vendor_of

log = logging.getLogger(__name__)

RESULT_COLUMNS = {
    "repository": "str",
    "digest": "str",
    "tags": "object",
    "closure": "str",
    "outcome": "str",
    "detail": "str",
}
# Closures are re-checked in batches of at least RECHECK_BATCH manifests, or 1/RECHECK_SHARE
# of the repository's tags if that is more: the window between a tag's last re-check and a
# DELETE is one batch, while the re-checks cost about RECHECK_SHARE HEADs per tag. Measured
# at 5,000 deletions (benchmarks/delete.py): a quarter gave a 15-18 s window and 0.60-0.66
# of the raw DELETE ceiling; docs/safety/model.md has the figures of the value chosen.
RECHECK_BATCH = 50
RECHECK_SHARE = 2
# Levels of closures sent at once per repository, each right after a tag listing that began
# after it asked: the window a new tag can fall in is one listing plus one wave of this many
# DELETEs (a wave of a whole batch was 40 s at 5,000 deletions; benchmarks/delete.py).
LEVEL_SLOTS = 4


def check_fraction(plan: pd.DataFrame, max_fraction: float) -> dict[str, float]:
    """Return {repository: fraction} for repositories whose plan deletes more than allowed."""
    digests = plan.groupby("repository")["digest"].nunique()
    kept = plan[plan["action"] != "delete"].groupby("repository")["digest"].nunique()
    over = {}
    for repo, total in digests.items():
        deleted = total - int(kept.get(repo, 0))
        fraction = deleted / total if total else 0.0
        if fraction > max_fraction:
            over[str(repo)] = fraction
    return over


@dataclass(frozen=True)
class DeleteRequest:
    """How the delete step runs: for real only with `apply` (then into the ledger at
    `ledger_path`); a repository whose plan deletes more than `max_delete_fraction` is
    refused unless `force`; `refusal` (a run-wide guard's message) refuses every deletion;
    `in_use` is the cluster read again just before; `flow_run_id` goes in the ledger."""

    apply: bool
    ledger_path: str = ""
    max_delete_fraction: float = 0.8  # safety.maxDeleteFraction's default
    force: bool = False
    flow_run_id: str = ""
    refusal: str = ""
    in_use: InUse | None = None
    untag: str = "api"  # cleanup.untag: how an untag is done (`tasks.delete.untag`)
    pushes: str = ""  # pulls.database where pushes are recorded (pulls.watchPushes), else ""
    # what a person confirmed on a terminal ("repository@digest", "repository:tag"): the
    # rest is refused; None: no confirmation asked (a schedule, --yes)
    confirmed: frozenset[str] | None = None


@dataclass(frozen=True)
class RepositoryScan:
    """What the scan saw of one repository, for its re-checks."""

    tags: frozenset[str] = frozenset()
    digests: frozenset[str] = frozenset()
    index_children: dict[str, set[str]] = field(default_factory=dict)


def repository_scans(scan: RegistryExtraction, repositories: set[str]) -> dict[str, RepositoryScan]:
    """The `RepositoryScan` of each of `repositories`."""
    tags: dict[str, set[str]] = {r: set() for r in repositories}
    digests: dict[str, set[str]] = {r: set() for r in repositories}
    children: dict[str, dict[str, set[str]]] = {r: {} for r in repositories}
    for repo, tag in column_rows(scan.tags, "repository", "tag"):
        if repo in tags:
            tags[repo].add(tag)
    for repo, digest in column_rows(scan.images, "repository", "digest"):
        if repo in digests:
            digests[repo].add(digest)
    for repo, parent, child in column_rows(scan.index_edges, "repository", "parent", "child"):
        if repo in children:
            children[repo].setdefault(parent, set()).add(child)
    return {
        r: RepositoryScan(frozenset(tags[r]), frozenset(digests[r]), children[r])
        for r in repositories
    }


@dataclass
class Settled:
    """The plan's deletions sorted out before any request: `results` holds the digests that
    will not be deleted now (dry run, incomplete or refused repository), `live` the closures
    to re-check and delete, by repository, and `scans` what the scan saw of those."""

    results: list[dict[str, object]]
    live: dict[str, list[Closure]]
    scans: dict[str, RepositoryScan]
    untags: dict[str, list[UntagTarget]] = field(default_factory=dict)

    @property
    def live_count(self) -> int:
        closures = sum(len(c) for closures in self.live.values() for c in closures)
        return closures + sum(len(u) for u in self.untags.values())

    @property
    def repositories(self) -> list[str]:
        """The repositories with something to delete or untag."""
        return sorted(set(self.live) | set(self.untags))


def settle_closures(
    plan: pd.DataFrame, scan: RegistryExtraction, request: DeleteRequest
) -> Settled:
    """Group the plan's deletions into closures, gather its untags, and apply the guards
    (no request sent).

    A repository whose listing was incomplete is never touched; one whose plan deletes more
    than `request.max_delete_fraction` is refused (unless `request.force`), and so is
    everything when `request.refusal` (a run-wide guard's message) is given. Other
    repositories proceed. The same guards hold for untags.
    """
    over = {} if request.force else check_fraction(plan, request.max_delete_fraction)
    apply = request.apply
    incomplete = set(scan.incomplete())
    holds = holds_from_scan(scan.images, scan.tags, scan.index_edges)
    settled = Settled([], {}, {})
    for closure in build_closures(deletion_targets(plan), holds):
        repo = closure.repository
        refused = _refusal(repo, over, request)[0] or _unconfirmed(
            request, [t.key for t in closure.members]
        )
        if repo in incomplete:
            settled.results += _results(
                closure, "skipped-incomplete", "the repository's listing was incomplete"
            )
        elif refused:
            settled.results += _results(closure, "refused", refused)
        elif not apply:
            settled.results += _results(closure, "would-delete", "")
        else:
            settled.live.setdefault(repo, []).append(closure)
    for target in untag_targets(plan):
        repo = target.repository
        refused = _refusal(repo, over, request)[1] or _unconfirmed(request, [target.key])
        if repo in incomplete:
            why = "the repository's listing was incomplete"
            settled.results.append(untag_result(target, "skipped-incomplete", why))
        elif refused:
            settled.results.append(untag_result(target, "refused", refused))
        elif not apply:
            settled.results.append(untag_result(target, "would-untag", ""))
        else:
            settled.untags.setdefault(repo, []).append(target)
    settled.scans = repository_scans(scan, set(settled.repositories))
    return settled


def _refusal(repo: str, over: dict[str, float], request: DeleteRequest) -> tuple[str, str]:
    """Why `repo`'s deletions and why its untags are refused ("" where they are not): the
    run-wide refusal, else `safety.maxDeleteFraction` (`over`)."""
    if request.refusal:
        return request.refusal, request.refusal
    if repo in over:
        return (
            f"the plan deletes {over[repo]:.0%} of {repo}, over safety.maxDeleteFraction="
            f"{request.max_delete_fraction:.0%}; check the plan, rerun with --force if it "
            "is right",
            f"the plan of {repo} is refused: it deletes {over[repo]:.0%} of it",
        )
    return "", ""


UNCONFIRMED = "not in the list confirmed on the terminal (the plan changed since): rerun"


def _unconfirmed(request: DeleteRequest, keys: list[str]) -> str:
    """Why these deletions are refused when someone confirmed a list without them."""
    if request.confirmed is None or all(k in request.confirmed for k in keys):
        return ""
    return UNCONFIRMED


def refusals(plan: pd.DataFrame, scan: RegistryExtraction, request: DeleteRequest) -> list[str]:
    """Why `settle_closures` refuses deletions and untags of `plan`, distinct, by repository:
    its guards, without building closures (a preview's cost is a scan's, not a delete
    step's)."""
    over = {} if request.force else check_fraction(plan, request.max_delete_fraction)
    incomplete = set(scan.incomplete())
    acting = plan.loc[plan["action"].isin(("delete", "untag")), ["repository", "action"]]
    found: list[str] = []
    for repo, actions in acting.groupby("repository", sort=True)["action"]:
        if str(repo) in incomplete:
            continue
        deletes, untags = _refusal(str(repo), over, request)
        present = set(actions)
        found += [deletes] if "delete" in present and deletes else []
        found += [untags] if "untag" in present and untags else []
    return list(dict.fromkeys(found))


async def execute_plan(
    client: RegistryClient,
    plan: pd.DataFrame,
    scan: RegistryExtraction,
    request: DeleteRequest,
    progress: DeleteProgress | None = None,
) -> pd.DataFrame:
    """Delete the plan's deletable digests (only when `request.apply`); return the results
    table.

    See `settle_closures` for the guards and `delete_repository` for each repository;
    repositories run concurrently. A dry run sends no request at all.
    """
    settled = settle_closures(plan, scan, request)
    results = settled.results
    if settled.repositories:
        if not request.ledger_path:
            raise ValueError("a ledger is required to delete")
        ledger = Ledger(request.ledger_path)
        counter = _Counter(settled.live_count, progress)
        for out in await asyncio.gather(
            *(
                delete_repository(
                    client,
                    settled.live.get(repo, []),
                    settled.scans[repo],
                    ledger,
                    request,
                    counter,
                    settled.untags.get(repo, []),
                )
                for repo in settled.repositories
            )
        ):
            results.extend(out)
    return results_frame(results)


def results_frame(results: list[dict[str, object]]) -> pd.DataFrame:
    """The results table (see the module docstring) of result rows."""
    return typed_frame(results, RESULT_COLUMNS)


class _Counter:
    """Counts finished digests for a progress callback."""

    def __init__(self, total: int, progress: DeleteProgress | None) -> None:
        self.done, self.total, self.progress = 0, total, progress

    def __call__(self, count: int = 1) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total)


def _batches(closures: list[Closure], size: int) -> list[list[Closure]]:
    batches: list[list[Closure]] = [[]]
    filled = 0
    for closure in closures:
        if filled and filled + len(closure) > size:
            batches.append([])
            filled = 0
        batches[-1].append(closure)
        filled += len(closure)
    return [b for b in batches if b]


async def delete_repository(
    client: RegistryClient,
    closures: list[Closure],
    scanned: RepositoryScan,
    ledger: Ledger,
    request: DeleteRequest,
    finished: Callable[[int], None] | None = None,
    untags: list[UntagTarget] | None = None,
) -> list[dict[str, object]]:
    """Re-check and delete one repository's `closures` in batches, then untag its `untags`;
    return one result per member and per untag (and per tag healed). Never raises a
    registry error: whatever fails is in the results."""
    feed = PushFeed(request.pushes) if request.pushes else None
    try:
        out, stop, step = await _delete_closures(
            client, closures, scanned, ledger, request, finished, feed
        )
        if feed is not None and step is not None:
            try:
                out += await heal(client, step.repository, feed, step.deleted, step.fresh)
            except PullsError as exc:
                log.warning("delete: reading the push records failed, nothing healed: %s", exc)
    finally:
        if feed is not None:
            await feed.close()
    if untags:
        out += await untag_repository(
            client,
            untags,
            ledger,
            request.untag,
            request.flow_run_id,
            request.in_use,
            stop,
            finished,
        )
    return out


async def _delete_closures(
    client: RegistryClient,
    closures: list[Closure],
    scanned: RepositoryScan,
    ledger: Ledger,
    request: DeleteRequest,
    finished: Callable[[int], None] | None,
    feed: PushFeed | None = None,
) -> tuple[list[dict[str, object]], str, _Step | None]:
    """The closures' results, why nothing more may be sent to the repository (empty while
    the registry still answers), and the step (what it saw and deleted)."""
    if not closures:
        return [], "", None
    repo = closures[0].repository
    children = IndexChildren(client, repo, scanned.index_children)
    size = max(RECHECK_BATCH, len(scanned.tags) // RECHECK_SHARE)
    fresh = FreshTags(client, repo, feed)
    step = _Step(client, ledger, request.flow_run_id, fresh, children, scanned, Deleted())
    out: list[dict[str, object]] = []
    stop = ""  # once set, why nothing more is sent in this repository
    for batch in _batches(closures, size):
        cancelled: dict[str, tuple[Outcome, str]] = {}
        if not stop:
            try:
                began = datetime.now(UTC)
                now = await current_tags(client, repo)
                cancelled = await cancelled_closures(
                    batch, now, set(scanned.tags), set(scanned.digests), children, request.in_use
                )
                fresh.rebase(now, began)
            except RegistryError as exc:
                stop = f"re-checking {repo} failed, nothing more sent there: {exc}"
                log.warning("delete: %s", stop)
        for done in await asyncio.gather(
            *(step.closure(c, stop, cancelled.get(c.root)) for c in batch)
        ):
            rows, fatal = done
            out += rows
            stop = stop or fatal
            if finished is not None:
                finished(len(rows))
    return out, stop, step


@dataclass
class _Step:
    """One repository's delete step: what each closure's levels need."""

    client: RegistryClient
    ledger: Ledger
    flow_run_id: str
    fresh: FreshTags
    children: IndexChildren
    scanned: RepositoryScan
    deleted: Deleted
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(LEVEL_SLOTS))

    @property
    def repository(self) -> str:
        return self.fresh.repository

    async def changed_since_recheck(self, closure: Closure) -> str:
        """Why the members of `closure` may not be deleted now: a tag named since the
        re-check names one, or an index holding one; else empty. Raises `RegistryError`."""
        members = {t.digest for t in closure.members}
        try:
            changed = await self.fresh.changed()
        except PullsError as exc:
            raise RegistryError(f"reading the push records failed: {exc}") from exc
        for tag, digest in sorted(changed.items()):
            if digest in members:
                return f"tag {tag} now names {digest} (named since the re-check)"
            reached = await self.children.reach(digest, set(self.scanned.digests))
            held = sorted(reached & members)
            if held:
                return f"tag {tag} now names index {digest}, which holds {held[0]}"
        return ""

    async def closure(
        self, closure: Closure, stop: str, cancelled: tuple[Outcome, str] | None
    ) -> tuple[list[dict[str, object]], str]:
        """Delete one closure level by level; return its results and, when the registry
        can take no more DELETEs, why."""
        if stop:
            return _results(closure, "not-attempted", stop), ""
        if cancelled is not None:
            outcome, why = cancelled
            return _results(closure, outcome, why), ""
        return await self._levels(closure)

    async def _levels(self, closure: Closure) -> tuple[list[dict[str, object]], str]:
        client, ledger, flow_run_id = self.client, self.ledger, self.flow_run_id
        out: list[dict[str, object]] = []
        for at, level in enumerate(closure.levels):
            rest = Closure(closure.repository, closure.levels[at:])
            async with self.slots:
                try:
                    why = await self.changed_since_recheck(rest)
                except RegistryError as exc:
                    why = f"re-checking before the DELETE failed: {exc}"
                    return out + _results(rest, "not-attempted", why), ""
                if why:
                    return out + _results(rest, "skipped-moved", why), ""
                done = await asyncio.gather(
                    *(_delete(client, closure, t, ledger, flow_run_id, self.deleted) for t in level)
                )
            out += [row for row, _ in done]
            fatal = next((why for _, why in done if why), "")
            survivors = [str(row["digest"]) for row in out if row["outcome"] not in LEFT_BEHIND_OK]
            if survivors:
                why = fatal or f"{survivors[0]}, which holds it, was not deleted"
                rest = Closure(closure.repository, closure.levels[at + 1 :])
                return out + (_results(rest, "not-attempted", why) if len(rest) else []), fatal
        return out, ""


# What lets a closure go on to its next level: the manifest is gone, or the vendor has no
# way to delete it and keeps it whatever happens (Docker Hub's untagged manifests), so
# nothing below it can be left dangling.
LEFT_BEHIND_OK = frozenset({"deleted", "gone", "skipped-unsupported"})


def _results(closure: Closure, outcome: Outcome, detail: str) -> list[dict[str, object]]:
    return [_result(closure, t, outcome, detail) for t in closure.members]


def _result(closure: Closure, target: Target, outcome: Outcome, detail: str) -> dict[str, object]:
    if detail and target.digest != closure.root and outcome.startswith("skipped"):
        detail = f"with {closure.root}: {detail}"
    return {
        "repository": target.repository,
        "digest": target.digest,
        "tags": list(target.tags),
        "closure": closure.root,
        "outcome": outcome,
        "detail": detail,
    }


async def _delete(
    client: RegistryClient,
    closure: Closure,
    target: Target,
    ledger: Ledger,
    flow_run_id: str,
    deleted: Deleted,
) -> tuple[dict[str, object], str]:
    """Delete one manifest with its ledger records; return its result and, when the registry
    can take no more DELETEs, why."""
    repo, digest = target.repository, target.digest
    raw, media_type, vendor = b"", target.media_type, ""

    async def record(state: str, detail: str = "") -> None:
        await ledger.record(
            LedgerRecord(
                state=state,
                registry=client.host,
                registry_url=client.url,
                repository=repo,
                digest=digest,
                tags=list(target.tags),
                media_type=media_type,
                manifest=base64.b64encode(raw).decode(),
                reason=target.reason,
                flow_run_id=flow_run_id,
                detail=detail,
                vendor=vendor_of(client).name if vendor else "",
                vendor_api=vendor_of(client).api if vendor else "",
                vendor_id=vendor,
            )
        )

    unsupported = vendor_of(client).cannot_delete(target.tags)
    if unsupported:  # nothing to send (Docker Hub: an untagged manifest)
        return _result(closure, target, "skipped-unsupported", unsupported), ""
    try:
        manifest = await manifest_by_digest(client, repo, digest)
    except NotFound:
        # Gone before this attempt: deleted by an earlier attempt of this run (its pending
        # record holds the bytes) or by someone else. Recorded so the ledger is complete.
        await record("gone", "manifest not found before sending DELETE")
        return _result(closure, target, "gone", "already deleted before this attempt"), ""
    except RegistryError as exc:
        fatal = str(exc) if isinstance(exc, RegistryUnavailable) else ""
        return _result(closure, target, "failed", f"reading the manifest: {exc}"), fatal
    raw, media_type = manifest.raw, manifest.media_type
    try:
        vendor = await vendor_of(client).ledger_id(repo, digest)
    except RegistryError as exc:
        fatal = str(exc) if isinstance(exc, RegistryUnavailable) else ""
        return _result(closure, target, "failed", f"finding its package version: {exc}"), fatal

    await record("pending")
    try:
        existed = await vendor_of(client).delete_image(repo, digest, target.tags)
    except DeleteUnsupported as exc:
        await record("failed", str(exc))
        return _result(closure, target, "refused", str(exc)), str(exc)
    except RegistryError as exc:
        row, fatal = await _after_failed_delete(client, closure, target, exc, record)
        if row["outcome"] == "deleted":
            deleted.add(digest, raw, media_type)
        return row, fatal
    await record("done" if existed else "gone")
    deleted.add(digest, raw, media_type)
    detail = "" if existed else "already gone"
    return _result(closure, target, "deleted" if existed else "gone", detail), ""


async def _after_failed_delete(
    client: RegistryClient,
    closure: Closure,
    target: Target,
    exc: RegistryError,
    record: Callable[[str, str], Awaitable[None]],
) -> tuple[dict[str, object], str]:
    """A DELETE that failed may still have been carried out (the answer was lost): ask, so
    the ledger and the results say what the registry really did."""
    fatal = str(exc) if isinstance(exc, RegistryUnavailable) else ""
    try:
        still_there = await resolve_tag(client, target.repository, target.digest) is not None
    except RegistryError:
        still_there = True
        detail = f"{exc} (the manifest may have been deleted: the registry did not answer)"
    else:
        detail = str(exc)
    if not still_there:
        await record("done", f"the DELETE's answer was lost ({exc}); the manifest is gone")
        return _result(closure, target, "deleted", ""), fatal
    await record("failed", detail)
    log.warning("delete %s@%s failed: %s", target.repository, target.digest, detail)
    return _result(closure, target, "failed", detail), fatal
