"""Link images to Git commits: label or annotation (full SHA or >= 7-hex prefix), else tag
pattern; an index takes its own annotation, else its children's links."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

import numpy as np

from tasks.policy.catalog import Catalog
from tasks.policy.history import CommitHistory

_HEX = re.compile(r"^[0-9a-f]{7,40}$")


class CommitIndex:
    """Resolves full SHAs and unique prefixes against the commits Git knows."""

    def __init__(self, history: CommitHistory | None) -> None:
        self._history = history
        self._sorted: list[str] | None = None  # built on the first value not a known SHA
        self._known: set[str] = set()

    def known(self, values: list[str]) -> np.ndarray:
        """Which `values` are, exactly, full SHAs of known commits (the usual case)."""
        if self._history is None:
            return np.zeros(len(values), dtype=bool)
        return self._history.rows(values) >= 0

    def _by_prefix(self) -> list[str]:
        if self._sorted is None:
            shas = self._history.shas.to_pylist() if self._history is not None else []
            self._sorted = sorted(shas)
            self._known = set(shas)
        return self._sorted

    def resolve(self, text: str) -> tuple[str | None, bool]:
        """Return (full SHA or None, known): a full SHA Git does not know is still a link."""
        value = text.strip().lower()
        if not _HEX.match(value):
            return None, False
        ordered = self._by_prefix()
        if len(value) == 40:
            return value, value in self._known
        start = bisect.bisect_left(ordered, value)
        matches = [sha for sha in ordered[start : start + 2] if sha.startswith(value)]
        if len(matches) == 1:
            return matches[0], True
        return None, False


@dataclass
class Links:
    """Per image row: the commit SHAs it is linked to, and the link values Git could not
    resolve."""

    commits: dict[int, set[str]] = field(default_factory=dict)
    unknown: dict[int, set[str]] = field(default_factory=dict)


def link_images(
    images: Catalog, commits: CommitIndex, label: str, tag_pattern: str | None
) -> Links:
    """Return the commits each image row is linked to."""
    links = Links()

    def add(row: int, value: str) -> None:
        sha, known = commits.resolve(value)
        if sha is not None:
            links.commits.setdefault(row, set()).add(sha)
            if known:
                return
        links.unknown.setdefault(row, set()).add(value)

    frame = images.images
    values: list[tuple[int, str]] = []
    for row, (labels, notes) in enumerate(
        zip(frame["labels"].tolist(), frame["annotations"].tolist(), strict=True)
    ):
        value = (labels.get(label) if labels else None) or (notes.get(label) if notes else None)
        if isinstance(value, str) and value:
            values.append((row, value))
    known = commits.known([value for _, value in values]).tolist()
    for (row, value), is_sha in zip(values, known, strict=True):
        if is_sha:
            links.commits[row] = {value}
        else:
            add(row, value)
    own = links.commits.keys() | links.unknown.keys()  # every row with a value of its own
    if tag_pattern:
        pattern = re.compile(tag_pattern)
        for row, tag in zip(images.tag_rows, images.tag_names, strict=True):
            if row in own:
                continue
            match = pattern.fullmatch(tag)
            if match and match.group("commit"):
                add(row, match.group("commit"))
    for parent, child in images.edges:
        if parent in own:
            continue
        child_commits = links.commits.get(child)
        if child_commits:
            links.commits.setdefault(parent, set()).update(child_commits)
    return links
