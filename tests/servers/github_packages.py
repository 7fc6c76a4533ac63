"""A loopback fake of GitHub Packages for container images, over a real registry.

No GitHub runs here, so this follows GitHub's published REST description (API version
2022-11-28, "REST API endpoints for packages"; every answer is held to it,
tests/contracts/descriptions/github.yaml) for what regsweep uses, under `/orgs/{org}` or
`/users/{user}`:

    GET    .../packages/container/{package}/versions?per_page=&page=   a page of versions,
           newest first: {id, name (the digest), created_at, metadata: {package_type:
           container, container: {tags}}}; `Link: <...>; rel="next"` while more follow
    DELETE .../packages/container/{package}/versions/{id}             204; 404 unknown;
           400 for the last tagged version ("You must delete the package instead")
    POST   .../packages/container/{package}/versions/{id}/restore     204 within 30 days

with a bearer token (401 `Bad credentials` otherwise), 404 under the wrong kind of owner,
and GitHub's secondary rate limit on demand: every `limit_every`-th request answers 403
with `retry-after: 1` and "You have exceeded a secondary rate limit". The versions are the
real registry's manifests (read from its storage layout), so the OCI side (`oci`, a proxy
in front of the registry) and the REST side agree; as on ghcr.io the OCI side refuses
DELETE of a manifest (405 UNSUPPORTED). Every request is recorded in `requests`.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tasks.core import mediatypes
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.json_api import VendorApiFake, json_answer

LAST_TAGGED = (
    "You cannot delete the last tagged version of a package. You must delete the package instead."
)


def version_id(digest: str) -> int:
    return zlib.crc32(digest.encode()) + 1_000_000_000


@dataclass
class _Deleted:
    repository: str
    digest: str
    raw: bytes
    media_type: str
    tags: list[str]
    at: float


@dataclass
class GitHubPackagesFake(VendorApiFake):
    description = "github"  # every answer is held to GitHub's REST description
    token: str
    owners: dict[str, str]  # owner -> "orgs" or "users"
    deleted: dict[int, _Deleted] = field(default_factory=dict)

    def oci(self) -> RegistryProxy:
        """The registry as ghcr.io serves it: everything but DELETE of a manifest."""

        def refuse(method: str, path: str, headers: dict[str, str]) -> Answer | None:
            if method == "DELETE" and "/manifests/" in path:
                body = {"errors": [{"code": "UNSUPPORTED", "message": "delete via the API"}]}
                return 405, {"Content-Type": "application/json"}, json.dumps(body).encode()
            return None

        return RegistryProxy(self.registry.url, intercept=refuse)

    # -- the registry's manifests, from its storage layout --------------------------------
    def _repo_dir(self, repository: str) -> Path:
        return self.root() / repository / "_manifests"

    def _versions(self, repository: str) -> list[dict[str, Any]]:
        base = self._repo_dir(repository)
        owner, _, name = repository.partition("/")
        scope, package = self.owners.get(owner, "users"), quote(name, safe="")
        tags: dict[str, list[str]] = {}
        for link in sorted((base / "tags").glob("*/current/link")):
            tags.setdefault(link.read_text().strip(), []).append(link.parent.parent.name)
        found = []
        pushed: dict[str, int] = {}  # digest -> when, to the nanosecond: newest first
        for link in (base / "revisions" / "sha256").glob("*/link"):
            digest = "sha256:" + link.parent.name
            pushed[digest] = link.stat().st_mtime_ns
            created = datetime.fromtimestamp(link.stat().st_mtime, UTC)
            found.append(
                {
                    "id": version_id(digest),
                    "name": digest,
                    "url": f"{self.url}/{scope}/{owner}/packages/container/{package}"
                    f"/versions/{version_id(digest)}",
                    "package_html_url": f"https://github.com/{owner}/packages/container/"
                    f"package/{package}",
                    "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "updated_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "metadata": {
                        "package_type": "container",
                        "container": {"tags": sorted(tags.get(digest, []))},
                    },
                }
            )
        return sorted(found, key=lambda v: (pushed[v["name"]], v["name"]), reverse=True)

    # -- the REST API -----------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        limited = self.note_request(method, urlsplit(target).path)
        if headers.get("authorization") != f"Bearer {self.token}":
            return json_answer(401, {"message": "Bad credentials"})
        if limited:
            message = "You have exceeded a secondary rate limit. Please wait a few minutes."
            return json_answer(403, {"message": message}, {"retry-after": "1"})
        parts = urlsplit(target)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        # {orgs|users}/{owner}/packages/container/{package}/versions[/{id}[/restore]]
        if len(segments) < 6 or segments[2:4] != ["packages", "container"]:
            return json_answer(404, {"message": "Not Found"})
        scope, owner, package = segments[0], segments[1], segments[4]
        if self.owners.get(owner) != scope or segments[5] != "versions":
            return json_answer(404, {"message": "Not Found"})
        repository = f"{owner}/{package}"
        rest = segments[6:]
        if method == "GET" and not rest:
            return self._list(repository, parts.path, parse_qs(parts.query))
        if method == "DELETE" and len(rest) == 1 and rest[0].isdigit():
            return self._delete(repository, int(rest[0]))
        if method == "POST" and len(rest) == 2 and rest[1] == "restore" and rest[0].isdigit():
            return self._restore(int(rest[0]))
        return json_answer(404, {"message": "Not Found"})

    def _list(self, repository: str, path: str, query: dict[str, list[str]]) -> Answer:
        versions = self._versions(repository)
        if not versions and not self._repo_dir(repository).exists():
            return json_answer(404, {"message": "Package not found."})
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        chunk = versions[(page - 1) * per_page : page * per_page]
        extra = {}
        if page * per_page < len(versions):
            extra["link"] = f'<{self.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"'
        return json_answer(200, chunk, extra)

    def _delete(self, repository: str, vid: int) -> Answer:
        versions = {v["id"]: v for v in self._versions(repository)}
        version = versions.get(vid)
        if version is None:
            return json_answer(404, {"message": "Not Found"})
        tags = version["metadata"]["container"]["tags"]
        tagged = [v for v in versions.values() if v["metadata"]["container"]["tags"]]
        if tags and len(tagged) == 1:
            return json_answer(400, {"message": LAST_TAGGED})
        digest = version["name"]
        status, answer, raw = self.registry_request(
            "GET", f"/v2/{repository}/manifests/{digest}", Accept=mediatypes.ACCEPT
        )
        assert status == 200, (status, raw)
        media_type = answer.get("Content-Type", mediatypes.OCI_MANIFEST)
        self.deleted[vid] = _Deleted(repository, digest, raw, media_type, tags, time.time())
        status, _, _ = self.registry_request("DELETE", f"/v2/{repository}/manifests/{digest}")
        assert status == 202, status
        return 204, {}, b""

    def _restore(self, vid: int) -> Answer:
        gone = self.deleted.get(vid)
        if gone is None or time.time() - gone.at > 30 * 86400:
            return json_answer(404, {"message": "Not Found"})
        for reference in [gone.digest, *gone.tags]:
            path = f"/v2/{gone.repository}/manifests/{reference}"
            status, _, body = self.registry_request(
                "PUT", path, gone.raw, **{"Content-Type": gone.media_type}
            )
            assert status == 201, (status, body)
        del self.deleted[vid]
        return 204, {}, b""
