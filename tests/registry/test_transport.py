"""The lean HTTP/1.1 transport on a real socket server: bodies, keep-alive, stale links."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from tasks.registry.transport import LeanTransport


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One handler instance serves one connection: count them as they start. (An id() of
    # the socket is no count: a second socket may reuse the memory of a closed first one.)
    connections: ClassVar[list[tuple[str, int]]] = []

    def setup(self) -> None:
        super().setup()
        Handler.connections.append(self.client_address)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1234")  # the size GET would send; no body
        self.send_header("Docker-Content-Digest", "sha256:abc")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith(("/v2/r/blobs/", "/v2/r/manifests/moved")):
            self.send_response(307)  # blobs live elsewhere (S3, a CDN); anything may move
            self.send_header("Location", "/storage" + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/drop-after":
            body = b"then I hang up"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True  # an idle timeout, without saying Connection: close
        else:
            body = self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_DELETE(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_bodies_keep_alive_and_stale_connections() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    Handler.connections.clear()

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, transport=LeanTransport()) as client:
            answers = [await client.get("/a"), await client.get("/b")]  # one kept-alive link
            answers.append(await client.head("/manifest"))
            answers.append(await client.get("/chunked"))
            answers.append(await client.get("/drop-after"))
            answers.append(await client.get("/after-the-drop"))  # stale link: reconnects
            answers.append(await client.delete("/v2/r/manifests/sha256:abc"))
            return answers

    try:
        a, b, head, chunked, dropped, after, deleted = asyncio.run(go())
    finally:
        server.shutdown()
    assert (a.text, b.text) == ("/a", "/b")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Docker-Content-Digest"] == "sha256:abc"
    assert chunked.content == b"hello chunked world"
    assert dropped.text == "then I hang up"
    assert after.text == "/after-the-drop"
    assert deleted.status_code == 202
    assert len(Handler.connections) == 2  # keep-alive until the server hung up, then one more


def test_refused_connection_is_a_transport_error() -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=LeanTransport(timeout=2)) as client:
            await client.get("http://127.0.0.1:9/v2/")

    try:
        asyncio.run(go())
    except httpx.TransportError:
        return
    raise AssertionError("no error for a closed port")


def test_proxy_environment_keeps_httpx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.registry.client import RegistryClient

    def transport_of(url: str) -> object:
        client = RegistryClient(url)
        kind = type(client._http._transport)
        asyncio.run(client.aclose())
        return kind

    assert transport_of("https://reg.example") is LeanTransport
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert transport_of("https://reg.example") is not LeanTransport  # httpx honours the proxy
    monkeypatch.setenv("NO_PROXY", "reg.example")
    assert transport_of("https://reg.example") is LeanTransport


def test_registry_client_follows_a_redirect_on_the_lean_transport() -> None:
    """Requests skip httpx's client layers on the lean transport; a redirect answer still
    goes back through httpx, which follows it."""
    from tasks.registry.client import RegistryClient

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def go() -> list[httpx.Response]:
        async with RegistryClient(f"http://127.0.0.1:{server.server_address[1]}") as client:
            assert isinstance(client._http._transport, LeanTransport)
            answers = [
                await client.request("GET", "/v2/r/manifests/moved", scope="r"),
                await client.request("GET", "/v2/r/blobs/sha256:abc", scope="r"),
            ]
            assert client._blobs_redirect  # later blobs go through httpx straight away
            assert (await client.request("GET", "/v2/r/blobs/sha256:def", scope="r")).text == (
                "/storage/v2/r/blobs/sha256:def"
            )
            return answers

    try:
        manifest, blob = asyncio.run(go())
    finally:
        server.shutdown()
    assert (blob.status_code, blob.text) == (200, "/storage/v2/r/blobs/sha256:abc")
    assert (manifest.status_code, manifest.text) == (200, "/storage/v2/r/manifests/moved")
