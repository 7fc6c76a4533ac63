"""A loopback fake of Harbor's immutable-tag status, in front of a real registry.

No Harbor here, so this follows Harbor's REST API (v2.0) description for the one call
regsweep makes, on the registry's own host (a proxy); every answer is held to that
description (tests/contracts/descriptions/harbor.yaml, after each test):

    GET /api/v2.0/projects/<project>/repositories/<name, encoded twice>/artifacts
        ?with_tag=true&with_immutable_status=true&page_size=&page=
        [{digest, tags: [{name, immutable, push_time}], push_time}], `Link` rel="next"

`push_time` is when the real registry wrote the manifest (`storage_view.pushed_at`), or
what `push_times` says to serve instead (a digest -> a value, None: no field). `immutable`
tag names answer a DELETE of their manifest with 412, as Harbor refuses it.
Everything else goes to the registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from flows.demo.registry_server import LocalRegistry
from tests.contracts.validate import Exchange, record
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.storage_view import images_of, pushed_at

PREFIX = "/api/v2.0/projects/"


def harbor_time(when: datetime) -> str:
    """Harbor's form: 2026-11-29T10:00:00.000Z."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class HarborFake:
    registry: LocalRegistry
    immutable: set[str] = field(default_factory=set)
    push_times: dict[str, object] = field(default_factory=dict)

    def intercept(self, method: str, target: str, headers: dict[str, str]) -> Answer | None:
        parts = urlsplit(target)
        if method == "DELETE" and "/manifests/" in parts.path:
            repository, _, digest = parts.path.removeprefix("/v2/").partition("/manifests/")
            if set(images_of(self.registry, repository).get(digest, [])) & self.immutable:
                denied = {"errors": [{"code": "PRECONDITION", "message": "immutable tag"}]}
                return 412, {"Content-Type": "application/json"}, json.dumps(denied).encode()
            return None
        if (
            method != "GET"
            or not parts.path.startswith(PREFIX)
            or not parts.path.endswith("/artifacts")
        ):
            return None
        project, _, rest = parts.path.removeprefix(PREFIX).partition("/repositories/")
        name = unquote(unquote(rest.removesuffix("/artifacts")))
        repository = f"{project}/{name}"
        query = parse_qs(parts.query)
        assert query.get("with_immutable_status") == ["true"], query
        artifacts: list[dict[str, Any]] = []
        for digest, tags in sorted(images_of(self.registry, repository).items()):
            artifact: dict[str, Any] = {
                "digest": digest,
                "tags": [{"name": t, "immutable": t in self.immutable} for t in tags],
                "push_time": harbor_time(pushed_at(self.registry, repository, digest)),
                "pull_time": "0001-01-01T00:00:00.000Z",
            }
            if digest in self.push_times:
                artifact["push_time"] = self.push_times[digest]
                if self.push_times[digest] is None:
                    del artifact["push_time"]
            artifacts.append(artifact)
        size = int(query.get("page_size", ["10"])[0])
        page = int(query.get("page", ["1"])[0])
        answer = {"Content-Type": "application/json", "X-Total-Count": str(len(artifacts))}
        if page * size < len(artifacts):
            following = parts.query.replace(f"page={page}", f"page={page + 1}")
            answer["Link"] = f'<{parts.path}?{following}>; rel="next"'
        payload = json.dumps(artifacts[(page - 1) * size : page * size]).encode()
        record("harbor", Exchange(method, target, headers, b"", 200, answer, payload))
        return 200, answer, payload

    def oci(self) -> RegistryProxy:
        return RegistryProxy(self.registry.url, intercept=self.intercept)
