"""The base of the vendors' REST API clients (GitHub Packages, GitLab, Docker Hub's Hub API):
one httpx client per API, the token in its headers, and every request through the one retry
policy of `tasks.registry.retry` (transport errors, 5xx, rate limits waited out as the
vendors document them) and the one status mapping of `tasks.registry.errors`.
"""

from __future__ import annotations

import os

import httpx

from tasks.core.identity import USER_AGENT
from tasks.registry.errors import error_for_status
from tasks.registry.retry import DEFAULT_RETRY, RetryPolicy, send_with_retries


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
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        token = token if token is not None else os.environ.get(self.token_variable, "")
        self.api = api.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.api,
            headers={"User-Agent": USER_AGENT, **self.headers(token)},
            transport=transport,
            timeout=30.0,
        )
        self.retry = retry
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
        """One request, retried as `tasks.registry.retry` says; the answer, whatever its
        status (`raise_for` and `deleted` read it)."""
        return await send_with_retries(
            lambda: self._http.request(
                method, path, params=params or None, json=body, headers=headers
            ),
            self.retry,
            f"{self.name} API {method} {self.api}{path}",
            api=self.name.lower().replace(" ", ""),  # the kind: github, gitlab, dockerhub
            method=method,
        )

    def deleted(self, response: httpx.Response, what: str) -> bool:
        """The answer to a DELETE: True when it deleted, False when `what` was gone already
        (404); any other failure raised as `raise_for` does."""
        if response.status_code == 404:
            return False
        self.raise_for(response, what)
        return True

    def raise_for(self, response: httpx.Response, what: str) -> None:
        """Raise the registry error of a failed answer (`error_for_status`): `what` and the
        vendor's name lead the message, a refused token says what to set."""
        if response.status_code >= 300:
            raise error_for_status(response, f"{what}: {self.name}", self.token_hint)
