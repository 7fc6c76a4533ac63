"""Link images to Git commits: label or annotation (full SHA or >= 7-hex prefix), else tag
pattern; an index takes its own annotation, else its children's links."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from tasks.policy.catalog import Catalog

_HEX = re.compile(r"^[0-9a-f]{7,40}$")


class CommitIndex:
    """Resolves full SHAs and unique prefixes against the commits Git knows (`row_of`:
    SHA -> commit row)."""

    def __init__(self, row_of: dict[str, int]) -> None:
        self.row_of = row_of
        self._sorted: list[str] | None = None  # built on the first short SHA

    def _by_prefix(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.row_of)
        return self._sorted

    def resolve(self, text: str) -> tuple[str | None, bool]:
        """Return (full SHA or None, known): a full SHA Git does not know is still a link."""
        if text in self.row_of:
            return text, True
        value = text.strip().lower()
        if not _HEX.match(value):
            return None, False
        if len(value) == 40:
            return value, value in self.row_of
        ordered = self._by_prefix()
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

    own: set[int] = set()
    frame = images.images
    for row, (labels, notes) in enumerate(
        zip(frame["labels"].tolist(), frame["annotations"].tolist(), strict=True)
    ):
        value = (labels or {}).get(label) or (notes or {}).get(label)
        if isinstance(value, str) and value:
            own.add(row)
            add(row, value)
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
