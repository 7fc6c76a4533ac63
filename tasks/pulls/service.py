"""`regsweep pulls serve`: receives the registry's notifications and records pulls.

`POST /events` with `Authorization: Bearer <token>` (the registry's endpoint `headers` carry
it): 401 and nothing written without it; 400 and nothing written for a body that is not a
Distribution envelope or a Harbor payload; otherwise 200 at once, the pulls (and manifest
pushes, which the delete step reads: `tasks.delete.pushes`) queued and
written in batches (every BATCH_SECONDS or BATCH_EVENTS), so a burst never blocks the
registry. Pulls by regsweep itself and by `ignoreUserAgents` never count. A heartbeat records
the service's uptime, so readers know which windows the records cover: never a time whose
accepted pulls are not written yet (a failing store stops it), nor the time around a refused
notification (it may have carried pulls). `GET /healthz` 200. `GET /metrics`: Prometheus'
text format (notifications by status, records written, queue depth, the time covered).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tasks.pulls.errors import EventError
from tasks.pulls.events import PullEvent, PushEvent, parse_events, parse_pushes
from tasks.pulls.records import GAP_TOLERANCE
from tasks.pulls.store import PullStore

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.2
BATCH_EVENTS = 1000
HEARTBEAT_SECONDS = 10.0
MAX_BODY = 4 << 20  # Distribution sends envelopes of a few events; Harbor one artifact
MAX_QUEUED = 200_000  # pulls waiting for a failing store; past this, 503 (the sender retries)
OWN_USER_AGENT = "regsweep*"  # tasks.core.identity.USER_AGENT: our reads are not pulls
# A refused notification may have carried pulls the sender will not send again: the uptime
# stops covering this long before it, longer than the readers' GAP_TOLERANCE, so it is
# always a gap, however soon a notification is accepted again.
REFUSAL_UNCOVERS = 2 * GAP_TOLERANCE
LOG_EVERY_SECONDS = 10.0  # one line per this for refusals (with a count) and for failed writes


class Receiver:
    """The queue between the HTTP handler and the database, and the uptime it may claim.

    The uptime written is the time up to which every accepted pull is in the database
    (`covered`), not the clock: while the store fails, the batch is retried and the
    uptime stops moving. A refused notification (401, 400, 413, 503) ends the uptime's
    interval REFUSAL_UNCOVERS before it; the next accepted one starts a new interval."""

    def __init__(
        self,
        store: PullStore,
        token: str,
        ignore_user_agents: list[str],
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.store = store
        self.token = token
        self.ignored = [OWN_USER_AGENT, *ignore_user_agents]
        self.heartbeat_seconds = heartbeat_seconds
        self.queue: asyncio.Queue[PullEvent | PushEvent] = asyncio.Queue()
        self.failed: list[PullEvent | PushEvent] = []  # the batch the store refused, retried
        self.id = uuid.uuid4().hex
        self.started = datetime.now(UTC)
        self.covered = self.started  # every pull accepted before this is written
        # the interval being covered (uptime row, start), None while refusing; and the
        # intervals a refusal ended, to be written with their end
        self.interval: tuple[str, datetime] | None = (self.id, self.started)
        self.ended: list[tuple[str, datetime, datetime]] = []
        self.uncovered_from = self.started  # where the last refusal ended the uptime
        self.intervals = 0
        self.written = 0
        self.answered: collections.Counter[int] = collections.Counter()  # notifications by status
        self._failure_logged = -LOG_EVERY_SECONDS
        self._refusals_unlogged = 0
        self._refusal_logged = -LOG_EVERY_SECONDS
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()  # an ended interval to write now

    def counts(self, event: PullEvent) -> bool:
        return not any(fnmatchcase(event.user_agent, glob) for glob in self.ignored)

    async def writer(self) -> None:
        """Write queued pulls in batches until `stopping` is set, then what is left. Never
        cancelled: a batch taken off the queue is written, or kept and retried."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), BATCH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued; on success, `covered` moves to when this began (every
        pull accepted before then was queued, and is written now)."""
        began = datetime.now(UTC)
        while self.failed or not self.queue.empty():
            if not self.failed:
                count = min(BATCH_EVENTS, self.queue.qsize())
                self.failed = [self.queue.get_nowait() for _ in range(count)]
            try:
                self.written += await self.store.record(self.failed)
            except Exception:  # keep receiving; the uptime stops at `covered`
                if time.monotonic() - self._failure_logged >= LOG_EVERY_SECONDS:
                    log.exception(  # retried every batch, logged once per 10 s
                        "pulls: %d pulls could not be written (retried; the records cover "
                        "up to %s until they are)",
                        len(self.failed) + self.queue.qsize(),
                        self.covered.isoformat(timespec="seconds"),
                    )
                    self._failure_logged = time.monotonic()
                return
            self.failed = []
        self.covered = max(self.covered, began)

    async def heartbeat(self) -> None:
        while True:
            try:
                await self.write_uptime()
            except Exception:  # the uptime stays where it was written: a gap, not a claim
                log.exception("pulls: the uptime could not be written")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.heartbeat_seconds)
            self.wake.clear()

    async def write_uptime(self) -> None:
        """The ended intervals, then the current one up to `covered`."""
        while self.ended:
            await self.store.heartbeat(*self.ended[0])
            self.ended.pop(0)
        if self.interval is not None:
            receiver, started = self.interval
            await self.store.heartbeat(receiver, started, max(started, self.covered))

    def take(
        self, authorization: bytes, body: bytes | None, address: str = ""
    ) -> tuple[int, bytes]:
        """Answer one `POST /events` (status, body): queue its pulls, write nothing now."""
        if not hmac.compare_digest(authorization, f"Bearer {self.token}".encode()):
            return self._refuse(401, b"unauthorized\n", "a wrong or missing bearer token", address)
        if body is None:
            return self._refuse(413, b"body too large\n", "a body over MAX_BODY", address)
        try:
            data, received = json.loads(body), datetime.now(UTC)
            pulls = parse_events(data, received)
            pushes = parse_pushes(data, received)
        except (ValueError, EventError) as exc:
            return self._refuse(400, f"bad notification: {exc}\n".encode(), str(exc), address)
        if self.queue.qsize() + len(self.failed) >= MAX_QUEUED:
            return self._refuse(503, b"not recording: the store fails\n", "store failing", address)
        kept = [p for p in pulls if self.counts(p)]
        events: list[PullEvent | PushEvent] = [*kept, *pushes]
        for event in events:
            self.queue.put_nowait(event)
        if self.interval is None:
            self.intervals += 1
            self.interval = (f"{self.id}-{self.intervals}", datetime.now(UTC))
        answer = {"pulls": len(kept), "ignored": len(pulls) - len(kept)}
        self.answered[200] += 1
        return 200, json.dumps(answer).encode()

    def _refuse(self, status: int, body: bytes, why: str, address: str) -> tuple[int, bytes]:
        """Answer `status`, and stop claiming the time around it as covered."""
        self.answered[status] += 1
        now = datetime.now(UTC)
        if self.interval is not None:
            receiver, started = self.interval
            self.uncovered_from = max(started, min(self.covered, now - REFUSAL_UNCOVERS))
            self.ended.append((receiver, started, self.uncovered_from))
            self.interval = None
            self.wake.set()
        self._refusals_unlogged += 1
        if time.monotonic() - self._refusal_logged >= LOG_EVERY_SECONDS:
            log.warning(
                "pulls: refused %d notification(s), the last %d (%s) from %s: the pull "
                "records do not cover from %s until one is accepted",
                self._refusals_unlogged,
                status,
                why[:200],
                address or "an unknown address",
                self.uncovered_from.isoformat(timespec="seconds"),
            )
            self._refusal_logged = time.monotonic()
            self._refusals_unlogged = 0
        return status, body

    async def start(self) -> list[asyncio.Task[None]]:
        await self.store.open()
        await self.store.heartbeat(self.id, self.started, self.started)
        return [asyncio.create_task(self.writer()), asyncio.create_task(self.heartbeat())]

    async def stop(self, tasks: list[asyncio.Task[None]]) -> None:
        writer, heartbeat = tasks
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        self.stopping.set()
        await writer  # writes what arrived since the last batch
        try:
            await self.write_uptime()
        finally:
            await self.store.close()


class ReceiverMetrics(Collector):
    """What Prometheus scrapes at `/metrics`, read from the receiver at each scrape (nothing
    is counted twice on the notification's path)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def collect(self) -> Iterator[Metric]:
        receiver = self.receiver
        answered = CounterMetricFamily(
            "regsweep_pulls_notifications",
            "Notifications answered, by HTTP status (200 accepted, else refused).",
            labels=["status"],
        )
        for status, count in sorted(receiver.answered.items()):
            answered.add_metric([str(status)], count)
        yield answered
        yield CounterMetricFamily(
            "regsweep_pulls_events_written",
            "Pull and push records written to the store.",
            value=receiver.written,
        )
        yield GaugeMetricFamily(
            "regsweep_pulls_queue_depth",
            "Records accepted and not yet written (the store failing makes it grow).",
            value=receiver.queue.qsize() + len(receiver.failed),
        )
        yield GaugeMetricFamily(
            "regsweep_pulls_covered_timestamp_seconds",
            "Every pull accepted before this time (Unix) is in the store.",
            value=receiver.covered.timestamp(),
        )
        yield GaugeMetricFamily(
            "regsweep_pulls_covering",
            "1 while the records cover now (no refusal since the last accepted notification).",
            value=receiver.interval is not None,
        )


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class PullsApp:
    """The service as a bare ASGI app, run by uvicorn: two routes need no framework, and
    Starlette's request and response objects were a third of the cost of a notification
    (benchmarks/pulls.py)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.metrics = CollectorRegistry()
        self.metrics.register(ReceiverMetrics(receiver))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            status, body = await self._route(scope, receive)
            content_type = (
                b"application/json" if status == 200 and body[:1] == b"{" else b"text/plain"
            )
            if scope["path"] == "/metrics" and status == 200:
                content_type = CONTENT_TYPE_LATEST.encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", content_type),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        path, method = scope["path"], scope["method"]
        if path == "/events":
            if method != "POST":
                return 405, b"method not allowed\n"
            authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            client = scope.get("client")
            address = f"{client[0]}:{client[1]}" if client else ""
            return self.receiver.take(authorization, await _body(receive), address)
        if path == "/healthz" and method in ("GET", "HEAD"):
            return 200, b"ok\n"
        if path == "/metrics" and method in ("GET", "HEAD"):
            return 200, generate_latest(self.metrics)
        return 404, b"not found\n"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        tasks: list[asyncio.Task[None]] = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    tasks = await self.receiver.start()
                except Exception as exc:  # uvicorn reports it and exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if tasks:
                    await self.receiver.stop(tasks)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _body(receive: Receive) -> bytes | None:
    """The request body, or None once it passes MAX_BODY."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def make_app(
    store: PullStore,
    token: str,
    ignore_user_agents: list[str],
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> PullsApp:
    """The service as an ASGI app (run by uvicorn; tests run it the same way)."""
    return PullsApp(Receiver(store, token, ignore_user_agents, heartbeat_seconds))


def serve(
    store: PullStore, token: str, ignore_user_agents: list[str], host: str, port: int
) -> None:
    """Run the service until interrupted."""
    import uvicorn

    # No access log: a line per notification was an eighth of the service's time, and the
    # registry's own log has every pull already.
    uvicorn.run(
        make_app(store, token, ignore_user_agents),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
    )
