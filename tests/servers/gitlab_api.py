"""A loopback fake of GitLab's container registry API (REST v4), over a real registry.

No GitLab runs here, so this follows GitLab's published API documentation ("Container
registry API", "Container registry protection tag rules API") for what regsweep uses, and
every answer is held to GitLab's OpenAPI description (tests/contracts/descriptions/gitlab.yaml):

    GET    /api/v4/projects/:id-or-path                                  {id, path_with_namespace}
    GET    /api/v4/projects/:id/registry/repositories?per_page=&page=    [{id, name, path,
           project_id, location, created_at}], `X-Next-Page` while more follow
    GET    /api/v4/groups/:id-or-path/registry/repositories              the same, group-wide
    GET    /api/v4/projects/:id/registry/repositories/:rid/tags/:tag     {name, path, location,
           revision, short_revision, digest, created_at (when the real registry last
           pointed the tag), total_size}; 404 unknown
    DELETE /api/v4/projects/:id/registry/repositories/:rid/tags/:tag     200; 404 unknown;
           403 for a protected tag
    GET    /api/v4/projects/:id/registry/protection/tag/rules            [{id, project_id,
           tag_name_pattern, minimum_access_level_for_push, minimum_access_level_for_delete}]

with `PRIVATE-TOKEN` (401 `401 Unauthorized` otherwise) and a 429 with `Retry-After` on
demand (`limit_every`). Repositories and tags are the real registry's (its storage layout);
a tag delete removes the tag there, leaving the manifest untagged, as GitLab's does. As on
GitLab.com, the OCI side (`oci()`, a proxy) serves no `/v2/_catalog`. Every API request is
recorded in `requests`.
"""

from __future__ import annotations

import json
import re
import shutil
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.json_api import VendorApiFake, json_answer
from tests.servers.storage_view import tag_pushed_at


def repository_id(path: str) -> int:
    return zlib.crc32(path.encode()) % 1_000_000 + 1


@dataclass
class GitLabFake(VendorApiFake):
    description = "gitlab"  # every answer is held to GitLab's OpenAPI v2 description
    token: str
    projects: dict[str, int]  # project path -> id
    rules: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # project id -> rules
    rules_denied: bool = False  # the token may not read the protection rules: 403
    bad_times: set[str] = field(default_factory=set)  # tags whose details carry no real time

    def oci(self) -> RegistryProxy:
        def no_catalog(method: str, path: str, headers: dict[str, str]) -> Answer | None:
            if path.startswith("/v2/_catalog"):
                body = {"errors": [{"code": "UNSUPPORTED", "message": "no catalog"}]}
                return 404, {"Content-Type": "application/json"}, json.dumps(body).encode()
            return None

        return RegistryProxy(self.registry.url, intercept=no_catalog)

    def _repositories(self, project: str) -> list[dict[str, Any]]:
        found = []
        for manifests in sorted(self.root().glob("**/_manifests")):
            path = str(manifests.parent.relative_to(self.root()))
            if path != project and not path.startswith(project + "/"):
                continue
            found.append(
                {
                    "id": repository_id(path),
                    "name": path[len(project) + 1 :],
                    "path": path,
                    "project_id": self.projects[project],
                    "location": f"{self.registry.host}/{path}",
                    "created_at": "2026-01-01T00:00:00.000Z",
                }
            )
        return found

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        limited = self.note_request(method, parts.path)
        if headers.get("private-token") != self.token:
            return json_answer(401, {"message": "401 Unauthorized"})
        if limited:
            return json_answer(429, {"message": "Retry later"}, {"Retry-After": "1"})
        segments = [unquote(s) for s in parts.path.split("/")[3:]]  # after /api/v4/
        query = parse_qs(parts.query)
        by_id = {pid: path for path, pid in self.projects.items()}
        if len(segments) >= 2 and segments[0] == "projects":
            key = segments[1]
            project = by_id.get(int(key)) if key.isdigit() else key
            if project not in self.projects:
                return json_answer(404, {"message": "404 Project Not Found"})
            pid = self.projects[project]
            rest = segments[2:]
            if method == "GET" and not rest:
                return json_answer(200, {"id": pid, "path_with_namespace": project})
            if method == "GET" and rest == ["registry", "repositories"]:
                return _page(self._repositories(project), query)
            if method == "GET" and rest == ["registry", "protection", "tag", "rules"]:
                if self.rules_denied:
                    return json_answer(403, {"message": "403 Forbidden"})
                return json_answer(200, self.rules.get(pid, []))
            if (
                method == "GET"
                and len(rest) == 5
                and rest[:2] == ["registry", "repositories"]
                and rest[3] == "tags"
            ):
                return self._tag(project, int(rest[2]), rest[4])
            if (
                method == "DELETE"
                and len(rest) == 5
                and rest[:2] == ["registry", "repositories"]
                and rest[3] == "tags"
            ):
                return self._delete_tag(project, int(rest[2]), rest[4])
        if (
            len(segments) == 4
            and segments[0] == "groups"
            and segments[2:] == ["registry", "repositories"]
        ):
            group = segments[1]
            repositories = [
                r
                for project in sorted(self.projects)
                if project.startswith(group + "/")
                for r in self._repositories(project)
            ]
            return _page(repositories, query)
        return json_answer(404, {"message": "404 Not Found"})

    def _tag(self, project: str, rid: int, tag: str) -> Answer:
        repository = next((r for r in self._repositories(project) if r["id"] == rid), None)
        if repository is None:
            return json_answer(404, {"message": "404 Repository Not Found"})
        link = self.root() / repository["path"] / "_manifests" / "tags" / tag / "current" / "link"
        if not link.is_file():
            return json_answer(404, {"message": "404 Tag Not Found"})
        digest = link.read_text().strip()
        when = tag_pushed_at(self.registry, repository["path"], tag)
        return json_answer(
            200,
            {
                "name": tag,
                "path": f"{repository['path']}:{tag}",
                "location": f"{self.registry.host}/{repository['path']}:{tag}",
                "revision": digest.removeprefix("sha256:"),
                "short_revision": digest.removeprefix("sha256:")[:9],
                "digest": digest,
                "created_at": "soon"
                if tag in self.bad_times
                else when.isoformat(timespec="milliseconds"),
                "total_size": 0,
            },
        )

    def _delete_tag(self, project: str, rid: int, tag: str) -> Answer:
        repository = next((r for r in self._repositories(project) if r["id"] == rid), None)
        if repository is None:
            return json_answer(404, {"message": "404 Repository Not Found"})
        for rule in self.rules.get(self.projects[project], []):
            if re.search(rule["tag_name_pattern"], tag):
                return json_answer(403, {"message": "403 Forbidden - protected tag"})
        directory = self.root() / repository["path"] / "_manifests" / "tags" / tag
        if not directory.is_dir():
            return json_answer(404, {"message": "404 Tag Not Found"})
        shutil.rmtree(directory)
        return json_answer(200, {})


def _page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> Answer:
    per_page = min(int(query.get("per_page", ["20"])[0]), 100)
    page = int(query.get("page", ["1"])[0])
    chunk = items[(page - 1) * per_page : page * per_page]
    following = str(page + 1) if page * per_page < len(items) else ""
    return json_answer(200, chunk, {"X-Next-Page": following, "X-Page": str(page)})
