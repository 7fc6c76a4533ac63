"""Harbor's immutable tags and push times.

Harbor serves the OCI API for everything regsweep does, and deletes through it; a tag an
immutability rule matches cannot be deleted (nor the artifact under it). Harbor's REST API
(v2.0, on the registry's own host, with the registry's credentials) says which:

    GET /api/v2.0/projects/<project>/repositories/<name>/artifacts
        ?with_tag=true&with_immutable_status=true&page_size=100&page=N
        [{digest, tags: [{name, immutable}], push_time, pull_time}], `Link` rel="next"

`<name>` is the repository without its project, URL-encoded twice (`a/b` is `a%252Fb`).
Immutable tags are kept as `protected` and never sent; an artifact's `push_time` (Harbor
moves it on every push of the artifact) is its push time for the registry policies. One
listing a repository serves both.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tasks.registry.client import paged_list
from tasks.registry.vendors.base import Protection, Vendor, vendor_time

PAGE_SIZE = 100

if TYPE_CHECKING:
    from tasks.registry.client import RegistryClient


def artifacts_path(repository: str) -> str:
    project, _, name = repository.partition("/")
    encoded = quote(quote(name, safe=""), safe="")
    return (
        f"/api/v2.0/projects/{quote(project, safe='')}/repositories/{encoded}/artifacts"
        f"?with_tag=true&with_immutable_status=true&page_size={PAGE_SIZE}&page=1"
    )


class Harbor(Vendor):
    """Harbor: the OCI API for everything, its immutable tags protected."""

    name = "harbor"
    protects = True
    push_times = "Harbor push_time"

    def __init__(self, client: RegistryClient, api: str = "") -> None:
        super().__init__(client)
        self._artifacts: dict[str, list[dict[str, Any]]] = {}

    async def artifacts(self, repository: str) -> list[dict[str, Any]]:
        """Every artifact Harbor lists in `repository` (listed once a scan)."""
        if repository not in self._artifacts:
            self._artifacts[repository] = await paged_list(
                self.client, artifacts_path(repository), "", "", dict
            )
        return self._artifacts[repository]

    async def protected(self, repository: str, tags: list[str]) -> list[Protection]:
        """(tag, digest, why) of the tags Harbor's immutability rules hold in `repository`."""
        found: list[Protection] = []
        for artifact in await self.artifacts(repository):
            for tag in artifact.get("tags") or []:
                if isinstance(tag, dict) and tag.get("immutable") is True and tag.get("name"):
                    why = "Harbor immutable tag (an immutability rule matches it)"
                    found.append((str(tag["name"]), str(artifact.get("digest", "")), why))
        return found

    async def pushed(self, repository: str, tags: list[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for artifact in await self.artifacts(repository):
            digest = str(artifact.get("digest", ""))
            when = vendor_time(artifact.get("push_time"), f"{repository}@{digest} push_time")
            if digest and when is not None:
                found[digest] = max(when, found.get(digest, when))
        return found
