"""Helm 3 release records: decode a release and find the images of its manifest."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Iterator
from typing import Any

import yaml

from tasks.cluster.kinds import CONTAINER_LISTS

_GZIP_MAGIC = b"\x1f\x8b"


def decode_release(payload: str) -> dict[str, Any]:
    """Decode Helm's `release` field (base64 of gzip of JSON; gzip optional) into a dict.

    Raises ValueError when the payload is not a Helm release.
    """
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"release is not base64: {exc}") from exc
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    release = json.loads(data)
    if not isinstance(release, dict):
        raise ValueError("release is not a JSON object")
    return release


# libyaml's loader is ~10x faster on big release manifests; PyYAML wheels ship it.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def manifest_images(manifest: str) -> Iterator[tuple[str, str, str, str]]:
    """Yield (kind, object name, container, image) for every container in a rendered manifest."""
    for doc in yaml.load_all(manifest or "", Loader=_SafeLoader):
        if not isinstance(doc, dict):
            continue
        kind = str(doc.get("kind", ""))
        name = str((doc.get("metadata") or {}).get("name", ""))
        for container, image in _containers(doc):
            yield kind, name, container, image


def _containers(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONTAINER_LISTS and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and isinstance(item.get("image"), str):
                        yield str(item.get("name", "")), item["image"]
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)
