"""GitLab's container registry API: repositories, tag deletion, protected tags and push times.

A GitLab registry repository is `<project path>[/<image name>]`; the API knows it by the
project's id and its own repository id. Endpoints (GitLab's REST API v4, documented under
"Container registry API" and "Container registry protection tag rules API"):

    GET    /projects/:path                                          the project (its id)
    GET    /projects/:id/registry/repositories?per_page=100&page=N  its repositories
    GET    /groups/:path/registry/repositories?per_page=100&page=N  a group's (catalog)
    GET    /projects/:id/registry/repositories/:rid/tags/:tag       {name, digest,
           created_at, ...}: a tag's push time (a request per tag; only where a registry
           policy's push rule needs it)
    DELETE /projects/:id/registry/repositories/:rid/tags/:tag       one tag, fast
    GET    /projects/:id/registry/protection/tag/rules             protected tags (RE2)

Pages follow `X-Next-Page`. The token (a personal, project or group access token with the
`api` scope) comes from REGSWEEP_GITLAB_TOKEN and is sent as `PRIVATE-TOKEN`; it is not the
registry's JWT, which the OCI side gets as usual. Rate limits: `tasks.registry.vendors.rest`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from tasks.core.aio import for_each
from tasks.registry.errors import InvalidResponse, NotFound, RegistryError
from tasks.registry.vendors.base import Protection, Vendor, vendor_time
from tasks.registry.vendors.rest import VendorHttp

if TYPE_CHECKING:
    from tasks.registry.client import RegistryClient

TOKEN_VARIABLE = "REGSWEEP_GITLAB_TOKEN"
GITLAB_COM_API = "https://gitlab.com/api/v4"  # registry.gitlab.com; self-managed: registry.api
PER_PAGE = 100
TAG_DETAILS_AT_ONCE = 8  # tag detail requests in flight per repository


@dataclass(frozen=True)
class ProtectionRule:
    pattern: str  # RE2 syntax; Python's re reads the patterns GitLab shows
    minimum_access_level_for_delete: str

    def protects(self, tag: str) -> bool:
        try:
            return re.search(self.pattern, tag) is not None
        except re.error:  # a pattern Python cannot read: protected, to be safe
            return True


class GitLabRegistry(VendorHttp):
    """The container registry API of one GitLab (`api`: https://gitlab.com/api/v4)."""

    name = "GitLab"
    token_variable = TOKEN_VARIABLE
    token_hint = f"set {TOKEN_VARIABLE} to a token with the api scope"

    def start(self) -> None:
        self._ids: dict[str, tuple[int, int]] = {}  # repository path -> (project, repository)
        self._rules: dict[int, list[ProtectionRule]] = {}
        self._lock = asyncio.Lock()

    def headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token} if token else {}

    async def _pages(self, path: str, what: str) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        page = 1
        while True:
            response = await self.send("GET", path, {"per_page": PER_PAGE, "page": page})
            self.raise_for(response, what)
            body = response.json()
            if not isinstance(body, list) or not all(isinstance(x, dict) for x in body):
                raise InvalidResponse(f"{what}: GitLab answered something that is not a list")
            found += body
            following = response.headers.get("x-next-page", "")
            if not following.isdigit():
                return found
            page = int(following)

    def _remember(self, repositories: list[dict[str, object]]) -> list[str]:
        paths = []
        for item in repositories:
            path, project, rid = item.get("path"), item.get("project_id"), item.get("id")
            if isinstance(path, str) and isinstance(project, int) and isinstance(rid, int):
                self._ids[path] = (project, rid)
                paths.append(path)
        return paths

    async def group_repositories(self, group: str) -> list[str]:
        """Every registry repository in the projects of `group` (the catalog GitLab.com
        does not serve)."""
        what = f"group {group}"
        return self._remember(
            await self._pages(f"/groups/{quote(group, safe='')}/registry/repositories", what)
        )

    async def ids(self, repository: str) -> tuple[int, int]:
        """(project id, repository id) of `repository`: the project is the longest prefix
        of its path that GitLab knows as a project."""
        async with self._lock:
            if repository in self._ids:
                return self._ids[repository]
            parts = repository.split("/")
            for end in range(len(parts), 1, -1):
                project = "/".join(parts[:end])
                response = await self.send("GET", f"/projects/{quote(project, safe='')}")
                if response.status_code == 404:
                    continue
                self.raise_for(response, f"project {project}")
                pid = response.json().get("id")
                if not isinstance(pid, int):
                    raise InvalidResponse(f"project {project}: no id")
                self._remember(await self._pages(f"/projects/{pid}/registry/repositories", project))
                if repository in self._ids:
                    return self._ids[repository]
            raise NotFound(f"{repository}: no GitLab project has this registry repository")

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Delete one tag; False when it was gone. A protected tag is refused (403)."""
        project, rid = await self.ids(repository)
        path = f"/projects/{project}/registry/repositories/{rid}/tags/{quote(tag, safe='')}"
        return self.deleted(await self.send("DELETE", path), f"{repository}:{tag}")

    async def tag_pushes(self, repository: str, tags: list[str]) -> dict[str, datetime]:
        """digest -> the newest `created_at` of its tags among `tags` (GitLab's tag details,
        TAG_DETAILS_AT_ONCE requests at a time; a tag deleted since is skipped)."""
        project, rid = await self.ids(repository)
        found: dict[str, datetime] = {}
        failed: list[RegistryError] = []  # the first failure stops the other workers

        async def read(tag: str) -> None:
            if failed:
                return
            path = f"/projects/{project}/registry/repositories/{rid}/tags/{quote(tag, safe='')}"
            try:
                response = await self.send("GET", path)
                if response.status_code == 404:
                    return
                self.raise_for(response, f"{repository}:{tag}")
                try:
                    body = response.json()
                except ValueError:
                    raise InvalidResponse(f"{repository}:{tag}: tag details not JSON") from None
                digest = body.get("digest") if isinstance(body, dict) else None
                if not isinstance(digest, str) or not digest:
                    raise InvalidResponse(f"{repository}:{tag}: tag details without a digest")
                when = vendor_time(body.get("created_at"), f"{repository}:{tag} created_at")
            except RegistryError as exc:
                failed.append(exc)
                return
            if when is not None and (digest not in found or when > found[digest]):
                found[digest] = when

        await for_each(tags, read, TAG_DETAILS_AT_ONCE)
        if failed:
            raise failed[0]
        return found

    async def protection_rules(self, repository: str) -> list[ProtectionRule]:
        """The project's protected-tag rules (none where the GitLab has no such API)."""
        project, _ = await self.ids(repository)
        if project not in self._rules:
            path = f"/projects/{project}/registry/protection/tag/rules"
            response = await self.send("GET", path)
            if response.status_code == 404:  # older GitLab: no tag protection
                self._rules[project] = []
            else:
                self.raise_for(response, f"{repository}: protected tag rules")
                body = response.json()
                if not isinstance(body, list):
                    raise InvalidResponse(f"{repository}: protected tag rules are not a list")
                self._rules[project] = [
                    ProtectionRule(
                        str(r.get("tag_name_pattern", "")),
                        str(r.get("minimum_access_level_for_delete", "")),
                    )
                    for r in body
                    if isinstance(r, dict) and r.get("tag_name_pattern")
                ]
        return self._rules[project]


class GitLab(Vendor):
    """GitLab with its API (`registry.api`): repositories by group (GitLab.com serves no
    catalog), tags deleted through the API (fast), its protected tags kept."""

    name = "gitlab"
    protects = True
    push_times = "GitLab created_at"
    tag_api = "GitLab's registry API"

    detect = re.compile(r"(^registry\.gitlab\.com$|gitlab)")
    has_api = True

    @classmethod
    def api_for(cls, configured: str, host: str) -> str:
        if not configured and host == "registry.gitlab.com":
            return GITLAB_COM_API
        return super().api_for(configured, host)

    @classmethod
    def serves(cls, api: str) -> bool:
        return bool(api)  # without its API, GitLab's registry is read and deleted as OCI

    @classmethod
    def advice(cls, api: str) -> str:
        return "" if api else "set registry.api (https://<gitlab>/api/v4) to use GitLab's API"

    lists = "GitLab's registry API, by group ({api})"
    deletes = (
        "GitLab's registry API for the tags ({api}), then the OCI API for the untagged manifest"
    )

    def __init__(self, client: RegistryClient, api: str = "") -> None:
        super().__init__(client)
        self.gitlab = GitLabRegistry(api)
        self.api = api

    async def aclose(self) -> None:
        await self.gitlab.aclose()

    async def repositories(self, globs: list[str]) -> list[str]:
        names: list[str] = []
        for group in sorted({glob.split("/", 1)[0] for glob in globs}):
            names += await self.gitlab.group_repositories(group)
        return names

    async def protected(self, repository: str, tags: list[str]) -> list[Protection]:
        rules = await self.gitlab.protection_rules(repository)
        found: list[Protection] = []
        for tag in tags:
            rule = next((r for r in rules if r.protects(tag)), None)
            if rule is not None:
                level = rule.minimum_access_level_for_delete
                found.append(
                    (tag, "", f"GitLab protection rule /{rule.pattern}/ (delete: {level})")
                )
        return found

    async def pushed(self, repository: str, tags: list[str]) -> dict[str, datetime]:
        return await self.gitlab.tag_pushes(repository, tags)

    async def delete_image(self, repository: str, digest: str, tags: tuple[str, ...]) -> bool:
        """The tags through GitLab's API first (a fraction of a second each, where the
        registry API took minutes on large repositories), then the untagged manifest."""
        for tag in tags:
            await self.gitlab.delete_tag(repository, tag)
        return await self.delete_manifest(repository, digest)

    async def delete_tag(self, repository: str, tag: str) -> bool:
        return await self.gitlab.delete_tag(repository, tag)

    async def deletes_tags(self, repository: str) -> bool:
        return True
