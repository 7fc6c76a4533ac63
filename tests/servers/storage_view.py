"""What a fake vendor API sees of the real registry behind it: its storage layout."""

from __future__ import annotations

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
