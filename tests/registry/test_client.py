"""Unit tests of the transport with httpx.MockTransport: auth, retries, pagination, errors."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from tasks.core import mediatypes
from tasks.core.reference import normalise_url
from tasks.registry.client import Credentials, RegistryClient, next_page
from tasks.registry.errors import (
    AuthenticationFailed,
    DeleteUnsupported,
    InvalidResponse,
    NotFound,
    RegistryUnavailable,
)
from tasks.registry.extract import scan_registry
from tasks.registry.manifest import delete_manifest, get_manifest
from tasks.registry.repositories import list_repositories
from tasks.registry.retry import RetryPolicy
from tasks.registry.tag import list_tags

T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def client(handler: Handler, max_retries: int = 5, **kw: Any) -> RegistryClient:
    retry = RetryPolicy(max_retries=max_retries, backoff=0.001)
    return RegistryClient(
        "http://reg.test", transport=httpx.MockTransport(handler), retry=retry, **kw
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("reg.example.com", "https://reg.example.com"),
        ("localhost:5000/", "https://localhost:5000"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
    ids=["bare-host-is-https", "host-port-trailing-slash", "explicit-http"],
)
def test_normalise_url(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize(
    "link",
    [
        '</v2/_catalog?last=b&n=2>; rel="next"',
        '<http://reg.test/v2/_catalog?last=b&n=2>; rel="next"',
    ],
    ids=["relative", "absolute"],
)
def test_catalog_follows_link_pages(link: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "last=b" in str(request.url):
            return httpx.Response(200, json={"repositories": ["c"]})
        return httpx.Response(200, json={"repositories": ["a", "b"]}, headers={"Link": link})

    async def go() -> list[str]:
        async with client(handler) as c:
            return await list_repositories(c)

    assert run(go()) == ["a", "b", "c"]


def test_tags_unsorted_without_link_are_all_returned_sorted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"name": "r", "tags": ["z", "a", "m"]})

    async def go() -> list[str]:
        async with client(handler) as c:
            return await list_tags(c, "r")

    assert run(go()) == ["a", "m", "z"]


def test_429_honours_retry_after_then_succeeds() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"tags": ["t"]})

    async def go() -> list[str]:
        async with client(handler) as c:
            return await list_tags(c, "r")

    assert run(go()) == ["t"]
    assert len(calls) == 3


def test_5xx_after_all_retries_is_unavailable() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    async def go() -> None:
        async with client(handler, max_retries=2) as c:
            await list_tags(c, "r")

    with pytest.raises(RegistryUnavailable):
        run(go())
    assert len(calls) == 3


def test_connection_reset_is_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(200, json={"tags": []})

    async def go() -> list[str]:
        async with client(handler) as c:
            return await list_tags(c, "r")

    assert run(go()) == []
    assert len(calls) == 2


def test_basic_challenge_sends_credentials() -> None:
    expected = "Basic " + base64.b64encode(b"u:p").decode()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != expected:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(200, json={"tags": ["ok"]})

    async def go() -> list[str]:
        async with client(handler, credentials=Credentials("u", "p")) as c:
            return await list_tags(c, "r")

    assert run(go()) == ["ok"]


def test_basic_challenge_without_credentials_fails_clearly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    async def go() -> None:
        async with client(handler) as c:
            await list_tags(c, "r")

    with pytest.raises(AuthenticationFailed, match="none is configured"):
        run(go())


def test_credentials_never_print_the_password() -> None:
    assert "secret" not in repr(Credentials("u", "secret"))


def test_bearer_token_is_fetched_per_scope_and_cached() -> None:
    token_calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            token_calls.append(dict(request.url.params))
            scope = request.url.params["scope"]
            return httpx.Response(200, json={"token": f"T-{scope}", "expires_in": 300})
        scope = f"repository:{request.url.path.split('/')[2]}:pull"
        if request.headers.get("Authorization") != f"Bearer T-{scope}":
            challenge = f'Bearer realm="http://reg.test/token",service="reg",scope="{scope}"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, json={"tags": ["x"]})

    async def go() -> None:
        async with client(handler) as c:
            for _ in range(3):
                assert await list_tags(c, "r") == ["x"]

    run(go())
    assert token_calls == [{"scope": "repository:r:pull", "service": "reg"}]


def test_manifest_digest_mismatch_is_invalid() -> None:
    body = b'{"mediaType": "%s", "config": {}, "layers": []}' % mediatypes.OCI_MANIFEST.encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=body, headers={"Docker-Content-Digest": "sha256:" + "0" * 64}
        )

    async def go() -> None:
        async with client(handler) as c:
            await get_manifest(c, "r", "t")

    with pytest.raises(InvalidResponse, match="digest"):
        run(go())


def test_garbage_manifest_is_invalid_not_a_crash() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>proxy error</html>")

    async def go() -> None:
        async with client(handler) as c:
            await get_manifest(c, "r", "t")

    with pytest.raises(InvalidResponse):
        run(go())


@pytest.mark.parametrize(
    ("status", "body"),
    [(405, b""), (400, b'{"errors":[{"code":"UNSUPPORTED"}]}')],
    ids=["405", "400-unsupported"],
)
def test_delete_refused_names_the_setting(status: int, body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    async def go() -> None:
        async with client(handler) as c:
            await delete_manifest(c, "r", "sha256:" + "a" * 64)

    with pytest.raises(DeleteUnsupported, match=r"storage\.delete\.enabled"):
        run(go())


def test_delete_404_means_already_gone_and_unknown_tag_is_not_found() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})

    async def go() -> bool:
        async with client(handler) as c:
            with pytest.raises(NotFound):
                await get_manifest(c, "r", "nope")
            return await delete_manifest(c, "r", "sha256:" + "a" * 64)

    assert run(go()) is False


def test_next_page_absent() -> None:
    request = httpx.Request("GET", "http://reg.test/v2/_catalog")
    assert next_page(httpx.Response(200, request=request)) is None


def test_exclude_is_applied_before_anything_is_read() -> None:
    paths = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["team/app", "team/tmp", "other"]})
        return httpx.Response(200, json={"tags": []})

    async def go() -> list[str]:
        async with client(handler) as c:
            extraction = await scan_registry(c, ["team/*", "pinned"], exclude=["team/tmp"])
            return sorted(extraction.status["repository"])

    assert run(go()) == ["pinned", "team/app"]
    assert "/v2/team/tmp/tags/list" not in paths


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("http://reg.test", "/v2/_catalog?n=1000&last=a%2Fb", "/v2/_catalog?n=1000&last=a%2Fb"),
        ("http://reg.test/mirror/", "/v2/team/app/tags/list", "/mirror/v2/team/app/tags/list"),
        ("http://reg.test", "http://other.test/v2/up?_state=x", "/v2/up?_state=x"),
        ("http://reg.test", "/v2/r/manifests/tag with space", "/v2/r/manifests/tag%20with%20space"),
    ],
    ids=["query-kept", "base-path-prefix", "absolute-location", "quoted-by-httpx"],
)
def test_request_urls(base: str, path: str, expected: str) -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={})

    async def go() -> None:
        async with RegistryClient(base, transport=httpx.MockTransport(handler)) as c:
            await c.request("GET", path, scope="registry:catalog:*")

    run(go())
    assert seen[0].raw_path.decode() == expected
    assert seen[0].host == ("other.test" if path.startswith("http") else "reg.test")
