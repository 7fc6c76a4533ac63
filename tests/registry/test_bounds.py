"""Bounded work on hostile or huge answers (issue #14, item 4): endless pages, endless
referrer chains, oversized bodies. Each cap marks the repository incomplete with a message
(the catalog's stops the scan, exit 3); none lets a registry keep us busy forever."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.core import mediatypes
from tasks.core.aio import for_each
from tasks.registry import client as client_module
from tasks.registry.client import RegistryClient
from tasks.registry.errors import InvalidResponse
from tasks.registry.extract import scan_registry
from tasks.registry.manifest import MAX_MANIFEST_BYTES
from tasks.registry.readers import MAX_REFERRER_DEPTH
from tasks.registry.repositories import list_repositories
from tasks.registry.retry import RetryPolicy
from tests.servers.http_proxy import Answer, RegistryProxy

OLD = datetime.now(UTC) - timedelta(days=30)


def test_endless_link_pages_stop_at_the_page_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_PAGES", 50)
    served = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal served
        served += 1
        link = f'</v2/_catalog?n=1&last=r{served}>; rel="next"'
        return httpx.Response(200, json={"repositories": [f"r{served}"]}, headers={"Link": link})

    async def go() -> list[str]:
        async with RegistryClient("https://reg.test", transport=httpx.MockTransport(handler)) as c:
            return await list_repositories(c)

    with pytest.raises(InvalidResponse, match="more than 50 pages"):
        asyncio.run(go())
    assert served == 50


@pytest.fixture
def evil_and_other(registry: LocalRegistry) -> LocalRegistry:
    async def go() -> None:
        async with RegistryClient(registry.url) as client:
            await push_image(client, "evil", ["t1"], created=OLD, seed="e", oci=True)
            await push_image(client, "other", ["o1"], created=OLD, seed="o")

    asyncio.run(go())
    return registry


def _scan(url: str) -> dict[str, tuple[bool, str]]:
    async def go() -> dict[str, tuple[bool, str]]:
        async with RegistryClient(url) as client:
            status = (await scan_registry(client, ["evil", "other"])).status
        return {
            r: (bool(c), str(e))
            for r, c, e in zip(
                status["repository"], status["complete"], status["error"], strict=True
            )
        }

    return asyncio.run(go())


def test_an_endless_referrers_chain_stops_at_the_depth_cap(evil_and_other: LocalRegistry) -> None:
    """Each manifest's referrers answer names a new manifest (which really exists, as far as
    we can tell), for ever: the scan stops after MAX_REFERRER_DEPTH rounds."""
    bodies: dict[str, bytes] = {}
    next_of: dict[str, str] = {}
    asked = 0

    def link(n: int) -> str:
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "config": {
                    "mediaType": mediatypes.OCI_CONFIG,
                    "digest": "sha256:" + "0" * 64,
                    "size": 2,
                },
                "layers": [],
                "annotations": {"n": str(n)},
            }
        ).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        bodies[digest] = raw
        return digest

    def intercept(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        nonlocal asked
        if path.startswith("/v2/evil/referrers/"):
            asked += 1
            subject = path.rsplit("/", 1)[1]
            following = next_of.setdefault(subject, link(len(next_of)))
            raw = json.dumps({"schemaVersion": 2, "manifests": [{"digest": following}]}).encode()
            return 200, {"Content-Type": mediatypes.OCI_INDEX}, raw
        if path.startswith("/v2/evil/manifests/"):
            digest = path.rsplit("/", 1)[1]
            if digest in bodies:
                answer = {"Content-Type": mediatypes.OCI_MANIFEST, "Docker-Content-Digest": digest}
                return 200, answer, bodies[digest]
        return None

    with RegistryProxy(evil_and_other.url) as proxy:
        proxy.intercept = intercept
        status = _scan(proxy.url)
    assert status["evil"][0] is False
    assert f"more than {MAX_REFERRER_DEPTH} deep" in status["evil"][1]
    assert status["other"] == (True, "")
    assert asked <= MAX_REFERRER_DEPTH + 2


def test_an_oversized_manifest_is_refused_unread(evil_and_other: LocalRegistry) -> None:
    """A 50 MB 'manifest' (Content-Length) is refused before its body is read."""

    def intercept(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if method == "GET" and path.startswith("/v2/evil/manifests/"):
            return 200, {"Content-Type": mediatypes.OCI_MANIFEST}, b" " * (50 << 20)
        return None

    with RegistryProxy(evil_and_other.url) as proxy:
        proxy.intercept = intercept
        status = _scan(proxy.url)
    assert status["evil"][0] is False
    assert f"larger than {MAX_MANIFEST_BYTES:,} bytes" in status["evil"][1]
    assert status["other"] == (True, "")


def test_an_endless_chunked_body_is_cut_at_the_limit(tmp_path: Path) -> None:
    """A server streaming chunks for ever (300 MiB and counting): the lean transport stops
    reading at the limit and the request fails as an invalid answer, not by exhaustion."""
    sent = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 65536
        try:
            while sent < 300 << 20:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent += len(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def go() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with RegistryClient(
                f"http://127.0.0.1:{port}", retry=RetryPolicy(max_retries=0)
            ) as client:
                await client.request("GET", "/v2/x/manifests/t", scope="x", max_body=1 << 20)
        finally:
            server.close()

    with pytest.raises(InvalidResponse, match="larger than 1,048,576 bytes"):
        asyncio.run(go())
    assert sent < 64 << 20  # stopped long before the 300 MiB


def test_for_each_runs_a_bounded_number_of_tasks() -> None:
    """A million tags are read by a fixed pool of workers, never a task per tag."""
    running = peak = done = 0

    async def work(item: int) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        done += 1

    async def go() -> int:
        await for_each(list(range(200_000)), work, 32)
        return len(asyncio.all_tasks())

    assert asyncio.run(go()) == 1
    assert done == 200_000 and peak == 32


def test_a_scan_runs_a_bounded_number_of_tasks_however_many_children() -> None:
    """One index over 10,000 children, each with its own config: children and configs are
    read by fixed pools, so the tasks alive never grow with the repository (a task per
    child and per config did)."""
    children = 10_000
    configs: dict[str, bytes] = {}
    manifests: dict[str, bytes] = {}
    for i in range(children):
        config = json.dumps({"created": "2026-01-01T00:00:00Z", "n": i}).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        configs[config_digest] = config
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_MANIFEST,
                "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": config_digest},
                "layers": [],
            }
        ).encode()
        manifests["sha256:" + hashlib.sha256(body).hexdigest()] = body
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [{"mediaType": mediatypes.OCI_MANIFEST, "digest": d} for d in manifests],
        }
    ).encode()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal peak
        peak = max(peak, len(asyncio.all_tasks()))
        path = request.url.path
        reference = path.rsplit("/", 1)[1]
        if path.endswith("/tags/list"):
            return httpx.Response(200, json={"tags": ["multi"]})
        if reference == "multi" or reference == index_digest:
            headers = {"Content-Type": mediatypes.OCI_INDEX, "Docker-Content-Digest": index_digest}
            return httpx.Response(200, content=index, headers=headers)
        if "/manifests/" in path:
            headers = {"Content-Type": mediatypes.OCI_MANIFEST, "Docker-Content-Digest": reference}
            return httpx.Response(200, content=manifests[reference], headers=headers)
        if "/blobs/" in path:
            return httpx.Response(200, content=configs[reference])
        return httpx.Response(404)

    async def go() -> int:
        transport = httpx.MockTransport(handler)
        async with RegistryClient("http://reg.test", transport=transport, concurrency=64) as c:
            extraction = await scan_registry(c, ["big"])
        assert extraction.status["complete"].all()
        assert extraction.images["created"].notna().sum() == children
        return len(extraction.images)

    assert asyncio.run(go()) == children + 1
    assert peak < 1000, peak
