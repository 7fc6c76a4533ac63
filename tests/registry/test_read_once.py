"""A manifest that many tags name is read once by a warm scan, however the tags resolve
at the same moment: on Docker Hub every GET counts against the pull rate limit, and
anywhere else it is wasted work. Counted by the client (`status.manifest_gets`)."""

from __future__ import annotations

import asyncio

import httpx

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_repositories
from tasks.registry.retry import RetryPolicy
from tests.registry.vendors import OLD

DIGEST = "sha256:" + "ab" * 32
TAGS = [f"t{i}" for i in range(40)]


def test_forty_tags_on_one_digest_cost_one_manifest_get(registry: LocalRegistry) -> None:
    async def go() -> tuple[int, int]:
        async with RegistryClient(registry.url) as client:
            await push_image(client, "app", TAGS, created=OLD)
            extraction = await scan_repositories(client, ["app"], warm=True)  # no cache
            return int(extraction.status["manifest_gets"].iloc[0]), len(extraction.tags)

    gets, tags = asyncio.run(go())
    assert (gets, tags) == (1, 40)


def test_a_failing_read_fails_every_tag_waiting_on_it_with_one_request() -> None:
    """The shared read fails (500, no retries): the repository is incomplete, and the
    failure was one GET, not one per tag."""
    gets = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal gets
        path = request.url.path
        if path == "/v2/app/tags/list":
            return httpx.Response(200, json={"name": "app", "tags": TAGS})
        if request.method == "HEAD" and "/manifests/" in path:
            return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})
        if request.method == "GET" and path == f"/v2/app/manifests/{DIGEST}":
            gets += 1
            return httpx.Response(500, text="broken")
        return httpx.Response(404)

    async def go() -> tuple[bool, str]:
        transport = httpx.MockTransport(answer)
        async with RegistryClient(
            "http://reg.test", transport=transport, retry=RetryPolicy(max_retries=0)
        ) as c:
            extraction = await scan_repositories(c, ["app"], warm=True)
        return bool(extraction.status["complete"].iloc[0]), str(extraction.status["error"].iloc[0])

    complete, error = asyncio.run(go())
    assert not complete and "500" in error
    assert gets == 1
