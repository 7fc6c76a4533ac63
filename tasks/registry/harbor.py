"""Harbor's immutable tags.

Harbor serves the OCI API for everything regsweep does, and deletes through it; a tag an
immutability rule matches cannot be deleted (nor the artifact under it). Harbor's REST API
(v2.0, on the registry's own host, with the registry's credentials) says which:

    GET /api/v2.0/projects/<project>/repositories/<name>/artifacts
        ?with_tag=true&with_immutable_status=true&page_size=100&page=N
        [{digest, tags: [{name, immutable}], push_time, pull_time}], `Link` rel="next"

`<name>` is the repository without its project, URL-encoded twice (`a/b` is `a%252Fb`).
Immutable tags are kept as `protected` and never sent.
"""

from __future__ import annotations

from urllib.parse import quote

from tasks.registry.client import paged_list
from tasks.registry.vendor import Protection, Vendor

PAGE_SIZE = 100


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

    async def protected(self, repository: str, tags: list[str]) -> list[Protection]:
        """(tag, digest, why) of the tags Harbor's immutability rules hold in `repository`."""
        found: list[Protection] = []
        for artifact in await paged_list(self.client, artifacts_path(repository), "", "", dict):
            for tag in artifact.get("tags") or []:
                if isinstance(tag, dict) and tag.get("immutable") is True and tag.get("name"):
                    why = "Harbor immutable tag (an immutability rule matches it)"
                    found.append((str(tag["name"]), str(artifact.get("digest", "")), why))
        return found
