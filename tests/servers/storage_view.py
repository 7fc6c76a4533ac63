"""What a fake vendor API sees of the real registry behind it: its storage layout."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from flows.demo.registry_server import LocalRegistry


def repositories_root(registry: LocalRegistry) -> Path:
    return registry.root / "data" / "docker" / "registry" / "v2" / "repositories"


def images_of(registry: LocalRegistry, repository: str) -> dict[str, list[str]]:
    """digest -> its tags, of every manifest the registry holds in `repository`."""
    base = repositories_root(registry) / repository / "_manifests"
    images: dict[str, list[str]] = {
        "sha256:" + link.parent.name: [] for link in (base / "revisions" / "sha256").glob("*/link")
    }
    for link in sorted((base / "tags").glob("*/current/link")):
        images.setdefault(link.read_text().strip(), []).append(link.parent.parent.name)
    return images


def _revision_link(registry: LocalRegistry, repository: str, digest: str) -> Path:
    base = repositories_root(registry) / repository / "_manifests"
    return base / "revisions" / "sha256" / digest.removeprefix("sha256:") / "link"


def _tag_link(registry: LocalRegistry, repository: str, tag: str) -> Path:
    return (
        repositories_root(registry) / repository / "_manifests" / "tags" / tag / "current" / "link"
    )


def pushed_at(registry: LocalRegistry, repository: str, digest: str) -> datetime:
    """When the registry wrote the manifest `digest` (its revision link): the push time a
    fake vendor API reports."""
    return datetime.fromtimestamp(_revision_link(registry, repository, digest).stat().st_mtime, UTC)


def tag_pushed_at(registry: LocalRegistry, repository: str, tag: str) -> datetime:
    """When the registry last pointed `tag` (its current link)."""
    return datetime.fromtimestamp(_tag_link(registry, repository, tag).stat().st_mtime, UTC)


def backdate(registry: LocalRegistry, repository: str, digest: str, when: datetime) -> None:
    """Make the manifest `digest` and its tags look pushed at `when` (their links' mtimes)."""
    stamp = when.timestamp()
    os.utime(_revision_link(registry, repository, digest), (stamp, stamp))
    for tag in images_of(registry, repository).get(digest, []):
        os.utime(_tag_link(registry, repository, tag), (stamp, stamp))
