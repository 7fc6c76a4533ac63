"""GitHub Packages' REST API for container images (ghcr.io): list, delete and restore
package versions.

GHCR serves the OCI API for reads and pushes but answers DELETE of a manifest with 405; a
manifest is a *package version* (id, `name` = its digest, `metadata.container.tags`,
`created_at`) of the package named by the repository without its owner
(`ghcr.io/acme/team/app` is package `team/app` of owner `acme`, an organisation or a
user), and deleting the version deletes the manifest with its tags. GitHub keeps a deleted
version 30 days; `restore_version` brings it back with its tags. A version's `created_at`
(its first push) is its push time for the registry policies.

Endpoints (GitHub's REST description, API version 2022-11-28), under `/orgs/{org}` or
`/users/{user}` (tried in that order, per owner):
    GET    .../packages/container/{package}/versions?per_page=100&page=N   (Link: rel="next")
    DELETE .../packages/container/{package}/versions/{id}                  204
    POST   .../packages/container/{package}/versions/{id}/restore          204
A token (classic PAT with read:packages and delete:packages) comes from
REGSWEEP_GITHUB_TOKEN. Rate limits are waited out as GitHub documents them
(`tasks.registry.vendors.rest`).
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from tasks.core.errors import ConfigError
from tasks.core.reference import is_digest
from tasks.registry.errors import InvalidResponse, NotFound, RegistryError
from tasks.registry.vendors.base import Vendor, vendor_time
from tasks.registry.vendors.rest import VendorHttp

if TYPE_CHECKING:
    from tasks.registry.client import RegistryClient

TOKEN_VARIABLE = "REGSWEEP_GITHUB_TOKEN"
# A GitHub API other than api.github.com (Enterprise Server) that `regsweep restore` may
# send the token to when a ledger names it (`trusted_api`).
GITHUB_API_VARIABLE = "REGSWEEP_GITHUB_API"
API_VERSION = "2022-11-28"
PER_PAGE = 100


@dataclass(frozen=True)
class PackageVersion:
    id: int
    digest: str
    tags: tuple[str, ...]
    created: str


def split_package(repository: str) -> tuple[str, str]:
    """(owner, package name) of a GHCR repository `owner/name[/more]`."""
    owner, _, name = repository.partition("/")
    if not owner or not name:
        raise ValueError(f"{repository!r} is not owner/package (a GHCR repository)")
    return owner, name


class GitHubPackages(VendorHttp):
    """The container package versions of one GitHub API (`api`: https://api.github.com)."""

    name = "GitHub"
    token_variable = TOKEN_VARIABLE
    token_hint = f"set {TOKEN_VARIABLE} to a token with read:packages and delete:packages"

    def start(self) -> None:
        self._scopes: dict[str, str] = {}  # owner -> "orgs/acme" or "users/acme"
        self._versions: dict[str, dict[str, PackageVersion]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def headers(self, token: str) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        return headers | ({"Authorization": f"Bearer {token}"} if token else {})

    async def _scope(self, owner: str, package: str) -> str:
        """`orgs/{owner}` or `users/{owner}`: whichever has the package."""
        if owner in self._scopes:
            return self._scopes[owner]
        for scope in (f"orgs/{owner}", f"users/{owner}"):
            path = f"/{scope}/packages/container/{quote(package, safe='')}/versions"
            response = await self.send("GET", path, {"per_page": 1})
            if response.status_code != 404:
                self.raise_for(response, f"{owner}/{package}")
                self._scopes[owner] = scope
                return scope
        raise NotFound(f"{owner}/{package}: no such container package for an org or a user")

    async def _base(self, repository: str) -> str:
        owner, package = split_package(repository)
        scope = await self._scope(owner, package)
        return f"/{scope}/packages/container/{quote(package, safe='')}/versions"

    async def list_versions(
        self, repository: str, pages: int | None = None
    ) -> list[PackageVersion]:
        """Every active version of the package, every page (or the first `pages`)."""
        base = await self._base(repository)
        found: list[PackageVersion] = []
        page = 1
        while True:
            response = await self.send("GET", base, {"per_page": PER_PAGE, "page": page})
            self.raise_for(response, repository)
            body = response.json()
            if not isinstance(body, list):
                raise InvalidResponse(f"{repository}: versions are not a list")
            for item in body:
                found.append(_version(repository, item))
            if 'rel="next"' not in response.headers.get("link", "") or page == pages:
                return found
            page += 1

    async def version_of(self, repository: str, digest: str) -> PackageVersion | None:
        """The version whose digest is `digest`: listed once per repository; on a miss (a
        manifest pushed since, such as an untag placeholder) the first page again, where
        GitHub puts the newest versions, and only then every page (a relist per miss was
        O(misses x pages) on a large package). The order is not in GitHub's REST
        description: if it changed, a miss would cost one page more, never a wrong answer."""
        lock = self._locks.setdefault(repository, asyncio.Lock())
        async with lock:
            known = self._versions.get(repository)
            if known is None:  # listed just now: a miss is gone
                known = {v.digest: v for v in await self.list_versions(repository)}
                self._versions[repository] = known
                return known.get(digest)
            for pages in (1, None):
                if digest in known:
                    return known[digest]
                fresh = await self.list_versions(repository, pages)
                if pages is None:  # every page: what is not listed is gone
                    known.clear()
                known.update((v.digest, v) for v in fresh)
            return known.get(digest)

    async def delete_version(self, repository: str, digest: str) -> int | None:
        """Delete the version of `digest`; return its id, or None when it was gone."""
        version = await self.version_of(repository, digest)
        if version is None:
            return None
        base = await self._base(repository)
        response = await self.send("DELETE", f"{base}/{version.id}")
        if not self.deleted(response, f"{repository}@{digest} (version {version.id})"):
            return None
        self._versions[repository].pop(digest, None)
        return version.id

    async def restore_version(self, repository: str, version_id: int) -> None:
        """Restore a version deleted in the last 30 days, with its tags."""
        base = await self._base(repository)
        response = await self.send("POST", f"{base}/{version_id}/restore")
        self.raise_for(response, f"{repository} version {version_id}")


def _version(repository: str, item: object) -> PackageVersion:
    if not isinstance(item, dict):
        raise InvalidResponse(f"{repository}: a version is not an object")
    digest, version_id = item.get("name"), item.get("id")
    if not isinstance(digest, str) or not is_digest(digest) or not isinstance(version_id, int):
        raise InvalidResponse(f"{repository}: a version without an id or a digest name")
    container = (item.get("metadata") or {}).get("container") or {}
    tags = container.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidResponse(f"{repository}@{digest}: tags are not a list of names")
    return PackageVersion(version_id, digest, tuple(tags), str(item.get("created_at") or ""))


class GitHub(Vendor):
    """GitHub Packages: a manifest is deleted as its package version (the ledger keeps the
    version id, for `regsweep restore` within GitHub's 30 days)."""

    name = "github"
    push_times = "GitHub created_at"

    detect = re.compile(r"^ghcr\.io(:443)?$")
    restores_versions = True
    default_api = "https://api.github.com"
    has_api = True

    deletes = "GitHub's packages REST API ({api})"

    def __init__(self, client: RegistryClient, api: str = "") -> None:
        super().__init__(client)
        self.packages = GitHubPackages(api or self.default_api)
        self.api = self.packages.api

    async def aclose(self) -> None:
        await self.packages.aclose()

    @classmethod
    def for_restore(cls, client: RegistryClient, api: str) -> GitHub:
        return cls(client, trusted_api(api))

    async def restore_version(self, repository: str, vendor_id: str) -> None:
        await self.packages.restore_version(repository, int(vendor_id))

    async def pushed(self, repository: str, tags: list[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for version in await self.packages.list_versions(repository):
            when = vendor_time(version.created, f"{repository}@{version.digest} created_at")
            if when is not None:
                found[version.digest] = when
        return found

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        return await self.packages.delete_version(repository, digest) is not None

    async def check_deletes(self, repository: str) -> tuple[bool, str] | None:
        """Listing the package's versions shows the token is accepted (ghcr.io answers 405
        to a DELETE of a manifest). Whether it may delete is only known when it does
        (GitHub has no dry run): the token needs delete:packages."""
        try:
            versions = await self.packages.list_versions(repository)
        except RegistryError as exc:
            return False, f"GitHub packages API: {exc}"
        return True, (
            f"through GitHub's packages API ({self.api}): token accepted, {len(versions)} "
            f"versions of {repository}; deleting needs delete:packages"
        )

    async def ledger_id(self, repository: str, digest: str) -> str:
        version = await self.packages.version_of(repository, digest)
        return "" if version is None else str(version.id)


def trusted_api(url: str) -> str:
    """`url` if regsweep may send the GitHub token there: https://api.github.com, or the API
    REGSWEEP_GITHUB_API names (GitHub Enterprise Server). A ledger is a file anyone with
    write access could edit: it must not be able to send the token elsewhere."""
    trusted = {GitHub.default_api, os.environ.get(GITHUB_API_VARIABLE, "").rstrip("/")}
    if url.rstrip("/") not in trusted - {""}:
        raise ConfigError(
            GITHUB_API_VARIABLE,
            f"the ledger names the GitHub API {url!r}: set {GITHUB_API_VARIABLE}={url} to "
            "trust it with the token",
        )
    return url.rstrip("/")
