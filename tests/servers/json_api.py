"""Bases of the loopback fakes of vendor REST APIs (GitHub Packages, GitLab, Docker Hub, ECR):
`JsonApiFake` sends every request to `answer(method, target, headers, body)`, which returns
(status, headers, body); `VendorApiFake` adds what every vendor fake has: the real registry
behind it, the log of the requests answered, every `limit_every`-th request rate limited,
and requests of its own to the registry (as the vendor's backend would make them)."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from flows.demo.loopback import LoopbackServer, QuietHandler
from flows.demo.registry_server import LocalRegistry
from tests.contracts.validate import Exchange, record
from tests.servers.http_proxy import Answer
from tests.servers.storage_view import repositories_root


class JsonApiFake(LoopbackServer):
    # the vendor whose published description (tests/contracts/descriptions) every answer
    # is held to after the test, or None
    description: str | None = None

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = self.read_body()
                status, answer, payload = fake.answer(self.command, self.path, headers, body)
                if fake.description:
                    exchange = Exchange(
                        self.command, self.path, headers, body, status, answer, payload
                    )
                    record(fake.description, exchange)
                self.reply(status, answer, payload)

            do_DELETE = do_POST = do_PUT = do_GET

        return Handler


@dataclass
class VendorApiFake(JsonApiFake):
    registry: LocalRegistry
    limit_every: int = field(default=0, kw_only=True)  # every n-th request: rate limited
    requests: list[tuple[str, str]] = field(default_factory=list, kw_only=True)
    _count: int = field(default=0, kw_only=True, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, kw_only=True, repr=False)

    def note_request(self, method: str, path: str) -> bool:
        """Log a request; True when it is the one in `limit_every` to rate limit."""
        with self._lock:
            self._count += 1
            self.requests.append((method, path))
            return bool(self.limit_every) and self._count % self.limit_every == 0

    def root(self) -> Path:
        """The registry's repositories in its storage layout (what the vendor lists)."""
        return repositories_root(self.registry)

    def registry_request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        """A request of the vendor's backend to its registry: (status, headers, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    answer = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return status, answer, json.dumps(body).encode()
