"""Tags of a repository.

Distribution 2.8 ignores `n`/`last` and returns every tag unsorted with no `Link`; other
registries paginate by `Link`. Both are handled by following `Link` until there is none.
"""

from __future__ import annotations

from tasks.registry.client import RegistryClient, paged_names

PAGE_SIZE = 1000


async def list_tags(client: RegistryClient, repository: str) -> list[str]:
    """Return every tag of `repository`, sorted; raise `NotFound` for an unknown repository."""
    tags = await paged_names(
        client, f"/v2/{repository}/tags/list?n={PAGE_SIZE}", f"repository:{repository}:pull", "tags"
    )
    return sorted(set(tags))
