"""Tags of a repository.

Distribution 2.8 ignores `n`/`last` and returns every tag unsorted with no `Link`; other
registries paginate by `Link`. Both are handled by following `Link` until there is none.
"""

from __future__ import annotations

from tasks.registry.client import RegistryClient, paged_names
from tasks.registry.paths import checked_tag, tags_path

PAGE_SIZE = 1000


async def list_tags(client: RegistryClient, repository: str) -> list[str]:
    """Return every tag of `repository`, sorted; raise `NotFound` for an unknown repository
    and `InvalidResponse` for a tag that is not a valid tag name."""
    tags = await paged_names(
        client, tags_path(repository, PAGE_SIZE), f"repository:{repository}:pull", "tags"
    )
    return sorted({checked_tag(repository, tag) for tag in tags})
