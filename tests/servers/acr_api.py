"""A loopback fake of Azure Container Registry, over a real registry.

No Azure here, so this follows the "Azure Container Registry runtime" REST description for
the two metadata calls regsweep makes, served on the registry's own host in front of the
real registry (a proxy); every answer is held to that description after each test
(tests/contracts/descriptions/acr.yaml). `<name>` is one path segment, "/" encoded:

    GET /acr/v1/<name>/_manifests   {registry, imageName, manifests: [{digest, tags,
                                    createdTime, lastUpdateTime (when the real registry
                                    wrote it), changeableAttributes: {deleteEnabled,
                                    writeEnabled, readEnabled, listEnabled}}]}
    GET /acr/v1/<name>/_tags        {registry, imageName, tags: [{name, digest, createdTime,
                                    lastUpdateTime, changeableAttributes}]}

`Link` pages of `n` items. A locked manifest or tag (`locked`: digests and tag names)
answers a DELETE with 405, as ACR refuses it. Everything else goes to the registry.
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


def acr_time(when: datetime) -> str:
    """ACR's form (.NET, seven fractional digits): 2026-11-29T10:00:00.1234560Z."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class AcrFake:
    registry: LocalRegistry
    locked: set[str] = field(default_factory=set)  # digests and tags with deleteEnabled false

    def _images(self, repository: str) -> dict[str, list[str]]:
        return images_of(self.registry, repository)

    def _attributes(self, name: str) -> dict[str, bool]:
        return {
            "deleteEnabled": name not in self.locked,
            "writeEnabled": True,
            "readEnabled": True,
            "listEnabled": True,
        }

    def intercept(self, method: str, target: str, headers: dict[str, str]) -> Answer | None:
        parts = urlsplit(target)
        if method == "DELETE" and "/manifests/" in parts.path:
            if parts.path.rsplit("/", 1)[1] in self.locked:
                denied = {"errors": [{"code": "DENIED", "message": "The operation is disallowed"}]}
                return 405, {"Content-Type": "application/json"}, json.dumps(denied).encode()
            return None
        if method != "GET" or not parts.path.startswith("/acr/v1/"):
            return None
        encoded, _, what = parts.path.removeprefix("/acr/v1/").rpartition("/")
        repository = unquote(encoded)
        images = self._images(repository)
        items: list[dict[str, Any]]
        if what == "_manifests":
            items = [
                {
                    "digest": d,
                    "tags": tags,
                    "createdTime": acr_time(pushed_at(self.registry, repository, d)),
                    "lastUpdateTime": acr_time(pushed_at(self.registry, repository, d)),
                    "changeableAttributes": self._attributes(d),
                }
                for d, tags in sorted(images.items())
            ]
        elif what == "_tags":
            items = [
                {
                    "name": t,
                    "digest": d,
                    "createdTime": acr_time(pushed_at(self.registry, repository, d)),
                    "lastUpdateTime": acr_time(pushed_at(self.registry, repository, d)),
                    "changeableAttributes": self._attributes(t),
                }
                for d, tags in sorted(images.items())
                for t in tags
            ]
        else:
            return None
        query = parse_qs(parts.query)
        n = int(query.get("n", ["100"])[0])
        last = query.get("last", [""])[0]
        key = "digest" if what == "_manifests" else "name"
        items.sort(key=lambda i: str(i[key]))  # pages go in the order `last` names
        after = [i for i in items if str(i[key]) > last]
        page, more = after[:n], after[n:]
        answer = {"Content-Type": "application/json"}
        if more:
            answer["Link"] = f'<{parts.path}?n={n}&last={page[-1][key]}>; rel="next"'
        body: dict[str, Any] = {
            "registry": self.registry.host,
            "imageName": repository,
            what.strip("_"): page,
        }
        payload = json.dumps(body).encode()
        record("acr", Exchange(method, target, headers, b"", 200, answer, payload))
        return 200, answer, payload

    def oci(self) -> RegistryProxy:
        return RegistryProxy(self.registry.url, intercept=self.intercept)
