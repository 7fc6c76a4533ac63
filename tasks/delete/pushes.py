"""The push race, as narrow as the registry allows, and healed where the registry tells us.

Distribution has no conditional DELETE: a tag pushed onto a manifest after the delete step's
last look and before its DELETE goes with the manifest. Without notifications the step
narrows that window to one tag listing (`FreshTags`: each level of a closure waits for a
listing that began after it asked, and resolves only the tag names that listing has and
the last full re-check did not). With `pulls.watchPushes` (the registry's notifications
reach `regsweep pulls serve`, which records manifest pushes) the step also

- asks the push records right before each level's DELETE for pushes since its re-check: a
  push naming a member (or an index holding one) cancels the rest of the closure, tags
  moved onto it included, which no listing shows;
- after the repository's DELETEs, waits until the records cover the last DELETE (plus
  DELIVERY_SLACK for the registry's notification queue) and puts back, from the bytes it
  read before deleting, every manifest a push tagged meanwhile whose tag now names
  nothing: outcome ``healed``.

What remains: a push whose notification reaches the receiver more than DELIVERY_SLACK after
the last DELETE, or a receiver that does not cover the step (then the step says so).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tasks.pulls.events import PushEvent
from tasks.pulls.store import PullStore
from tasks.registry.client import RegistryClient
from tasks.registry.errors import RegistryError
from tasks.registry.manifest import put_manifest, resolve_tag
from tasks.registry.tag import list_tags

log = logging.getLogger(__name__)

DELIVERY_SLACK = timedelta(seconds=2)  # Distribution sends a notification within ms
COVER_WAIT_SECONDS = 30.0  # the receiver's heartbeat writes its covered time every 10 s
CLOCK_SLACK = timedelta(seconds=60)  # pushes asked for from this long before the re-check


class PushFeed:
    """The push records of `pulls.database`, for the delete step."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._store: PullStore | None = None

    async def _opened(self) -> PullStore:
        if self._store is None:
            self._store = await PullStore(self.database).open()
        return self._store

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def since(self, repository: str, moment: datetime) -> list[PushEvent]:
        """Pushes in `repository` from `moment` (less CLOCK_SLACK: the registry's clock)."""
        store = await self._opened()
        return await store.pushes_since(moment - CLOCK_SLACK, repository)

    async def covers(self, moment: datetime, timeout: float = COVER_WAIT_SECONDS) -> bool:
        """Wait (up to `timeout` s) until a receiver has written every event it accepted
        before `moment`; return whether one has."""
        store = await self._opened()
        deadline = time.monotonic() + timeout
        while True:
            if any(last >= moment for _, last in await store.uptime()):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)


@dataclass
class Deleted:
    """What one repository's delete step deleted, to heal from: digest -> (bytes, type)."""

    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    last: datetime | None = None

    def add(self, digest: str, raw: bytes, media_type: str) -> None:
        self.manifests[digest] = (raw, media_type)
        self.last = datetime.now(UTC)


async def heal(
    client: RegistryClient, repository: str, feed: PushFeed, deleted: Deleted, fresh: FreshTags
) -> list[dict[str, object]]:
    """Put back every manifest of `deleted` that a push tagged during the step (news to
    `fresh`, the step's re-checks) and whose tag now names nothing; return one result row
    per tag healed (or not)."""
    if deleted.last is None:
        return []
    if not await feed.covers(deleted.last + DELIVERY_SLACK):
        log.warning(
            "delete: %s: the push records do not cover the delete step (is `regsweep pulls "
            "serve` receiving?): a tag pushed onto a deleted manifest cannot be healed",
            repository,
        )
    rows: list[dict[str, object]] = []
    latest = {p.tag: p for p in await feed.since(repository, deleted.started)}  # per tag
    for push in latest.values():
        if not (fresh.news(push) and push.digest in deleted.manifests):
            continue
        raw, media_type = deleted.manifests[push.digest]
        try:
            if await resolve_tag(client, repository, push.tag) is not None:
                continue  # pushed after our DELETE (it re-created the manifest), or moved on
            await put_manifest(client, repository, push.tag, raw, media_type)
        except RegistryError as exc:
            outcome, detail = "failed", f"healing tag {push.tag}, pushed during the step: {exc}"
        else:
            outcome = "healed"
            detail = f"tag {push.tag} was pushed onto it during the delete step: put back"
        log.warning("delete: %s@%s: %s", repository, push.digest, detail)
        rows.append(
            {
                "repository": repository,
                "digest": push.digest,
                "tags": [push.tag],
                "closure": "",
                "outcome": outcome,
                "detail": detail,
            }
        )
    return rows


class FreshTags:
    """One repository's tags that changed since its last full re-check, read right before
    each level's DELETE; and what the re-checks saw, so that a push is news only when it
    is (`news`).

    A level waits for a listing that began after it asked; one listing serves every level
    waiting when it began, so a wave of DELETEs costs one listing, not one each. Only the
    names the re-check did not have are resolved (a HEAD each, once); with a `feed`, every
    tag pushed since the re-check is added, moves of existing tags included.
    """

    def __init__(self, client: RegistryClient, repository: str, feed: PushFeed | None) -> None:
        self.client, self.repository, self.feed = client, repository, feed
        self.known: dict[str, str] = {}
        self.since = datetime.now(UTC)
        self.seen: dict[tuple[str, str], datetime] = {}  # (tag, digest) -> first re-check
        self.listings = 0
        self._new: dict[str, str] = {}  # names the re-check had not, resolved once
        self._next: asyncio.Future[dict[str, str]] | None = None
        self._runner: asyncio.Task[None] | None = None

    def rebase(self, tags: dict[str, str], since: datetime) -> None:
        """A full re-check began at `since` and found `tags`."""
        self.known, self.since, self._new = dict(tags), since, {}
        for pair in tags.items():
            self.seen.setdefault(pair, since)

    def news(self, push: PushEvent) -> bool:
        """Whether `push` is news to the step: a tag and digest no re-check saw together,
        or pushed again after the re-check that saw them (a push the plan knew of is not)."""
        first = self.seen.get((push.tag, push.digest))
        return bool(push.tag) and (first is None or push.time >= first)

    async def changed(self) -> dict[str, str]:
        """{tag: digest} of every tag named since the last re-check, from a listing (and the
        push records) read after this call began. Raises `RegistryError` or `PullsError`."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._runner is None or self._runner.done():
                self._runner = asyncio.create_task(self._run())
        return await asyncio.shield(self._next)

    async def _run(self) -> None:
        while self._next is not None:
            waiting, self._next = self._next, None
            try:
                waiting.set_result(await self._read())
            except Exception as exc:  # every waiter of this listing gets it
                waiting.set_exception(exc)
                waiting.exception()  # retrieved, even when no waiter is left

    async def _read(self) -> dict[str, str]:
        self.listings += 1
        names = await list_tags(self.client, self.repository)
        new = [n for n in names if n not in self.known and n not in self._new]
        found = await asyncio.gather(*(resolve_tag(self.client, self.repository, n) for n in new))
        self._new.update((n, d) for n, d in zip(new, found, strict=True) if d)
        listed = set(names)
        changed = {n: d for n, d in self._new.items() if n in listed}
        if self.feed is not None:
            latest = {p.tag: p for p in await self.feed.since(self.repository, self.since)}
            changed.update((t, p.digest) for t, p in latest.items() if self.news(p))
        return changed
