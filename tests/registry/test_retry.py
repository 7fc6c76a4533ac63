"""The one HTTP layer (`tasks.registry.retry`, `tasks.registry.errors`): the registry client
and a vendor's REST client retry the same answers, wait what the server says, and turn the
same failures into the same errors; boto3 is configured from the same policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tasks.registry.client import RegistryClient
from tasks.registry.errors import (
    AccessDenied,
    AuthenticationFailed,
    RegistryError,
    RegistryUnavailable,
    told_wait,
)
from tasks.registry.retry import REQUESTS, RetryPolicy
from tasks.registry.vendors.ecr import EcrRegistry
from tasks.registry.vendors.rest import VendorHttp

QUICK = RetryPolicy(max_retries=3, backoff=0.001, scale=0.001)


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"message": f"status {status}"})


def script(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives `answers` in turn (the last one again when they run out)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return httpx.MockTransport(handle), seen


class Api(VendorHttp):
    name = "Example"
    token_hint = "set REGSWEEP_EXAMPLE_TOKEN"


async def through_registry(transport: httpx.MockTransport) -> httpx.Response:
    async with RegistryClient("http://reg.test", transport=transport, retry=QUICK) as client:
        return await client.request("GET", "/v2/app/tags/list", scope="")


async def through_vendor(transport: httpx.MockTransport) -> httpx.Response:
    api = Api("http://api.test", token="t", transport=transport, retry=QUICK)
    try:
        response = await api.send("GET", "/things")
        api.raise_for(response, "things")
        return response
    finally:
        await api.aclose()


CLIENTS: list[Callable[[httpx.MockTransport], object]] = [through_registry, through_vendor]


@pytest.mark.parametrize("send", CLIENTS, ids=["registry", "vendor"])
def test_rate_limits_and_server_errors_are_retried_alike(send: Callable) -> None:
    transport, seen = script(
        answer(403, **{"retry-after": "0"}),  # GitHub's secondary rate limit
        answer(429, **{"ratelimit-remaining": "0", "ratelimit-reset": str(int(time.time()))}),
        answer(503),
        answer(200),
    )
    before = REQUESTS.snapshot()
    assert asyncio.run(send(transport)).status_code == 200
    assert len(seen) == 4
    counted = REQUESTS.since(before)  # every attempt, by its answer; three were retries
    api = "registry" if send is through_registry else "example"
    assert counted.requests == {(api, "GET", s): 1 for s in ("403", "429", "503", "200")}
    assert counted.retries == {(api, "GET"): 3}


def test_a_request_with_no_answer_is_counted_as_none() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    before = REQUESTS.snapshot()
    with pytest.raises(RegistryUnavailable):
        asyncio.run(through_registry(httpx.MockTransport(refuse)))
    counted = REQUESTS.since(before)
    assert counted.requests == {("registry", "GET", "none"): QUICK.max_retries + 1}
    assert counted.retries == {("registry", "GET"): QUICK.max_retries}


@pytest.mark.parametrize("send", CLIENTS, ids=["registry", "vendor"])
@pytest.mark.parametrize(
    ("first", "error", "words"),
    [
        (answer(403), AccessDenied, "-> 403"),  # a refusal, not a rate limit: once
        (answer(401), AuthenticationFailed, "-> 401"),
        (
            answer(429, **{"ratelimit-remaining": "0;w=21600", "ratelimit-limit": "100"}),
            RegistryUnavailable,
            "pull rate limit is reached",  # hours away: not retried
        ),
    ],
)
def test_failures_that_waiting_cannot_mend_are_not_retried(
    send: Callable, first: httpx.Response, error: type[RegistryError], words: str
) -> None:
    transport, seen = script(first, answer(200))
    with pytest.raises(error, match=words):
        asyncio.run(send(transport))
    assert len(seen) <= 2  # the registry client asks a 401 once more, with credentials


@pytest.mark.parametrize("send", CLIENTS, ids=["registry", "vendor"])
def test_a_rate_limit_that_outlasts_the_retries_is_unavailable(send: Callable) -> None:
    transport, seen = script(answer(429, **{"retry-after": "1"}))
    with pytest.raises(RegistryUnavailable, match="still rate limited after every retry"):
        asyncio.run(send(transport))
    assert len(seen) == QUICK.max_retries + 1


def test_what_a_server_says_about_waiting_is_read_one_way() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)
    assert told_wait(answer(429, **{"retry-after": "7"})) == 7.0
    assert 25 < (told_wait(answer(429, **{"retry-after": format_datetime(soon)})) or 0) <= 30
    reset = str(int(time.time()) + 20)
    for prefix in ("x-ratelimit", "ratelimit"):
        headers = {f"{prefix}-remaining": "0", f"{prefix}-reset": reset}
        assert 15 < (told_wait(answer(403, **headers)) or 0) <= 20
    assert (
        told_wait(answer(403, **{"x-ratelimit-remaining": "12", "x-ratelimit-reset": reset}))
        is None
    )
    assert told_wait(answer(429)) is None
    # Docker Hub's Hub API on a 429 (its description's rate-limiting section): Unix time
    assert 15 < (told_wait(answer(429, **{"x-retry-after": reset})) or 0) <= 20


def test_told_waits_are_capped_and_backoff_grows_with_jitter() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=8.0, max_wait=60.0)
    assert policy.delay(0, answer(429, **{"retry-after": "3600"})) == 60.0
    assert all(0.5 <= policy.delay(0, None) <= 1.0 for _ in range(50))
    assert all(4.0 <= policy.delay(3, None) <= 8.0 for _ in range(50))
    assert all(4.0 <= policy.delay(9, answer(503)) <= 8.0 for _ in range(50))


def test_boto3_retries_as_often_as_everything_else() -> None:
    expected = {"mode": "standard", "total_max_attempts": 4}
    assert RetryPolicy(max_retries=3).botocore_retries() == expected
    ecr = EcrRegistry("123456789012", "eu-west-1", "http://127.0.0.1:9")
    try:
        retries = ecr._client.meta.config.retries
        assert retries == {"mode": "standard", "total_max_attempts": 6}
    finally:
        asyncio.run(ecr.aclose())
