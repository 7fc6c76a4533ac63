"""A reverse HTTP proxy in front of the real registry, for fault tests.

It forwards every request unchanged (keep-alive on both sides), records what passed, and
lets a test answer chosen requests itself (a 429 storm, a 401 for an expired token) or act
before forwarding (move a tag the moment the delete step starts). When the registry behind
it is down, it drops the client's connection, as the dead registry itself would.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from flows.demo.loopback import LoopbackServer

Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Exchange:
    """One request that reached the proxy and the status its client got (0 = dropped)."""

    method: str
    path: str
    status: int
    injected: bool
    at: float = field(default_factory=time.monotonic)


@dataclass
class RegistryProxy(LoopbackServer):
    """Forward to `upstream` (``http://host:port``). `intercept(method, path, headers)` may
    return an answer to send instead of forwarding, or None to forward. `lose_answer(method,
    path)` True forwards the request and then drops the connection instead of answering: the
    registry did the work, the client never hears (recorded with status 0, injected).
    `add_headers(method, path)` returns headers to add to a forwarded answer."""

    upstream: str
    intercept: Callable[[str, str, dict[str, str]], Answer | None] | None = None
    lose_answer: Callable[[str, str], bool] | None = None
    add_headers: Callable[[str, str], dict[str, str]] | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, method: str, status: int | None = None, injected: bool | None = None) -> int:
        """How many `method` requests got `status` (any when None)."""
        with self._lock:
            return sum(
                1
                for e in self.exchanges
                if e.method == method
                and (status is None or e.status == status)
                and (injected is None or e.injected == injected)
            )

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        target = urlsplit(self.upstream)
        local = threading.local()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._forward()

            do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = (
                    proxy.intercept(self.command, self.path, headers) if proxy.intercept else None
                )
                if answer is not None:
                    status, answer_headers, payload = answer
                    self._reply(status, answer_headers, payload)
                    proxy._record(Exchange(self.command, self.path, status, True))
                    return
                try:
                    connection = getattr(local, "connection", None)
                    if connection is None:
                        connection = http.client.HTTPConnection(
                            target.hostname or "127.0.0.1", target.port, timeout=60
                        )
                        local.connection = connection
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                except OSError:
                    local.connection = None
                    proxy._record(Exchange(self.command, self.path, 0, False))
                    self.close_connection = True  # the registry is gone: so is this link
                    return
                if proxy.lose_answer is not None and proxy.lose_answer(self.command, self.path):
                    proxy._record(Exchange(self.command, self.path, 0, True))
                    self.close_connection = True
                    return
                dropped = ("connection", "transfer-encoding", "content-length")
                upstream_headers = {
                    k: v for k, v in response.getheaders() if k.lower() not in dropped
                }
                if proxy.add_headers is not None:
                    upstream_headers.update(proxy.add_headers(self.command, self.path))
                if self.command == "HEAD":  # no body, but the size of the one GET would send
                    payload_length = response.getheader("Content-Length", "0")
                    upstream_headers["Content-Length"] = payload_length
                self._reply(response.status, upstream_headers, payload)
                proxy._record(Exchange(self.command, self.path, response.status, False))

            def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

        return Handler
