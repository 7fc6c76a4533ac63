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
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

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

    async def events(self, request: Request) -> Response:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return PlainTextResponse("unauthorized\n", status_code=401)
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("body too large\n", status_code=413)
        try:
            pulls = parse_events(json.loads(body), datetime.now(UTC))
        except (ValueError, EventError) as exc:
            return PlainTextResponse(f"bad notification: {exc}\n", status_code=400)
        kept = [p for p in pulls if self.counts(p)]
        for pull in kept:
            self.queue.put_nowait(pull)
        return JSONResponse({"pulls": len(kept), "ignored": len(pulls) - len(kept)})


def make_app(store: PullStore, token: str, ignore_user_agents: list[str]) -> Starlette:
    """The service as an ASGI app (run by uvicorn; tests run it the same way)."""
    receiver = Receiver(store, token, ignore_user_agents)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await store.heartbeat(receiver.id, receiver.started, receiver.started)
        writer = asyncio.create_task(receiver.writer())
        heartbeat = asyncio.create_task(receiver.heartbeat())
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            receiver.stopping.set()
            await writer  # writes what arrived since the last batch
            await store.heartbeat(receiver.id, receiver.started, datetime.now(UTC))
            await store.close()

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    app = Starlette(
        routes=[
            Route("/events", receiver.events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    return app


def serve(
    store: PullStore, token: str, ignore_user_agents: list[str], host: str, port: int
) -> None:
    """Run the service until interrupted."""
    import uvicorn

    uvicorn.run(make_app(store, token, ignore_user_agents), host=host, port=port, log_level="info")
