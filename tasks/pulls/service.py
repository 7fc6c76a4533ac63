"""`regsweep pulls serve`: receives the registry's notifications and records pulls.

`POST /events` with `Authorization: Bearer <token>` (the registry's endpoint `headers` carry
it): 401 and nothing written without it; 400 and nothing written for a body that is not a
Distribution envelope or a Harbor payload; otherwise 200 at once, the pulls queued and
written in batches (every BATCH_SECONDS or BATCH_EVENTS), so a burst never blocks the
registry. Pulls by regsweep itself and by `ignoreUserAgents` never count. A heartbeat records
the service's uptime, so readers know which windows the records cover. `GET /healthz` 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from tasks.pulls.errors import EventError
from tasks.pulls.events import PullEvent, parse_events
from tasks.pulls.store import PullStore

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.2
BATCH_EVENTS = 1000
HEARTBEAT_SECONDS = 10.0
MAX_BODY = 4 << 20  # Distribution sends envelopes of a few events; Harbor one artifact
OWN_USER_AGENT = "regsweep*"  # tasks.core.identity.USER_AGENT: our reads are not pulls


class Receiver:
    """The queue between the HTTP handler and the database, and the heartbeat."""

    def __init__(self, store: PullStore, token: str, ignore_user_agents: list[str]) -> None:
        self.store = store
        self.token = token
        self.ignored = [OWN_USER_AGENT, *ignore_user_agents]
        self.queue: asyncio.Queue[PullEvent] = asyncio.Queue()
        self.id = uuid.uuid4().hex
        self.started = datetime.now(UTC)
        self.written = 0
        self.stopping = asyncio.Event()

    def counts(self, event: PullEvent) -> bool:
        return not any(fnmatchcase(event.user_agent, glob) for glob in self.ignored)

    async def writer(self) -> None:
        """Write queued pulls in batches until `stopping` is set, then what is left. Never
        cancelled: a batch taken off the queue is always written (or its failure logged)."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), BATCH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        while not self.queue.empty():
            batch = [self.queue.get_nowait() for _ in range(min(BATCH_EVENTS, self.queue.qsize()))]
            try:
                self.written += await self.store.record(batch)
            except Exception:  # keep receiving; the uptime stops covering the gap
                log.exception("pulls: %d pulls could not be written", len(batch))
                raise

    async def heartbeat(self) -> None:
        while True:
            await self.store.heartbeat(self.id, self.started, datetime.now(UTC))
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def take(self, authorization: bytes, body: bytes | None) -> tuple[int, bytes]:
        """Answer one `POST /events` (status, body): queue its pulls, write nothing now."""
        if not hmac.compare_digest(authorization, f"Bearer {self.token}".encode()):
            return 401, b"unauthorized\n"
        if body is None:
            return 413, b"body too large\n"
        try:
            pulls = parse_events(json.loads(body), datetime.now(UTC))
        except (ValueError, EventError) as exc:
            return 400, f"bad notification: {exc}\n".encode()
        kept = [p for p in pulls if self.counts(p)]
        for pull in kept:
            self.queue.put_nowait(pull)
        answer = {"pulls": len(kept), "ignored": len(pulls) - len(kept)}
        return 200, json.dumps(answer).encode()

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
        await self.store.heartbeat(self.id, self.started, datetime.now(UTC))
        await self.store.close()


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class PullsApp:
    """The service as a bare ASGI app, run by uvicorn: two routes need no framework, and
    Starlette's request and response objects were a third of the cost of a notification
    (benchmarks/pulls.py)."""

    def __init__(self, store: PullStore, token: str, ignore_user_agents: list[str]) -> None:
        self.receiver = Receiver(store, token, ignore_user_agents)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            status, body = await self._route(scope, receive)
            content_type = (
                b"application/json" if status == 200 and body[:1] == b"{" else b"text/plain"
            )
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
            return self.receiver.take(authorization, await _body(receive))
        if path == "/healthz" and method in ("GET", "HEAD"):
            return 200, b"ok\n"
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


def make_app(store: PullStore, token: str, ignore_user_agents: list[str]) -> PullsApp:
    """The service as an ASGI app (run by uvicorn; tests run it the same way)."""
    return PullsApp(store, token, ignore_user_agents)


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
