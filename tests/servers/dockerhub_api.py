"""A loopback fake of Docker Hub: its Hub API and its registry's pull rate limit, over a
real registry.

No Docker Hub runs here, so this follows Docker's published Hub API description (API
version 2-beta, docs.docker.com/reference/api/hub/latest) for what regsweep uses:

    POST   /v2/auth/token                                   {identifier, secret} ->
           200 {access_token} (valid for `token_uses` requests here: then 401, as an
           expired one); 401 {detail, message} for wrong credentials
    GET    /v2/namespaces/{namespace}/repositories?page_size=&page=   {count, next,
           previous, results: [{name, namespace, repository_type, ...}]}
    GET    /v2/namespaces/{namespace}/repositories/{repository}      {name, namespace,
           immutable_tags_settings: {enabled, rules}}
    GET    /v2/namespaces/{namespace}/repositories/{repository}/tags?page_size=&page=
           {count, next, previous, results: [{name, digest, tag_last_pushed (when the real
           registry last pointed the tag), tag_last_pulled, images}]} (no platform images
           listed here)
and, from Docker's own hub-tool (docker/hub-tool, pkg/hub/tags.go; the description does not
list a tag delete):
    DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/    204; 404 unknown; 400
           for an immutable tag (the answer is this fake's choice: it is not documented)
with `Authorization: Bearer <access_token>` (401 otherwise) and, on demand
(`limit_every`), the documented API rate-limit answer: 429 with `X-RateLimit-Limit`,
`X-RateLimit-Remaining: 0` and `X-RateLimit-Reset`.

The registry side (`oci()`, a proxy in front of the real registry) is Docker Hub's as its
documentation describes it: no `/v2/_catalog`, DELETE of a manifest refused (405
UNSUPPORTED here), and a pull rate limit: every manifest GET counts (HEAD does not), each
manifest answer carries `ratelimit-limit: <n>;w=21600` and `ratelimit-remaining:
<left>;w=21600`, and past the limit a GET gets 429 TOOMANYREQUESTS. Repositories and tags
are the real registry's (its storage); a tag delete removes the tag there, leaving the
manifest untagged, as Docker Hub does. Every API request is recorded in `requests`.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.json_api import VendorApiFake, json_answer
from tests.servers.storage_view import images_of, repositories_root, tag_pushed_at

WINDOW = 21600  # seconds: Docker Hub's pull-limit window (6 hours)


@dataclass
class DockerHubFake(VendorApiFake):
    description = "dockerhub"  # every Hub API answer is held to Docker's description

    username: str
    secret: str
    immutable: dict[str, dict[str, Any]] = field(default_factory=dict)  # repo -> settings
    pull_limit: int = 1000  # manifest GETs allowed in the window
    token_uses: int = 1000  # requests an access token is good for
    pulls: int = 0  # manifest GETs the registry side counted
    heads: int = 0  # manifest HEADs (free)
    _tokens: dict[str, int] = field(default_factory=dict)  # token -> uses left

    # -- the registry side --------------------------------------------------------------

    def oci(self) -> RegistryProxy:
        return RegistryProxy(
            self.registry.url, intercept=self._registry_answer, add_headers=self._limit_headers
        )

    def _registry_answer(self, method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if path.startswith("/v2/_catalog"):
            body = {"errors": [{"code": "UNSUPPORTED", "message": "catalog is not served"}]}
            return 404, {"Content-Type": "application/json"}, json.dumps(body).encode()
        if "/manifests/" not in path:
            return None
        if method == "DELETE":
            body = {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}
            return 405, {"Content-Type": "application/json"}, json.dumps(body).encode()
        with self._lock:
            if method == "HEAD":
                self.heads += 1
                return None
            if method != "GET":
                return None
            if self.pulls >= self.pull_limit:
                body = {
                    "errors": [
                        {
                            "code": "TOOMANYREQUESTS",
                            "message": "You have reached your pull rate limit.",
                        }
                    ]
                }
                limited = {
                    "Content-Type": "application/json",
                    "ratelimit-limit": f"{self.pull_limit};w={WINDOW}",
                    "ratelimit-remaining": f"0;w={WINDOW}",
                }
                return 429, limited, json.dumps(body).encode()
            self.pulls += 1
        return None

    def _limit_headers(self, method: str, path: str) -> dict[str, str]:
        if "/manifests/" not in path or method not in ("GET", "HEAD"):
            return {}
        with self._lock:
            left = max(self.pull_limit - self.pulls, 0)
        return {
            "ratelimit-limit": f"{self.pull_limit};w={WINDOW}",
            "ratelimit-remaining": f"{left};w={WINDOW}",
        }

    # -- the Hub API --------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        limited = self.note_request(method, parts.path)
        if limited:  # as the description's rate-limiting section says: X-Retry-After
            until = str(int(time.time()) + 1)
            return json_answer(429, {"detail": "Rate limit exceeded"}, {"X-Retry-After": until})
        if method == "POST" and parts.path == "/v2/auth/token":
            return self._sign_in(body)
        if not self._authorized(headers.get("authorization", "")):
            return json_answer(401, {"detail": "Authentication credentials were not provided."})
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        query = parse_qs(parts.query)
        if segments[:2] == ["v2", "namespaces"] and len(segments) >= 4:
            namespace = segments[2]
            if method == "GET" and segments[3:] == ["repositories"]:
                return self._repositories(namespace, query)
            if method == "GET" and len(segments) == 5 and segments[3] == "repositories":
                return self._repository(f"{namespace}/{segments[4]}")
            listing = segments[3::2] == ["repositories", "tags"]
            if method == "GET" and len(segments) == 6 and listing:
                return self._tags(f"{namespace}/{segments[4]}", query)
        is_tag = len(segments) == 6 and segments[:2] == ["v2", "repositories"]
        if method == "DELETE" and is_tag and segments[4] == "tags":
            return self._delete_tag(f"{segments[2]}/{segments[3]}", segments[5])
        return json_answer(404, {"message": "object not found", "errinfo": {}})

    def _sign_in(self, body: bytes) -> Answer:
        try:
            given = json.loads(body or b"{}")
        except ValueError:
            return json_answer(400, {"message": "malformed JSON"})
        if given.get("identifier") != self.username or given.get("secret") != self.secret:
            return json_answer(
                401, {"detail": "Incorrect authentication credentials", "message": "unauthorized"}
            )
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = self.token_uses
        return json_answer(200, {"access_token": token})

    def _authorized(self, authorization: str) -> bool:
        token = authorization.removeprefix("Bearer ")
        with self._lock:
            left = self._tokens.get(token, 0)
            if left <= 0:
                return False
            self._tokens[token] = left - 1
            return True

    def _names(self, namespace: str) -> list[str]:
        base = repositories_root(self.registry) / namespace
        return sorted(p.parent.name for p in base.glob("*/_manifests"))

    def _repositories(self, namespace: str, query: dict[str, list[str]]) -> Answer:
        size = min(int(query.get("page_size", ["10"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        names = self._names(namespace)
        chunk = names[(page - 1) * size : page * size]
        following = (
            f"{self.url}/v2/namespaces/{namespace}/repositories?page={page + 1}&page_size={size}"
            if page * size < len(names)
            else None
        )
        results = [
            {"name": n, "namespace": namespace, "repository_type": "image", "status": 1}
            for n in chunk
        ]
        return json_answer(
            200, {"count": len(names), "next": following, "previous": None, "results": results}
        )

    def _repository(self, repository: str) -> Answer:
        namespace, name = repository.split("/", 1)
        if name not in self._names(namespace):
            return json_answer(404, {"message": "object not found", "errinfo": {}})
        settings = self.immutable.get(repository, {"enabled": False, "rules": []})
        registered = "2026-01-05T21:06:53.506400Z"
        return json_answer(
            200,
            {
                "user": namespace,
                "name": name,
                "namespace": namespace,
                "repository_type": "image",
                "status": 1,
                "status_description": "active",
                "description": "",
                "is_private": True,
                "is_automated": False,
                "star_count": 0,
                "pull_count": 0,
                "last_updated": registered,
                "date_registered": registered,
                "collaborator_count": 0,
                "has_starred": False,
                "permissions": {"read": True, "write": True, "admin": True},
                "media_types": [],
                "content_types": ["image"],
                "categories": [],
                "immutable_tags_settings": settings,
            },
        )

    def _tags(self, repository: str, query: dict[str, list[str]]) -> Answer:
        namespace, name = repository.split("/", 1)
        if name not in self._names(namespace):
            return json_answer(404, {"message": "object not found", "errinfo": {}})
        tags = sorted(
            (tag, digest)
            for digest, names in images_of(self.registry, repository).items()
            for tag in names
        )
        size = min(int(query.get("page_size", ["10"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        following = (
            f"{self.url}/v2/namespaces/{namespace}/repositories/{name}/tags"
            f"?page={page + 1}&page_size={size}"
            if page * size < len(tags)
            else None
        )
        results: list[dict[str, Any]] = [
            {
                "name": tag,
                "digest": digest,
                "tag_status": "active",
                "tag_last_pushed": tag_pushed_at(self.registry, repository, tag)
                .isoformat(timespec="microseconds")
                .replace("+00:00", "Z"),
                "tag_last_pulled": None,
                "images": [],
            }
            for tag, digest in tags[(page - 1) * size : page * size]
        ]
        return json_answer(
            200, {"count": len(tags), "next": following, "previous": None, "results": results}
        )

    def _delete_tag(self, repository: str, tag: str) -> Answer:
        settings = self.immutable.get(repository, {"enabled": False, "rules": []})
        if settings["enabled"] and (
            not settings["rules"] or any(re.fullmatch(r, tag) for r in settings["rules"])
        ):
            return json_answer(400, {"message": f"tag {tag} is immutable", "errinfo": {}})
        directory = repositories_root(self.registry) / repository / "_manifests" / "tags" / tag
        if not directory.is_dir():
            return json_answer(404, {"message": "tag not found", "errinfo": {}})
        shutil.rmtree(directory)
        return 204, {}, b""
