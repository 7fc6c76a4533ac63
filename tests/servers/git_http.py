"""A Git smart-HTTP server with basic auth: `git http-backend` behind a stdlib HTTP server.

Tests use it to prove that `git.url` mirroring talks real smart HTTP and sends the
configured credentials; it serves every repository under `root`.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from flows.demo.loopback import LoopbackServer, QuietHandler


def _http_backend() -> str:
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


@dataclass
class GitHTTPServer(LoopbackServer):
    """Serve `root` over smart HTTP; with `username`, require that basic-auth user/password."""

    root: Path
    username: str = ""
    password: str = ""
    requests: list[str] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        backend = _http_backend()

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                server.requests.append(f"{self.command} {self.path}")
                if server.username and not self._authorised():
                    self.reply(401, {"WWW-Authenticate": 'Basic realm="git"'}, b"")
                    return
                parts = urlsplit(self.path)
                env = {
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": parts.path,
                    "QUERY_STRING": parts.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "REMOTE_USER": server.username,
                    "REMOTE_ADDR": "127.0.0.1",
                    "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                }
                body = self.read_body() if self.command == "POST" else b""
                env["CONTENT_LENGTH"] = str(len(body))
                done = subprocess.run([backend], input=body, env=env, capture_output=True)
                head, _, payload = done.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.reply(status, headers, payload)

            def _authorised(self) -> bool:
                expected = base64.b64encode(
                    f"{server.username}:{server.password}".encode()
                ).decode()
                return self.headers.get("Authorization", "") == f"Basic {expected}"

        return Handler
