"""Azure Container Registry's locks (manifests and tags with `deleteEnabled: false`) and
push times.

ACR serves the OCI API for everything regsweep does, and deletes through it; a locked
manifest or tag (`az acr repository update --delete-enabled false`) answers a DELETE with
an error. Its metadata API on the registry's own host says which are locked (the "Azure
Container Registry runtime" REST description), with the registry's own token (scope
`repository:<name>:metadata_read`):

    GET /acr/v1/<name>/_manifests?n=1000   {manifests: [{digest, tags, createdTime,
                                            lastUpdateTime, changeableAttributes:
                                            {deleteEnabled, ...}}]}, `Link` rel="next"
    GET /acr/v1/<name>/_tags?n=1000        {tags: [{name, digest, createdTime,
                                            lastUpdateTime, changeableAttributes}]}

`<name>` is one path segment, its "/" encoded (the description's `{name}` parameter).

Locked ones are kept as `protected` and never sent. A manifest's `lastUpdateTime` (else its
`createdTime`) is its push time for the registry policies; one listing serves both.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tasks.registry.client import paged_list
from tasks.registry.vendors.base import Protection, Vendor, vendor_time

if TYPE_CHECKING:
    from tasks.registry.client import RegistryClient

PAGE = 1000


def _locked(item: dict[str, Any]) -> bool:
    attributes = item.get("changeableAttributes") or {}
    return isinstance(attributes, dict) and attributes.get("deleteEnabled") is False


class Acr(Vendor):
    """ACR: the OCI API for everything, its locks protected."""

    name = "acr"
    protects = True
    push_times = "ACR lastUpdateTime"

    detect = re.compile(r"\.azurecr\.(io|cn|us)(:443)?$")

    def __init__(self, client: RegistryClient, api: str = "") -> None:
        super().__init__(client)
        self._manifests: dict[str, list[dict[str, Any]]] = {}

    async def manifests(self, repository: str) -> list[dict[str, Any]]:
        """Every manifest ACR lists in `repository` (listed once a scan)."""
        if repository not in self._manifests:
            path = f"/acr/v1/{_segment(repository)}/_manifests?n={PAGE}"
            self._manifests[repository] = await paged_list(
                self.client, path, _scope(repository), "manifests", dict
            )
        return self._manifests[repository]

    async def protected(self, repository: str, tags: list[str]) -> list[Protection]:
        """(tag, digest, why) of what ACR locks in `repository`: a locked manifest with each of
        its tags (and once with no tag: untagged, it is still locked), and each locked tag."""
        found: list[Protection] = []
        for manifest in await self.manifests(repository):
            digest = str(manifest.get("digest", ""))
            if _locked(manifest) and digest:
                why = "ACR manifest locked (deleteEnabled: false)"
                found.append(("", digest, why))
                found += [(str(tag), digest, why) for tag in manifest.get("tags") or []]
        for tag in await paged_list(
            self.client,
            f"/acr/v1/{_segment(repository)}/_tags?n={PAGE}",
            _scope(repository),
            "tags",
            dict,
        ):
            if _locked(tag) and tag.get("name"):
                why = "ACR tag locked (deleteEnabled: false)"
                found.append((str(tag["name"]), str(tag.get("digest", "")), why))
        return found

    async def pushed(self, repository: str, tags: list[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for manifest in await self.manifests(repository):
            digest = str(manifest.get("digest", ""))
            value = manifest.get("lastUpdateTime") or manifest.get("createdTime")
            when = vendor_time(value, f"{repository}@{digest} lastUpdateTime")
            if digest and when is not None:
                found[digest] = when
        return found


def _segment(repository: str) -> str:
    """The repository as the description's `{name}` path parameter: one segment, its "/"
    encoded (as Azure's own SDK sends it; `az acr` sends them raw, which ACR also takes)."""
    return quote(repository, safe="")


def _scope(repository: str) -> str:
    return f"repository:{repository}:metadata_read"
