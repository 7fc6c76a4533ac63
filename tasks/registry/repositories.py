"""Repositories: `_catalog` with pagination, filtered by include/exclude globs."""

from __future__ import annotations

from fnmatch import fnmatchcase

from tasks.registry.client import RegistryClient, paged_names

PAGE_SIZE = 1000


async def list_repositories(client: RegistryClient) -> list[str]:
    """Return every repository name in the catalog, following `Link` pages."""
    names = await paged_names(
        client, f"/v2/_catalog?n={PAGE_SIZE}", "registry:catalog:*", "repositories"
    )
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
