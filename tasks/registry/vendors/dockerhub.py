"""Docker Hub (docker.io): its Hub API lists repositories, says which tags are immutable
and deletes tags; the registry (registry-1.docker.io) serves the OCI API for reads.

Docker Hub refuses `DELETE /v2/<name>/manifests/<digest>` and offers no documented way to
delete a manifest: an image goes by its tags, deleted one by one through the Hub API; the
manifest, untagged, is left to Docker Hub (an untagged manifest the plan deletes, such as
an index child, is reported `skipped-unsupported`, not a failure). A tag delete is an
untag, so tag-level cleanup needs no placeholder here.

Endpoints (https://hub.docker.com; `registry.api` overrides):
    POST   /v2/auth/token                                   {identifier, secret} ->
           {access_token}, a JWT for 10 minutes (fetched again on a 401)
    GET    /v2/namespaces/{namespace}/repositories?page_size=100&page=N
           {count, next, results: [{name, namespace}]}
    GET    /v2/namespaces/{namespace}/repositories/{repository}
           {..., immutable_tags_settings: {enabled, rules: [regex]}}
    GET    /v2/namespaces/{namespace}/repositories/{repository}/tags?page_size=100&page=N
           {count, next, results: [{name, digest, tag_last_pushed, images: [{digest,
           last_pushed}]}]}: push times for the registry policies (a digest's newest)
    DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/     204; 404 gone
The first four are in Docker's published Hub API description (2-beta). The tag delete is
not: it is the endpoint Docker's own `hub-tool` (docker/hub-tool, `tag rm`) sends. The
credentials are a Docker ID and a personal access token (or an organisation and its access
token) from REGSWEEP_DOCKERHUB_USERNAME and REGSWEEP_DOCKERHUB_TOKEN. The Hub API's rate
limits (429 with `X-RateLimit-Reset` or `Retry-After`) are waited out
(`tasks.registry.vendors.rest`).

Pull rate limits: Docker Hub counts every manifest GET (not HEAD) against the account's
pulls. On this kind the scan resolves every tag with a HEAD and GETs only the manifests the
content cache does not have, even on a first scan; the report says how many GETs it sent,
and a 429 for the pull limit (`ratelimit-remaining: 0`) stops the repository's scan at once
(incomplete: nothing is deleted there).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from tasks.core.errors import ConfigError
from tasks.registry.client import MAX_PAGES
from tasks.registry.errors import (
    AuthenticationFailed,
    DeleteUnsupported,
    InvalidResponse,
    RegistryError,
)
from tasks.registry.repositories import is_glob
from tasks.registry.retry import DEFAULT_RETRY, RetryPolicy
from tasks.registry.vendors.base import Protection, Vendor, vendor_time
from tasks.registry.vendors.rest import VendorHttp

if TYPE_CHECKING:
    from tasks.registry.client import RegistryClient

HUB_API = "https://hub.docker.com"
USERNAME_VARIABLE = "REGSWEEP_DOCKERHUB_USERNAME"
TOKEN_VARIABLE = "REGSWEEP_DOCKERHUB_TOKEN"
PAGE_SIZE = 100


@dataclass(frozen=True)
class ImmutableTags:
    """A repository's `immutable_tags_settings`: off, every tag, or the tags a rule
    matches (whole-name regular expressions, as Docker Hub applies them)."""

    enabled: bool
    rules: tuple[str, ...]

    def why(self, tag: str) -> str:
        """Why `tag` is immutable, or "" when it is not."""
        if not self.enabled:
            return ""
        if not self.rules:
            return "Docker Hub: every tag of the repository is immutable"
        for rule in self.rules:
            try:
                if re.fullmatch(rule, tag):
                    return f"Docker Hub immutable tag rule /{rule}/"
            except re.error:  # a rule Python cannot read protects every tag: fail closed
                return f"Docker Hub immutable tag rule /{rule}/ (unreadable here: every tag)"
        return ""


def split_repository(repository: str) -> tuple[str, str]:
    """(namespace, name) of a Docker Hub repository `namespace/name`."""
    namespace, _, name = repository.partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(f"{repository!r} is not namespace/name (a Docker Hub repository)")
    return namespace, name


TOKEN_LIFETIME = 9 * 60  # seconds a sign-in is reused: Docker's access token lasts 10 minutes
_SIGN_INS: dict[tuple[str, str, str], tuple[str, float]] = {}  # (api, id, hash) -> token
_SIGN_INS_LOCK = threading.Lock()


def _signed_in(key: tuple[str, str, str], stale: str) -> str:
    """The token this process signed in for with `key` while it lasts, unless it is the
    `stale` one (then it is forgotten); "" when there is none."""
    with _SIGN_INS_LOCK:
        token, when = _SIGN_INS.get(key, ("", 0.0))
        if token and token != stale and time.monotonic() - when < TOKEN_LIFETIME:
            return token
        _SIGN_INS.pop(key, None)
        return ""


class HubApi(VendorHttp):
    """Docker Hub's Hub API at `api`, with a Docker ID (or organisation) and its token."""

    name = "Docker Hub"
    token_variable = TOKEN_VARIABLE
    token_hint = (
        f"set {USERNAME_VARIABLE} and {TOKEN_VARIABLE} to a Docker ID and a personal access "
        "token with read, write and delete access"
    )

    def __init__(
        self,
        api: str,
        username: str | None = None,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self._identifier = (
            username if username is not None else os.environ.get(USERNAME_VARIABLE, "")
        )
        self._secret = token if token is not None else os.environ.get(TOKEN_VARIABLE, "")
        super().__init__(api, token="", transport=transport, retry=retry)

    def start(self) -> None:
        self._jwt_lock = asyncio.Lock()
        self._settings: dict[str, ImmutableTags] = {}

    async def _token(self, stale: str = "") -> str:
        """The access token: the one this process signed in for (each stage of a run, and
        each of its event loops, makes a client of its own; one sign-in serves them all
        while it lasts), else a new sign-in; `stale` is one Docker Hub refused."""
        key = (self.api, self._identifier, hashlib.sha256(self._secret.encode()).hexdigest())
        async with self._jwt_lock:
            cached = _signed_in(key, stale)
            if cached:
                return cached
            if not (self._identifier and self._secret):
                raise AuthenticationFailed(
                    f"{self.api}: no Docker Hub credentials ({self.token_hint})"
                )
            body = {"identifier": self._identifier, "secret": self._secret}
            response = await self.send("POST", "/v2/auth/token", body=body)
            self.raise_for(response, "Docker Hub sign-in")
            token = _json(response, "Docker Hub sign-in").get("access_token")
            if not isinstance(token, str) or not token:
                raise InvalidResponse("Docker Hub sign-in: no access_token in the answer")
            with _SIGN_INS_LOCK:
                _SIGN_INS[key] = (token, time.monotonic())
            return token

    async def call(
        self, method: str, path: str, params: dict[str, str | int] | None = None
    ) -> httpx.Response:
        """One request with the access token, signed in again once if it expired."""
        token = await self._token()
        response = await self.send(method, path, params, headers=_bearer(token))
        if response.status_code == 401:
            token = await self._token(stale=token)
            response = await self.send(method, path, params, headers=_bearer(token))
        return response

    async def repositories(self, namespace: str) -> list[str]:
        """Every repository of `namespace` (`namespace/name`)."""
        found: list[str] = []
        what = f"Docker Hub namespace {namespace}"
        path = f"/v2/namespaces/{quote(namespace, safe='')}/repositories"
        for item in await self.results(path, what):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                raise InvalidResponse(f"{what}: a repository without a name")
            found.append(f"{namespace}/{name}")
        return found

    async def results(self, path: str, what: str) -> list[Any]:
        """Every item of the `results` of each page of `path`, following `next` (at most
        MAX_PAGES pages)."""
        found: list[Any] = []
        page = 1
        while True:
            response = await self.call("GET", path, {"page_size": PAGE_SIZE, "page": page})
            self.raise_for(response, what)
            body = _json(response, what)
            results = body.get("results")
            if not isinstance(results, list):
                raise InvalidResponse(f"{what}: no results list")
            found += results
            if not body.get("next"):
                return found
            if page >= MAX_PAGES:
                raise InvalidResponse(f"{what}: more than {MAX_PAGES:,} pages")
            page += 1

    async def immutable_tags(self, repository: str) -> ImmutableTags:
        """The repository's immutable-tag settings (read once a run)."""
        if repository not in self._settings:
            namespace, name = _quoted(repository)
            response = await self.call("GET", f"/v2/namespaces/{namespace}/repositories/{name}")
            self.raise_for(response, repository)
            settings = _json(response, repository).get("immutable_tags_settings") or {}
            if not isinstance(settings, dict):
                raise InvalidResponse(f"{repository}: immutable_tags_settings is not an object")
            rules = settings.get("rules") or []
            if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
                raise InvalidResponse(f"{repository}: immutable tag rules are not strings")
            self._settings[repository] = ImmutableTags(
                settings.get("enabled") is True, tuple(rules)
            )
        return self._settings[repository]

    async def tag_pushes(self, repository: str) -> dict[str, datetime]:
        """digest -> its newest push time of every tag (the tag's manifest, and each platform
        image under it) in `repository`."""
        namespace, name = _quoted(repository)
        path = f"/v2/namespaces/{namespace}/repositories/{name}/tags"
        found: dict[str, datetime] = {}

        def add(digest: object, value: object) -> None:
            if isinstance(digest, str) and digest:
                when = vendor_time(value, f"{repository}@{digest} push time")
                if when is not None and (digest not in found or when > found[digest]):
                    found[digest] = when

        what = f"{repository} tags"
        results = await self.results(path, what)
        if not all(isinstance(tag, dict) for tag in results):
            raise InvalidResponse(f"{what}: no results list")
        for tag in results:
            add(tag.get("digest"), tag.get("tag_last_pushed"))
            for image in tag.get("images") or []:
                if isinstance(image, dict):
                    add(image.get("digest"), image.get("last_pushed"))
        return found

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Delete one tag; False when it was gone."""
        namespace, name = _quoted(repository)
        path = f"/v2/repositories/{namespace}/{name}/tags/{quote(tag, safe='')}/"
        return self.deleted(await self.call("DELETE", path), f"{repository}:{tag}")


class DockerHub(Vendor):
    """Docker Hub: repositories by namespace, immutable tags protected, images deleted by
    their tags through the Hub API (see the module's docstring)."""

    name = "dockerhub"
    protects = True
    tag_api = "Docker Hub's Hub API"
    counts_pulls = True
    push_times = "Docker Hub tag_last_pushed"

    detect = re.compile(r"(^|\.)docker\.io(:443)?$")
    default_api = HUB_API
    has_api = True

    lists = "Docker Hub's Hub API, by namespace ({api})"
    deletes = (
        "Docker Hub's Hub API ({api}): each image's tags; the untagged manifest is left to "
        "Docker Hub"
    )

    def __init__(self, client: RegistryClient, api: str = "") -> None:
        super().__init__(client)
        self.hub = HubApi(api or self.default_api)
        self.api = self.hub.api

    async def aclose(self) -> None:
        await self.hub.aclose()

    async def repositories(self, globs: list[str]) -> list[str]:
        names: list[str] = []
        for namespace in sorted({glob.split("/", 1)[0] for glob in globs}):
            if is_glob(namespace):
                raise ConfigError(
                    "registry.repositories",
                    f"Docker Hub lists repositories by namespace: {namespace!r} must name one "
                    "(acme/*, not */app)",
                )
            names += await self.hub.repositories(namespace)
        return names

    async def pushed(self, repository: str, tags: list[str]) -> dict[str, datetime]:
        return await self.hub.tag_pushes(repository)

    async def protected(self, repository: str, tags: list[str]) -> list[Protection]:
        settings = await self.hub.immutable_tags(repository)
        return [(tag, "", why) for tag in tags if (why := settings.why(tag))]

    def cannot_delete(self, tags: tuple[str, ...]) -> str:
        if tags:
            return ""
        return "Docker Hub deletes tags, not manifests: this untagged one is left to Docker Hub"

    async def delete_image(self, repository: str, digest: str, tags: tuple[str, ...]) -> bool:
        """Every tag through the Hub API; the manifest, untagged, stays with Docker Hub.
        False when every tag was gone already."""
        existed = [await self.hub.delete_tag(repository, tag) for tag in tags]
        return any(existed)

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        raise DeleteUnsupported(
            f"{repository}@{digest}: Docker Hub deletes tags, not manifests by digest"
        )

    async def delete_tag(self, repository: str, tag: str) -> bool:
        return await self.hub.delete_tag(repository, tag)

    async def deletes_tags(self, repository: str) -> bool:
        return True

    async def check_deletes(self, repository: str) -> tuple[bool, str] | None:
        """Signing in and reading the repository's settings shows the credentials are
        accepted by the Hub API; whether they may delete is only known when they do."""
        try:
            settings = await self.hub.immutable_tags(repository)
        except RegistryError as exc:
            return False, f"Docker Hub's Hub API: {exc}"
        immutable = "immutable tags on" if settings.enabled else "no immutable tags"
        return True, (
            f"through Docker Hub's Hub API ({self.api}): signed in, {repository} read "
            f"({immutable}); deleting needs a token with delete access"
        )


def _quoted(repository: str) -> tuple[str, str]:
    namespace, name = split_repository(repository)
    return quote(namespace, safe=""), quote(name, safe="")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise InvalidResponse(f"{what}: Docker Hub answered something that is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidResponse(f"{what}: Docker Hub answered something that is not an object")
    return body
