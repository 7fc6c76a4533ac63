"""YAML files as regsweep reads them: UTF-8 only, and no key given twice in a mapping.

Every problem is a `ConfigError` (exit 2) naming the file, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tasks.core.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (two `safety:` sections
    would otherwise silently become the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: list[Any] = []
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.append(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_text(file: Path, field: str = "") -> str:
    """The UTF-8 text of `file`; raise `ConfigError` when it cannot be read or decoded."""
    try:
        return file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(field, f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(field, f"{file} is not UTF-8 text (byte {exc.start})") from None


def parse_yaml_documents(text: str, file: Path, field: str = "") -> list[Any]:
    """Every YAML document of `text` (read from `file`); raise `ConfigError`."""
    try:
        return list(yaml.load_all(text, Loader=_UniqueKeyLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(field, f"{file} is not valid YAML: {exc}") from None


def read_yaml(file: Path) -> Any:
    """The one YAML document of `file` (None when empty); raise `ConfigError`."""
    documents = parse_yaml_documents(read_yaml_text(file), file)
    if len(documents) > 1:
        raise ConfigError("", f"{file} holds {len(documents)} YAML documents, not one")
    return documents[0] if documents else None
