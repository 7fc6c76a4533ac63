"""The lean HTTP/1.1 transport on a real socket server: bodies, keep-alive, stale links."""

from __future__ import annotations

import asyncio
import json
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


class Recorder(BaseHTTPRequestHandler):
    """Answers every request 200 and records its request line, headers and body."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        Recorder.seen.append((self.requestline, headers, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = answer


# (method, path, content): the direct route's cases and some that httpx must encode
REQUESTS = [
    ("HEAD", "/v2/team/app/manifests/v1.2", None),
    ("GET", "/v2/team/app/tags/list?n=1000&last=v1", None),
    ("PUT", "/v2/team/app/manifests/latest", b'{"schemaVersion": 2}'),
    ("PUT", "/v2/team/app/manifests/empty", b""),
    ("POST", "/v2/team/app/blobs/uploads/", None),
    ("PATCH", "/v2/team/app/blobs/uploads/u?_state=x%3D", b"chunk"),
    ("DELETE", "/v2/team/app/manifests/sha256:" + "a" * 64, None),
    ("GET", "/v2/team/app/manifests/a b{c}", None),  # not a safe target: httpx encodes it
    ("GET", "/v2/team/app/tags/list?last=x#y", None),  # a fragment: httpx decides
    ("GET", "/v2/team/app/manifests/caf\u00e9", None),  # not ASCII: httpx encodes it
]


@pytest.mark.parametrize("prefix", ["", "/mirror"])
def test_direct_requests_carry_what_httpx_would_send(prefix: str) -> None:
    """The request heads the client writes itself (the direct route) say what httpx's own
    request objects say: request line, Host, the client's headers with the request's
    over them, Content-Length where httpx sets one, and the body."""
    from tasks.registry.client import RegistryClient

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    headers = {"Accept": "application/vnd.oci.image.index.v1+json", "Authorization": "Bearer t"}

    async def go() -> None:
        async with RegistryClient(url) as client:
            for method, path, content in REQUESTS:
                await client.request(method, path, scope="r", headers=headers, content=content)
                request = client._build(method, path, headers, content)
                await client._http.send(request)  # httpx's own route

    Recorder.seen.clear()
    try:
        asyncio.run(go())
    finally:
        server.shutdown()
    assert len(Recorder.seen) == 2 * len(REQUESTS)
    for (direct, ours), (line, theirs) in zip(
        zip(Recorder.seen[::2], REQUESTS, strict=True),
        [(s[0], s) for s in Recorder.seen[1::2]],
        strict=True,
    ):
        method, path, _ = ours
        assert direct[0] == line, path
        assert direct[1] == theirs[1], path
        assert direct[2] == theirs[2], path
        if " " not in path and "#" not in path and path.isascii():
            assert line == f"{method} {prefix}{path} HTTP/1.1"


def test_a_header_value_with_a_line_break_is_never_sent() -> None:
    """A value that would end its header line (a hostile token service's token, say) stops
    the request: InvalidResponse, and the server receives nothing."""
    from tasks.registry.client import RegistryClient
    from tasks.registry.errors import InvalidResponse

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def go(value: str) -> None:
        async with RegistryClient(f"http://127.0.0.1:{server.server_address[1]}") as client:
            await client.request("GET", "/v2/", scope="", headers={"Authorization": value})

    Recorder.seen.clear()
    try:
        for value in ("Bearer a\r\nX-Injected: 1", "Bearer a\nb", "Bearer a\x00"):
            with pytest.raises(InvalidResponse, match="Authorization"):
                asyncio.run(go(value))
    finally:
        server.shutdown()
    assert Recorder.seen == []


class TokenRegistry(BaseHTTPRequestHandler):
    """A registry whose own token service (same origin) hands out a token with a line break
    in it; records every request's headers."""

    protocol_version = "HTTP/1.1"
    token = "t\r\nX-Injected: yes"
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        TokenRegistry.seen.append({k.lower(): v for k, v in self.headers.items()})
        if self.path.startswith("/token"):
            body = json.dumps({"token": TokenRegistry.token}).encode()
            self.send_response(200)
        else:
            host, port = self.server.server_address[:2]
            realm = f"http://{host}:{port}/token"
            body = b"{}"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="reg"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("token", ["t\r\nX-Injected: yes", "t x", "caf\u00e9"])
def test_a_token_a_header_cannot_carry_is_refused(token: str) -> None:
    from tasks.registry.client import RegistryClient
    from tasks.registry.errors import InvalidResponse

    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    TokenRegistry.token, TokenRegistry.seen = token, []

    async def go() -> None:
        async with RegistryClient(f"http://127.0.0.1:{server.server_address[1]}") as client:
            await client.request("GET", "/v2/_catalog", scope="registry:catalog:*")

    try:
        with pytest.raises(InvalidResponse, match="token with characters a header cannot"):
            asyncio.run(go())
    finally:
        server.shutdown()
    assert len(TokenRegistry.seen) == 2  # the challenge and the token: nothing after
    assert not any("x-injected" in headers for headers in TokenRegistry.seen)
