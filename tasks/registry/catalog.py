"""Repositories: `_catalog` with pagination, filtered by include/exclude globs."""

from __future__ import annotations

from fnmatch import fnmatchcase

from tasks.registry.client import RegistryClient, json_object, next_page
from tasks.registry.errors import InvalidResponse

PAGE_SIZE = 1000


async def list_repositories(client: RegistryClient) -> list[str]:
    """Return every repository name in the catalog, following `Link` pages."""
    names: list[str] = []
    path: str | None = f"/v2/_catalog?n={PAGE_SIZE}"
    seen: set[str] = set()
    while path is not None:
        if path in seen:
            raise InvalidResponse(f"{client.host}: _catalog pagination loops at {path}")
        seen.add(path)
        response = await client.request("GET", path, scope="registry:catalog:*")
        page = json_object(response).get("repositories") or []
        if not isinstance(page, list) or not all(isinstance(n, str) for n in page):
            raise InvalidResponse(f"{client.host}: _catalog repositories is not a list of names")
        names.extend(page)
        path = next_page(response)
    return sorted(set(names))


def select_repositories(
    names: list[str], include: list[str], exclude: list[str] | None = None
) -> list[str]:
    """Return the names matching any include glob and no exclude glob, sorted."""
    excluded = exclude or []
    return sorted(
        n
        for n in names
        if any(fnmatchcase(n, g) for g in include) and not any(fnmatchcase(n, g) for g in excluded)
    )


def is_glob(pattern: str) -> bool:
    """True when a repository pattern needs the catalog (has glob characters)."""
    return any(c in pattern for c in "*?[")
