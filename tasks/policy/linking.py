"""Link images to Git commits: label or annotation (full SHA or >= 7-hex prefix), else tag
pattern; an index takes its own annotation, else its children's links."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from tasks.frames import column_rows

_HEX = re.compile(r"^[0-9a-f]{7,40}$")

Key = tuple[str, str]
"""(repository, manifest digest)."""


class CommitIndex:
    """Resolves full SHAs and unique prefixes against the commits Git knows."""

    def __init__(self, shas: Iterable[str]) -> None:
        self._known = set(shas)
        self._sorted: list[str] | None = None  # built on the first short SHA

    def _by_prefix(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._known)
        return self._sorted

    def resolve(self, text: str) -> tuple[str | None, bool]:
        """Return (full SHA or None, known): a full SHA Git does not know is still a link."""
        value = text.strip().lower()
        if not _HEX.match(value):
            return None, False
        if len(value) == 40:
            return value, value in self._known
        ordered = self._by_prefix()
        start = bisect.bisect_left(ordered, value)
        matches = []
        for sha in ordered[start : start + 2]:
            if sha.startswith(value):
                matches.append(sha)
        if len(matches) == 1:
            return matches[0], True
        return None, False


@dataclass
class Links:
    """Commits per image, and the link values Git could not resolve."""

    commits: dict[Key, set[str]] = field(default_factory=dict)
    unknown: dict[Key, set[str]] = field(default_factory=dict)


def link_images(
    images: pd.DataFrame,
    tags: pd.DataFrame,
    index_edges: pd.DataFrame,
    commits: CommitIndex,
    label: str,
    tag_pattern: str | None,
) -> Links:
    """Return the commits each (repository, digest) is linked to."""
    links = Links()
    pattern = re.compile(tag_pattern) if tag_pattern else None

    def add(key: Key, value: str) -> None:
        sha, known = commits.resolve(value)
        if sha is not None:
            links.commits.setdefault(key, set()).add(sha)
            if known:
                return
        links.unknown.setdefault(key, set()).add(value)

    own: set[Key] = set()
    for repo, digest, labels, notes in column_rows(
        images, "repository", "digest", "labels", "annotations"
    ):
        value = (labels or {}).get(label) or (notes or {}).get(label)
        if isinstance(value, str) and value:
            own.add((repo, digest))
            add((repo, digest), value)
    if pattern is not None:
        for repo, tag, digest in column_rows(tags, "repository", "tag", "digest"):
            if (repo, digest) in own:
                continue
            match = pattern.fullmatch(tag)
            if match and match.group("commit"):
                add((repo, digest), match.group("commit"))
    for repo, parent, child in column_rows(index_edges, "repository", "parent", "child"):
        if (repo, parent) in own:
            continue
        child_commits = links.commits.get((repo, child))
        if child_commits:
            links.commits.setdefault((repo, parent), set()).update(child_commits)
    return links
