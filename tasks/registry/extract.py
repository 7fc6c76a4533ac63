"""Registry extraction: every tag, manifest and config of the selected repositories, the
scan's orchestration. Repositories are listed (the catalog, or the vendor's listing), each
is read by `tasks.registry.readers` with a fixed number at once, and the vendor adds its
protections and push times. The frames it produces are documented in
`tasks.registry.frames`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tasks.core.aio import for_each
from tasks.core.progress import ScanProgress
from tasks.registry.client import RegistryClient
from tasks.registry.errors import RegistryError
from tasks.registry.frames import (
    PROTECTED_COLUMNS,
    PUSHED_COLUMNS,
    RegistryExtraction,
    frame,
    marked_incomplete,
)
from tasks.registry.readers import RepositoryRead, read_repository, to_frames
from tasks.registry.repositories import is_glob, select_repositories
from tasks.registry.vendors.base import vendor_of

REPOSITORY_WORKERS = 32  # repositories scanned at once (each keeps the client busy alone)


async def resolve_repositories(
    client: RegistryClient, patterns: list[str], exclude: list[str] | None = None
) -> list[str]:
    """Return the repositories named or matched by `patterns` and by no `exclude` glob.

    Only globs need the catalog; an explicit name is taken as it is.
    """
    names = [p for p in patterns if not is_glob(p)]
    globs = [p for p in patterns if is_glob(p)]
    if globs:  # the catalog, or the vendor's listing (GitLab's groups, ECR's API)
        names += await vendor_of(client).repositories(globs)
    return select_repositories(names, patterns, exclude)


async def scan_registry(
    client: RegistryClient,
    patterns: list[str],
    progress: ScanProgress | None = None,
    exclude: list[str] | None = None,
    pushed_for: Callable[[str], bool] | None = None,
) -> RegistryExtraction:
    """Read every tag, manifest and config of the repositories matching `patterns` and no
    `exclude` glob; the vendor's push times too in the repositories `pushed_for` accepts.

    A repository that cannot be read completely is reported in ``status`` (complete=False)
    instead of raising, so the other repositories can still be cleaned. Raises
    `RegistryError` only when the repository list itself cannot be read.
    """
    names = await resolve_repositories(client, patterns, exclude)
    return await scan_repositories(client, names, progress, pushed_for=pushed_for)


async def scan_repositories(
    client: RegistryClient,
    names: list[str],
    progress: ScanProgress | None = None,
    warm: bool | None = None,
    pushed_for: Callable[[str], bool] | None = None,
) -> RegistryExtraction:
    """Scan the repositories `names` (see `scan_registry`).

    Warm (the cache has content; decided here unless given): each tag is resolved with a
    HEAD and only manifests not seen before are read. Cold: one GET per tag, which also
    fills the cache. Where manifest GETs count against a pull rate limit (Docker Hub), the
    scan is always warm.
    """
    if warm is None:
        warm = cache_is_warm(client)
    warm = warm or vendor_of(client).counts_pulls  # a GET per tag would spend pulls
    repos: dict[str, RepositoryRead] = {}

    async def scan(name: str) -> None:
        repos[name] = await read_repository(client, name, progress, warm)

    await for_each(names, scan, REPOSITORY_WORKERS)
    extraction = to_frames([repos[n] for n in names], client.manifest_gets)
    if vendor_of(client).protects:
        extraction = await _with_protected_tags(client, extraction)
    if vendor_of(client).push_times and pushed_for is not None:
        wanted = [n for n in names if pushed_for(n)]
        if wanted:
            extraction = await _with_push_times(client, extraction, wanted)
    return extraction


async def _with_protected_tags(
    client: RegistryClient, extraction: RegistryExtraction
) -> RegistryExtraction:
    """What the vendor protects (`Vendor.protected`). A repository whose protections cannot be
    read is incomplete (fail closed: nothing is deleted there)."""
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    # one pass over the tags, not a filter of all of them per repository
    for name, tags in extraction.tags.groupby("repository", sort=True)["tag"]:
        repository = str(name)
        try:
            protected = await vendor_of(client).protected(repository, tags.tolist())
        except RegistryError as exc:
            failed[repository] = f"reading the vendor's protected tags: {exc}"
            continue
        rows += [
            {"repository": repository, "tag": t, "digest": d, "why": w} for t, d, w in protected
        ]
    return dataclasses.replace(
        extraction,
        protected=frame(rows, PROTECTED_COLUMNS),
        status=marked_incomplete(extraction.status, failed),
    )


async def _with_push_times(
    client: RegistryClient, extraction: RegistryExtraction, names: list[str]
) -> RegistryExtraction:
    """The vendor's push time of every image of the repositories `names` (`Vendor.pushed`),
    NaT for an image its listing lacks (the plan keeps such an image: not known to be old).
    A repository whose push times cannot be read is incomplete (fail closed)."""
    vendor = vendor_of(client)
    wanted = set(names)
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    tags = {str(name): t.tolist() for name, t in extraction.tags.groupby("repository")["tag"]}
    for name, digests in extraction.images.groupby("repository", sort=True)["digest"]:
        repository = str(name)
        if repository not in wanted:
            continue
        try:
            times = await vendor.pushed(repository, tags.get(repository, []))
        except RegistryError as exc:
            failed[repository] = f"reading the vendor's push times ({vendor.push_times}): {exc}"
            continue
        rows += [
            {
                "repository": repository,
                "digest": digest,
                "pushed": times.get(digest),
                "source": vendor.push_times,
            }
            for digest in digests.tolist()
        ]
    return dataclasses.replace(
        extraction,
        pushed=frame(rows, PUSHED_COLUMNS),
        status=marked_incomplete(extraction.status, failed),
    )


def cache_is_warm(client: RegistryClient) -> bool:
    """True when the client's cache already has content: scan warm (HEAD per tag)."""
    return client.cache is not None and not client.cache.is_empty()
