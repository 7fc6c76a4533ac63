"""Base of the stdlib HTTP fixtures (Kubernetes API, Git smart HTTP): one server thread on
127.0.0.1, an ephemeral port, start/stop and a context manager."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Subclasses implement `handler()`; `url` is valid between `start()` and `stop()`."""

    _server: ThreadingHTTPServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def tls_context(self) -> ssl.SSLContext | None:
        """A server-side TLS context to serve https, or None for plain http."""
        return None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        scheme = "https" if self.tls_context() is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self._server.daemon_threads = True
        context = self.tls_context()
        if context is not None:
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
