"""The registry client: base URL, auth, concurrency, retries with backoff, over the lean
HTTP connection layer of `tasks.registry.transport`.

Everything above it (catalog, tags, manifests, blobs) asks for resources and never sees a
401, a 429 or a connection reset: those are handled here and only here.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from tasks.core.config import DEFAULT_CONCURRENCY
from tasks.core.identity import USER_AGENT
from tasks.core.reference import registry_host
from tasks.registry.cache import ContentCache
from tasks.registry.errors import (
    AuthenticationFailed,
    InvalidResponse,
    RegistryUnavailable,
    error_for_status,
)
from tasks.registry.retry import DEFAULT_RETRY, RetryPolicy, send_with_retries
from tasks.registry.transport import (
    DEFAULT_MAX_BODY,
    MAX_BODY_EXTENSION,
    SAFE_TARGET,
    BodyTooLarge,
    LeanTransport,
    request_head,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


"""Sent with every request: registries' pull records and notifications can tell (and
ignore) regsweep's own reads."""
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass(frozen=True)
class Credentials:
    """A username and password (or token) for one registry. Never printed."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"


def transport_hint(url: str, exc: Exception) -> str:
    """What to do about a transport error a user can fix, as a suffix for its message."""
    text = str(exc)
    if url.startswith("https://") and "WRONG_VERSION_NUMBER" in text:
        plain = "http://" + url.removeprefix("https://")
        return f" (the registry speaks plain HTTP: set registry.url to {plain})"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            " (the registry's certificate is not trusted: add its CA to the system store "
            "or point SSL_CERT_FILE at it)"
        )
    if isinstance(exc, httpx.ConnectError):
        return " (nothing answers there: is registry.url right and the registry running?)"
    return ""


def next_page(response: httpx.Response) -> str | None:
    """Return the path+query of the `Link: <...>; rel="next"` page, relative or absolute."""
    link = response.headers.get("Link")
    if not link:
        return None
    match = _LINK_NEXT.search(link)
    if not match:
        return None
    target = httpx.URL(match.group(1))
    path = target.raw_path.decode()
    return path if path.startswith("/") else "/" + path


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryClient:
    """Async client for one registry.

    `concurrency` bounds requests in flight; `retry` is how one request is retried
    (`tasks.registry.retry`: transport errors, 429, 5xx, rate limits, Retry-After).
    `cache` (optional) keeps manifests and configs by digest across runs;
    `requests_per_second` (optional) spaces every request, retries included, evenly.
    """

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: float = 30.0,
        verify: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        cache: ContentCache | None = None,
        requests_per_second: float | None = None,
    ) -> None:
        self.url = url  # as the configuration normalised it (`tasks.core.reference`)
        self.cache = cache
        # The vendor this client lists, protects and deletes through (set and read by
        # `tasks.registry.vendors.base`, which this module does not know), and what `aclose`
        # awaits to close what the vendor opened.
        self.vendor: object = None
        self.closing: list[Callable[[], Awaitable[None]]] = []
        self.manifest_gets: dict[str, int] = {}  # repository -> manifest GETs sent
        self._rate = _RateLimit(requests_per_second) if requests_per_second else None
        self.host = registry_host(self.url)
        self._credentials = credentials
        self.retry = retry
        self._slots = asyncio.Semaphore(concurrency)
        self._tokens: dict[str, _Token] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}
        self._use_basic = False
        transport = transport or _default_transport(self.url, verify, timeout)
        # With the lean transport, requests go to it directly: httpx's client layers (auth,
        # redirects, cookies, hooks) cost ~85 us a request and regsweep does its own auth.
        # A redirect answer is sent again through httpx, which follows it.
        self._direct = transport if isinstance(transport, LeanTransport) else None
        self._blobs_redirect = False
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"User-Agent": USER_AGENT},
            timeout=timeout,
            verify=verify,
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=True,
        )
        # Requests are built from a parsed base URL: letting httpx parse and merge a path
        # string costs ~40 us a request (a tenth of a cold scan's client time).
        self._base = httpx.URL(self.url)
        self._prefix = self._base.raw_path.rstrip(b"/").decode("ascii")
        self._extensions = {"timeout": self._http.timeout.as_dict()}
        # The direct route's request heads are written without httpx's URL and header
        # objects: origin, Host and the client's headers are worked out once.
        self._origin_key = (self._base.scheme, self._base.host, _origin(self._base)[2] or 80)
        self._host_header = self._base.netloc.decode("ascii")
        self._default_headers = {k.lower(): (k, v) for k, v in self._http.headers.items()}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        for close in self.closing:
            await close()
        if self.cache is not None:
            await asyncio.to_thread(self.cache.close)

    @property
    def has_credentials(self) -> bool:
        """Whether this client has credentials to offer (never what they are)."""
        return self._credentials is not None

    async def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        allow: frozenset[int] = frozenset(),
        max_body: int = DEFAULT_MAX_BODY,
    ) -> httpx.Response:
        """Send one request with auth and retries; return the response.

        Statuses in `allow` are returned instead of raised (e.g. 404 for an existence check).
        An answer larger than `max_body` bytes is `InvalidResponse` (the lean transport stops
        reading there). Raises a `RegistryError` subclass for every other failure.
        """
        authenticated_again = False

        async def attempt() -> httpx.Response:
            nonlocal authenticated_again
            response = await self._attempt(method, path, scope, headers, content, max_body)
            if response.status_code == 401 and 401 not in allow and not authenticated_again:
                authenticated_again = True  # once a request: then the 401 stands
                await self._authenticate(response, scope)
                response = await self._attempt(method, path, scope, headers, content, max_body)
            if method == "GET" and "/manifests/" in path:
                self._count_pull(path)
            return response

        response = await send_with_retries(
            attempt,
            self.retry,
            f"{method} {self.host}{path.split('?', 1)[0]}",
            api="registry",
            method=method,
            allow=allow,
            hint=lambda exc: transport_hint(self.url, exc),
        )
        if response.status_code < 400 or response.status_code in allow:
            return response
        raise error_for_status(response)

    async def _attempt(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str] | None,
        content: bytes | None,
        max_body: int,
    ) -> httpx.Response:
        """One request: its authorization, its place under the rate limit and the
        concurrency bound, and the bound on its answer's size."""
        send_headers = dict(headers or {})
        auth = self._authorization(scope)
        if auth:
            send_headers["Authorization"] = auth
        if self._rate is not None:
            await self._rate.wait()
        try:
            async with self._slots:
                response = await self._send(method, path, send_headers, content, max_body)
            if len(response.content) > max_body:  # answers that went through httpx
                raise BodyTooLarge(f"answer larger than {max_body:,} bytes")
        except BodyTooLarge as exc:
            raise InvalidResponse(f"{method} {self.host}{path.split('?', 1)[0]}: {exc}") from None
        return response

    def _count_pull(self, path: str) -> None:
        """Count a manifest GET (what pull rate limits count; HEAD is free) per repository."""
        repository = path[len("/v2/") : path.index("/manifests/")]
        self.manifest_gets[repository] = self.manifest_gets.get(repository, 0) + 1

    async def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        content: bytes | None,
        max_body: int,
    ) -> httpx.Response:
        # Registries that keep blobs elsewhere (S3, a CDN) redirect every blob GET: after the
        # first, blobs go through httpx, which follows in one go and drops Authorization when
        # the origin changes.
        blob = "/blobs/" in path
        target = self._prefix + path
        if (
            self._direct is None
            or (blob and self._blobs_redirect)
            or not path.startswith("/")
            or SAFE_TARGET.fullmatch(target) is None
        ):
            return await self._http.send(self._build(method, path, headers, content, max_body))
        merged = dict(self._default_headers)
        for name, value in headers.items():
            merged[name.lower()] = (name, value)
        try:
            head = request_head(method, target, self._host_header, merged, content)
        except ValueError as exc:
            raise InvalidResponse(f"{method} {self.host}{path.split('?', 1)[0]}: {exc}") from None
        status, answer_headers, body = await self._direct.exchange(
            self._origin_key, method, head + (content or b""), max_body
        )
        response = _DirectResponse(
            status,
            answer_headers,
            body,
            lambda: self._build(method, path, headers, content, max_body),
        )
        if response.is_redirect:
            self._blobs_redirect = self._blobs_redirect or blob
            return await self._http.send(response.request)
        return response

    def _build(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        content: bytes | None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> httpx.Request:
        """The httpx request for `path`: path and query from the registry's root, or an
        absolute URL the registry gave (an upload Location), which httpx parses as usual."""
        extensions = {**self._extensions, MAX_BODY_EXTENSION: max_body}
        try:
            if not path.startswith("/"):
                raise ValueError(path)
            url = self._base.copy_with(raw_path=(self._prefix + path).encode("ascii"))
        except (ValueError, httpx.InvalidURL):  # absolute, not ASCII...: httpx parses it
            request = self._http.build_request(method, path, headers=headers, content=content)
            request.extensions = {**request.extensions, MAX_BODY_EXTENSION: max_body}
            return request
        merged = httpx.Headers(self._http.headers)
        merged.update(headers)
        return httpx.Request(method, url, headers=merged, content=content, extensions=extensions)

    def _authorization(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and token.expires_at > time.monotonic():
            return f"Bearer {token.value}"
        if self._use_basic and self._credentials is not None:
            return _basic(self._credentials)
        return None

    async def _authenticate(self, response: httpx.Response, scope: str) -> None:
        challenge = response.headers.get("WWW-Authenticate", "")
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "basic":
            if self._credentials is None:
                raise AuthenticationFailed(
                    f"{self.host} asks for a username and password and none is configured"
                )
            self._use_basic = True
            return
        if kind == "bearer":
            params = dict(_CHALLENGE_PARAM.findall(challenge))
            lock = self._token_locks.setdefault(scope, asyncio.Lock())
            async with lock:
                self._tokens.pop(scope, None)
                self._tokens[scope] = await self._fetch_token(params, scope)
            return
        raise error_for_status(response)

    def _check_realm(self, realm: str) -> None:
        """Raise unless our password may go to `realm`: over https, or over http only when
        the registry itself is configured as http and the realm is its own origin. The realm
        comes from the registry's answer, which anyone on the path of an http registry (or a
        hostile registry) can write."""
        try:
            url = httpx.URL(realm)
        except (httpx.InvalidURL, ValueError):
            raise InvalidResponse(
                f"{self.host}: token realm {realm[:200]!r} is not a URL"
            ) from None
        if url.scheme == "https" and url.host:
            return
        if url.scheme == "http" and _origin(url) == _origin(self._base):
            return
        raise InvalidResponse(
            f"{self.host}: refusing to send the registry credentials to token realm {realm!r}: "
            "a realm must be https, or the registry's own origin when it is http"
        )

    async def _fetch_token(self, params: dict[str, str], scope: str) -> _Token:
        realm = params.get("realm")
        if not realm:
            raise InvalidResponse(f"{self.host}: bearer challenge without a realm")
        query: dict[str, str] = {}
        if params.get("scope", scope):  # none for `/v2/` itself: ask for no scope at all
            query["scope"] = params.get("scope", scope)
        if "service" in params:
            query["service"] = params["service"]
        headers = {}
        if self._credentials is not None:
            self._check_realm(realm)
            headers["Authorization"] = _basic(self._credentials)
        try:
            answer = await self._http.get(realm, params=query, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryUnavailable(f"token service {realm}: {exc}") from exc
        if answer.status_code in (401, 403):
            raise AuthenticationFailed(f"token service {realm} refused the credentials")
        if answer.status_code >= 400:
            raise error_for_status(answer)
        body = json_object(answer)
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise InvalidResponse(f"token service {realm} answered without a token")
        if not _TOKEN.fullmatch(value):  # it goes into a header line of every request
            raise InvalidResponse(
                f"token service {realm} answered a token with characters a header cannot "
                "carry (space, control or non-ASCII)"
            )
        expires_in = body.get("expires_in", 60)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 60.0
        # Renew a little early so a token never expires between our check and the request.
        return _Token(value, time.monotonic() + max(1.0, lifetime - 5.0))


_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a bearer token is made of


class _DirectResponse(httpx.Response):
    """An answer of the direct route. Its httpx request is built only when asked for (an
    error message, a redirect): building one costs more than the rest of a HEAD."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content: bytes,
        build: Callable[[], httpx.Request],
    ) -> None:
        super().__init__(
            status, headers=headers, content=content, extensions={"http_version": b"HTTP/1.1"}
        )
        self._build_request = build

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            self._request = self._build_request()
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"https": 443, "http": 80}.get(url.scheme)


def _default_transport(url: str, verify: bool, timeout: float) -> httpx.AsyncBaseTransport | None:
    """The lean transport, unless the environment routes this registry through an HTTP
    proxy (HTTPS_PROXY/HTTP_PROXY without a NO_PROXY match): then httpx's own (None)."""
    host = urlsplit(url).hostname or ""
    scheme = urlsplit(url).scheme
    if scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return None
    return LeanTransport(verify=verify, timeout=timeout)


class _RateLimit:
    """Evenly spaced request starts: at most `rate` per second over the whole client."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self._interval
        if delay > 0:
            await asyncio.sleep(delay)


def _basic(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise InvalidResponse(f"{response.request.url}: body is not JSON") from exc


def json_object(response: httpx.Response) -> dict[str, Any]:
    """Return the body as a JSON object; raise `InvalidResponse` for anything else."""
    body = _json_body(response)
    if not isinstance(body, dict):
        raise InvalidResponse(f"{response.request.url}: body is not a JSON object")
    return body


MAX_PAGES = 10_000  # of a catalog or tag list: 10 million names at 1,000 a page


async def paged_names(client: RegistryClient, path: str, scope: str, key: str) -> list[str]:
    """Follow `Link` pages from `path`, collecting the list of names under `key` of each page.

    Raises `InvalidResponse` for a page that is not a list of names or a pagination loop.
    """
    return await paged_list(client, path, scope, key, str)


async def paged_list(
    client: RegistryClient, path: str, scope: str, key: str, kind: type[T]
) -> list[T]:
    """Follow `Link` pages from `path`, collecting the list under `key` of each page (the
    body itself when `key` is empty), every item a `kind`. Raises `InvalidResponse` for a
    page that is not such a list or a pagination loop."""
    names: list[T] = []
    seen: set[str] = set()
    page_path: str | None = path
    while page_path is not None:
        if len(seen) >= MAX_PAGES:
            raise InvalidResponse(
                f"{client.host}: {path.split('?', 1)[0]}: more than {MAX_PAGES:,} pages "
                "(a registry that never stops paging)"
            )
        if page_path in seen:
            raise InvalidResponse(f"{client.host}: pagination loops at {page_path}")
        seen.add(page_path)
        response = await client.request("GET", page_path, scope=scope)
        page = json_object(response).get(key) or [] if key else _json_body(response)
        if not isinstance(page, list) or not all(isinstance(n, kind) for n in page):
            what = "names" if kind is str else f"{kind.__name__}s"
            raise InvalidResponse(f"{client.host}: {page_path}: {key} is not a list of {what}")
        names.extend(page)
        page_path = next_page(response)
    return names
