"""Base of the loopback fakes of vendor REST APIs (GitHub Packages, GitLab): every request
goes to `answer(method, target, headers, body)`, which returns (status, headers, body)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from flows.demo.loopback import LoopbackServer
from tests.servers.http_proxy import Answer


class JsonApiFake(LoopbackServer):
    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer, payload = fake.answer(self.command, self.path, headers, body)
                self.send_response(status)
                for name, value in answer.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_DELETE = do_POST = do_PUT = do_GET

        return Handler


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    answer = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return status, answer, json.dumps(body).encode()
