"""The one retry policy of every HTTP request regsweep sends: the registry's OCI API
(`tasks.registry.client`), the vendors' REST APIs (`tasks.registry.vendors.rest`) and, through
`botocore_retries`, boto3 for ECR.

What is retried: no answer (a transport error), 429, 5xx, and a 403 that is a rate limit
(GitHub's secondary limits answer 403). How long to wait: what the server says, else an
exponential backoff with jitter. What the server says is read in one place
(`tasks.registry.errors.told_wait`):
- `Retry-After`, in seconds or as an HTTP date;
- `x-ratelimit-remaining: 0` (GitHub, Docker Hub's Hub API) or `ratelimit-remaining: 0`
  (GitLab) with the matching `...-reset`, in epoch seconds.
A told wait is capped at `max_wait`; a pull rate limit (Docker Hub's `ratelimit-remaining:
0;w=21600`, no reset: its window is hours) is not retried at all. Statuses become errors in
`tasks.registry.errors.error_for_status`, the one mapping.

Every attempt is counted in `REQUESTS` (by API, method and status; retries by API and
method), which the run's metrics read (`flows.metrics`). boto3's own requests are not
counted, and on a Dask cluster only the flow's own process's requests are.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from tasks.registry.errors import RegistryUnavailable, pull_limit_reached, told_wait

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request."""

    max_retries: int = 5  # retries after the first attempt
    backoff: float = 0.2  # the first backoff's ceiling, doubled each retry
    max_backoff: float = 30.0  # the largest backoff of our own
    max_wait: float = 60.0  # the longest a server's Retry-After or rate-limit reset is waited
    scale: float = 1.0  # the unit of every wait (tests shrink it)

    def retryable(self, response: httpx.Response) -> bool:
        """Whether `response` is worth sending again (retries left or not)."""
        status = response.status_code
        if status == 429 and pull_limit_reached(response):
            return False
        if status == 403:
            return told_wait(response) is not None  # a rate limit, not a refusal
        return status in RETRY_STATUSES

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry `attempt + 1`: what the server said (capped), else
        the jittered exponential backoff."""
        told = told_wait(response) if response is not None else None
        if told is not None:
            return min(told, self.max_wait) * self.scale
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling) * self.scale

    def botocore_retries(self) -> dict[str, object]:
        """botocore's `retries` setting from this policy: boto3 retries (and backs off) on
        its own, AWS's standard mode, as many times (`total_max_attempts` counts the first
        attempt; botocore's `max_attempts` would not)."""
        return {"mode": "standard", "total_max_attempts": self.max_retries + 1}


@dataclass(frozen=True)
class RequestCounts:
    """Requests by (API, method, status; "none" when no answer came) and retries by (API,
    method), over some span of time."""

    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    retries: Counter[tuple[str, str]] = field(default_factory=Counter)


class RequestTally:
    """The process's running counts of requests and retries (threads share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = RequestCounts()

    def add(self, api: str, method: str, status: int | None, retried: bool) -> None:
        with self._lock:
            self._counts.requests[(api, method, str(status or "none"))] += 1
            if retried:
                self._counts.retries[(api, method)] += 1

    def snapshot(self) -> RequestCounts:
        with self._lock:
            return RequestCounts(Counter(self._counts.requests), Counter(self._counts.retries))

    def since(self, earlier: RequestCounts) -> RequestCounts:
        """What was counted after `earlier` (a `snapshot`)."""
        now = self.snapshot()
        return RequestCounts(now.requests - earlier.requests, now.retries - earlier.retries)


REQUESTS = RequestTally()
DEFAULT_RETRY = RetryPolicy()
ONE_RETRY = RetryPolicy(max_retries=1)  # a probe (`check`, preflight): answer soon


async def send_with_retries(
    send: Callable[[], Awaitable[httpx.Response]],
    policy: RetryPolicy,
    what: str,
    *,
    api: str,
    method: str,
    allow: frozenset[int] = frozenset(),
    hint: Callable[[httpx.TransportError], str] = lambda exc: "",
) -> httpx.Response:
    """`send()` until an answer not worth retrying (or one in `allow`), or until the
    retries run out; return that answer (the caller turns a failure into an error with
    `error_for_status`). Raises `RegistryUnavailable` when no answer came at all; `what`
    names the request there and in the log of each retry, `hint` what to do about it.
    Each attempt is counted in `REQUESTS` under `api` and `method`."""
    attempt = 0
    while True:
        response: httpx.Response | None = None
        try:
            response = await send()
        except httpx.TransportError as exc:
            REQUESTS.add(api, method, None, attempt > 0)
            if attempt >= policy.max_retries:
                raise RegistryUnavailable(
                    f"{what}: {type(exc).__name__}: {exc}{hint(exc)}"
                ) from exc
        else:
            REQUESTS.add(api, method, response.status_code, attempt > 0)
            if (
                response.status_code in allow
                or not policy.retryable(response)
                or attempt >= policy.max_retries
            ):
                return response
        delay = policy.delay(attempt, response)
        log.warning(  # a server struggling is news to whoever watches the run
            "%s: %s; retry %d of %d in %.1f s",
            what,
            f"HTTP {response.status_code}" if response is not None else "no answer",
            attempt + 1,
            policy.max_retries,
            delay,
        )
        await asyncio.sleep(delay)
        attempt += 1
