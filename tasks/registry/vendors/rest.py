"""The HTTP side shared by the vendor REST APIs (GitHub Packages, GitLab, Docker Hub):
retries on transport errors and 5xx, and rate limits waited out as the vendors document them.

A 403 or 429 with `retry-after` waits that many seconds (GitHub's secondary limits,
GitLab's 429); with `x-ratelimit-remaining: 0` or `ratelimit-remaining: 0` it waits until
the matching `...-reset` (epoch seconds); each wait is capped at MAX_WAIT and a request is
tried at most MAX_ATTEMPTS times. Statuses become the registry errors callers branch on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import httpx

from tasks.core.identity import USER_AGENT
from tasks.registry.errors import (
    AccessDenied,
    AuthenticationFailed,
    NotFound,
    RegistryError,
    RegistryUnavailable,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
MAX_WAIT = 60.0


class VendorHttp:
    """One vendor API at `api`. The token is `token`, else the environment variable
    `token_variable` names; subclasses say how it is sent (`headers`)."""

    name = "vendor"
    token_variable = ""
    token_hint = ""  # what to set when the API refuses the credentials

    def __init__(
        self,
        api: str,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: float = 1.0,  # the unit of every wait; tests shrink it
    ) -> None:
        token = token if token is not None else os.environ.get(self.token_variable, "")
        self.api = api.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.api,
            headers={"User-Agent": USER_AGENT, **self.headers(token)},
            transport=transport,
            timeout=30.0,
        )
        self._scale = sleep
        self.start()

    def start(self) -> None:
        """Set up what the subclass remembers between requests (caches, locks)."""

    def headers(self, token: str) -> dict[str, str]:
        """The headers of every request, the token's among them when there is one."""
        return {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        method: str,
        path: str,
        params: dict[str, str | int] | None = None,
        *,
        body: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        response: httpx.Response | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = await self._http.request(
                    method, path, params=params or None, json=body, headers=headers
                )
            except httpx.HTTPError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise RegistryUnavailable(f"{self.api}: {method} {path}: {exc}") from exc
                await asyncio.sleep(self._scale * attempt)
                continue
            wait = self._rate_limited(response)
            if wait is None:
                if response.status_code >= 500 and attempt < MAX_ATTEMPTS:
                    await asyncio.sleep(self._scale * attempt)
                    continue
                return response
            if attempt == MAX_ATTEMPTS:
                break
            log.warning(
                "%s API rate limit on %s %s: waiting %.0f s (%s)",
                self.name,
                method,
                path,
                wait,
                message(response),
            )
            await asyncio.sleep(wait)
        assert response is not None
        raise RegistryUnavailable(
            f"{self.api}: {method} {path}: still rate limited after {MAX_ATTEMPTS} attempts "
            f"({message(response)})"
        )

    def _rate_limited(self, response: httpx.Response) -> float | None:
        """Seconds to wait when `response` is a rate-limit answer, else None."""
        if response.status_code not in (403, 429):
            return None
        headers = response.headers
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return min(MAX_WAIT, max(float(retry_after), 1.0)) * self._scale
            except ValueError:
                return MAX_WAIT * self._scale
        for prefix in ("x-ratelimit", "ratelimit"):
            if headers.get(f"{prefix}-remaining") == "0":
                reset = float(headers.get(f"{prefix}-reset") or 0)
                return min(MAX_WAIT, max(reset - time.time(), 1.0)) * self._scale
        if response.status_code == 429:
            return self._scale
        return None  # a 403 that is not a rate limit: no permission

    def deleted(self, response: httpx.Response, what: str) -> bool:
        """The answer to a DELETE: True when it deleted, False when `what` was gone already
        (404); any other failure raised as `raise_for` does."""
        if response.status_code == 404:
            return False
        self.raise_for(response, what)
        return True

    def raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 300:
            return
        text = f"{what}: {self.name} answered {status}: {message(response)}"
        if status == 401:
            raise AuthenticationFailed(f"{text} ({self.token_hint})")
        if status == 403:
            raise AccessDenied(text)
        if status == 404:
            raise NotFound(text)
        if status >= 500:
            raise RegistryUnavailable(text)
        raise RegistryError(text)


def message(response: httpx.Response) -> str:
    """The vendor's own words: its JSON `message`, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", "")) if isinstance(body, dict) else response.text[:200]
