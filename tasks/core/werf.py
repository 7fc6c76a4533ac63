"""Read the `cleanup` section of an existing werf.yaml, so werf users change nothing.

werf.yaml is a stream of YAML documents; the meta document (the one with `project:`) holds
`cleanup`. Its keys are werf's (same names and meaning as regsweep's `cleanup`); the
regsweep-only keys (keepTags, keepList, unlinked) stay in the regsweep configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.core.errors import ConfigError
from tasks.core.yamlfile import parse_yaml_documents, read_yaml_text

WERF_CLEANUP_KEYS = (
    "keepPolicies",
    "keepImagesBuiltWithinLastNHours",
    "disableKubernetesBasedPolicy",
    "disableGitHistoryBasedPolicy",
    "disableBuiltWithinLastNHoursPolicy",
)


def read_werf_cleanup(path: str | Path) -> dict[str, Any]:
    """Return the `cleanup` mapping of the werf.yaml at `path` (empty when it has none)."""
    file = Path(path)
    text = read_yaml_text(file, "--werf-config")
    if "{{" in text:
        raise ConfigError(
            "--werf-config",
            f"{file} uses Go templates: render it first "
            "(`werf config render > werf-rendered.yaml`) and pass the rendered file",
        )
    documents = [d for d in parse_yaml_documents(text, file, "--werf-config") if d is not None]
    meta = next((d for d in documents if isinstance(d, dict) and "project" in d), None)
    if meta is None:
        raise ConfigError("--werf-config", f"{file} has no meta document (one with `project:`)")
    cleanup = meta.get("cleanup") or {}
    if not isinstance(cleanup, dict):
        raise ConfigError("cleanup", f"in {file}: must be a mapping")
    for key in cleanup:
        if key not in WERF_CLEANUP_KEYS:
            raise ConfigError(f"cleanup.{key}", f"in {file}: not a werf cleanup key")
    return cleanup


def read_werf_images(path: str | Path) -> list[str]:
    """The image names werf.yaml defines (`image: NAME` documents): the images werf's
    cleanup manages; the records of any other are an image's no longer built."""
    file = Path(path)
    text = read_yaml_text(file, "--werf-config")
    documents = parse_yaml_documents(text, file, "--werf-config")
    return [
        str(d["image"])
        for d in documents
        if isinstance(d, dict) and isinstance(d.get("image"), str) and d["image"]
    ]


def merge_werf_images(data: Any, images: list[str]) -> Any:
    """Put werf.yaml's image names in `link.werfImages`, unless the configuration says."""
    if not isinstance(data, dict):
        return data
    link = data.get("link") or {}
    if not isinstance(link, dict) or "werfImages" in link:
        return data
    return {**data, "link": {**link, "werfImages": images}}


def merge_werf_cleanup(data: Any, werf_cleanup: dict[str, Any], werf_file: str) -> Any:
    """Put werf's cleanup keys into the regsweep configuration `data`.

    A key set in both places is an error: one source of truth per setting.
    """
    if not isinstance(data, dict):
        return data
    ours = data.get("cleanup") or {}
    if not isinstance(ours, dict):
        return data
    for key in werf_cleanup:
        if key in ours:
            raise ConfigError(
                f"cleanup.{key}",
                f"set both in the regsweep configuration and in {werf_file}: keep it in one",
            )
    return {**data, "cleanup": {**ours, **werf_cleanup}}
