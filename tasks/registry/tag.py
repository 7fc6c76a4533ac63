"""Tags of a repository.

Distribution 2.8 ignores `n`/`last` and returns every tag unsorted with no `Link`; other
registries paginate by `Link`. Both are handled by following `Link` until there is none.
"""

from __future__ import annotations

from tasks.registry.client import RegistryClient, json_object, next_page
from tasks.registry.errors import InvalidResponse

PAGE_SIZE = 1000


async def list_tags(client: RegistryClient, repository: str) -> list[str]:
    """Return every tag of `repository`, sorted; raise `NotFound` for an unknown repository."""
    tags: set[str] = set()
    path: str | None = f"/v2/{repository}/tags/list?n={PAGE_SIZE}"
    seen: set[str] = set()
    while path is not None:
        if path in seen:
            raise InvalidResponse(f"{repository}: tags/list pagination loops at {path}")
        seen.add(path)
        response = await client.request("GET", path, scope=f"repository:{repository}:pull")
        page = json_object(response).get("tags") or []
        if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
            raise InvalidResponse(f"{repository}: tags/list tags is not a list of names")
        tags.update(page)
        path = next_page(response)
    return sorted(tags)
