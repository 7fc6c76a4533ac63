"""Errors raised by the registry client.

Callers branch on the class, never on message text::

    RegistryError                  anything the registry stage cannot do
    ├── RegistryUnavailable        transport failures, 5xx and 429 after every retry
    ├── AuthenticationFailed       401 with the credentials we have (or none)
    ├── AccessDenied               403
    ├── NotFound                   404: repository, manifest, blob or tag unknown
    ├── DeleteUnsupported          405 or UNSUPPORTED on DELETE: deletion disabled on the registry
    ├── InvalidResponse            a body or header the client cannot make sense of
    └── CredentialHelperFailed     the docker credential helper crashed or answered nothing usable

`error_for_status` is the one place that turns an HTTP status into one of these, for the
registry and the vendors' APIs alike; `told_wait` the one reading of what an answer says
about waiting (Retry-After, rate-limit headers).
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx


class RegistryError(Exception):
    """Base class of every registry error."""


class RegistryUnavailable(RegistryError):
    """The registry did not answer usefully after every retry."""


class AuthenticationFailed(RegistryError):
    """The registry rejected our credentials (or asked for some we do not have)."""


class AccessDenied(RegistryError):
    """The credentials are valid but not allowed to do this."""


class CredentialHelperFailed(RegistryError):
    """`docker-credential-<name> get` could not be run, failed, or answered no credentials
    (not a configuration error: the same file works once the helper does)."""


class NotFound(RegistryError):
    """The repository, manifest, blob or tag does not exist."""


class DeleteUnsupported(RegistryError):
    """The registry refuses deletes; Distribution needs `storage.delete.enabled: true`."""


class InvalidResponse(RegistryError):
    """The registry answered something that is not what the API specifies."""


class UnreadableManifest(InvalidResponse):
    """A manifest whose bytes match their digest but that regsweep cannot parse (not JSON, an
    unknown media type): it exists, so the plan keeps it and reports why."""

    def __init__(self, message: str, digest: str, media_type: str) -> None:
        super().__init__(message)
        self.digest = digest
        self.media_type = media_type


def _describe(response: httpx.Response) -> str:
    body = response.text[:200].strip() if response.content else ""
    where = f"{response.request.method} {response.request.url.copy_with(query=None)}"
    return f"{where} -> {response.status_code}" + (f": {body}" if body else "")


def error_for_status(response: httpx.Response, what: str = "", hint: str = "") -> RegistryError:
    """Return the error class for a failed response (status >= 400), of the registry or a
    vendor's API; `what` is prefixed to the message (the vendor's words for the request),
    `hint` follows a refusal of the credentials (which variable to set)."""
    status = response.status_code
    text = (f"{what}: " if what else "") + _describe(response)
    if status == 401:
        return AuthenticationFailed(f"{text} ({hint})" if hint else text)
    if status in (403, 429) and told_wait(response) is not None:
        return RegistryUnavailable(f"{text}: still rate limited after every retry")
    if status == 403:
        return AccessDenied(text)
    if status == 404:
        return NotFound(text)
    if response.request.method == "DELETE" and (
        status == 405 or (status == 400 and "UNSUPPORTED" in response.text)
    ):
        return DeleteUnsupported(
            f"{text} (the registry refuses deletes: for Distribution set "
            "storage.delete.enabled: true)"
        )
    if status == 429 and pull_limit_reached(response):
        return RegistryUnavailable(
            f"{text}: the pull rate limit is reached (ratelimit-limit "
            f"{response.headers.get('ratelimit-limit', '?')}); the scan stops until its window "
            "resets (Docker Hub: sign in, or a paid plan, for more pulls)"
        )
    if status == 429 or status >= 500:
        return RegistryUnavailable(text)
    return InvalidResponse(text)


def told_wait(response: httpx.Response) -> float | None:
    """Seconds `response` asks the client to wait: `Retry-After` (seconds or an HTTP date),
    else `X-Retry-After` (epoch seconds: Docker Hub's Hub API on a 429, as its description's
    rate-limiting section says), else a rate-limit reset (epoch seconds) when
    `x-ratelimit-remaining` (GitHub, Docker Hub's Hub API) or `ratelimit-remaining` (GitLab)
    is 0; None when it says nothing."""
    until = response.headers.get("x-retry-after")
    if until and not response.headers.get("retry-after"):
        try:
            return max(1.0, float(until) - time.time())
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    for prefix in ("x-ratelimit", "ratelimit"):
        remaining = response.headers.get(f"{prefix}-remaining", "").split(";", 1)[0].strip()
        reset = response.headers.get(f"{prefix}-reset")
        if remaining == "0" and reset:
            try:
                return max(1.0, float(reset) - time.time())
            except ValueError:
                return None
    return None


def pull_limit_reached(response: httpx.Response) -> bool:
    """A 429 for a pull rate limit (Docker Hub's `ratelimit-remaining: 0;w=21600`, no reset
    time: its window is hours): waiting a few seconds will not help, so it is not retried."""
    remaining: str = response.headers.get("ratelimit-remaining", "")
    no_reset = not response.headers.get("ratelimit-reset")
    return remaining.split(";", 1)[0].strip() == "0" and no_reset
