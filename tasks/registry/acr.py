"""Azure Container Registry's locks: manifests and tags with `deleteEnabled: false`.

ACR serves the OCI API for everything regsweep does, and deletes through it; a locked
manifest or tag (`az acr repository update --delete-enabled false`) answers a DELETE with
an error. Its metadata API on the registry's own host says which are locked (the "Azure
Container Registry runtime" REST description), with the registry's own token (scope
`repository:<name>:metadata_read`):

    GET /acr/v1/<name>/_manifests?n=1000   {manifests: [{digest, tags, changeableAttributes:
                                            {deleteEnabled, ...}}]}, `Link` rel="next"
    GET /acr/v1/<name>/_tags?n=1000        {tags: [{name, digest, changeableAttributes}]}

Locked ones are kept as `protected` and never sent.
"""

from __future__ import annotations

from typing import Any

from tasks.registry.client import paged_list
from tasks.registry.vendor import Protection, Vendor

PAGE = 1000


def _locked(item: dict[str, Any]) -> bool:
    attributes = item.get("changeableAttributes") or {}
    return isinstance(attributes, dict) and attributes.get("deleteEnabled") is False


class Acr(Vendor):
    """ACR: the OCI API for everything, its locks protected."""

    name = "acr"
    protects = True

    async def protected(self, repository: str, tags: list[str]) -> list[Protection]:
        """(tag, digest, why) of what ACR locks in `repository`: a locked manifest with each of
        its tags (and once with no tag: untagged, it is still locked), and each locked tag."""
        scope = f"repository:{repository}:metadata_read"
        found: list[Protection] = []
        manifests = f"/acr/v1/{repository}/_manifests?n={PAGE}"
        for manifest in await paged_list(self.client, manifests, scope, "manifests", dict):
            digest = str(manifest.get("digest", ""))
            if _locked(manifest) and digest:
                why = "ACR manifest locked (deleteEnabled: false)"
                found.append(("", digest, why))
                found += [(str(tag), digest, why) for tag in manifest.get("tags") or []]
        for tag in await paged_list(
            self.client, f"/acr/v1/{repository}/_tags?n={PAGE}", scope, "tags", dict
        ):
            if _locked(tag) and tag.get("name"):
                why = "ACR tag locked (deleteEnabled: false)"
                found.append((str(tag["name"]), str(tag.get("digest", "")), why))
        return found
