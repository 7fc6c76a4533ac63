"""Number every image the plan talks about, so that the keep rules work on rows.

A row is one (repository, digest): the images frame's rows first (deduplicated), then
digests that only a tag or an index edge names (the scan did not return their manifest).
Only the first `known` rows are images the registry stage read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from tasks.frames import column_rows

Key = tuple[str, str]
"""(repository, manifest digest)."""


@dataclass
class Catalog:
    """Image rows, and the tags and index edges of the registry in terms of them."""

    repositories: list[str]
    digests: list[str]
    row_of: dict[Key, int]
    known: int
    images: pd.DataFrame  # the images frame, one row per known row, in row order
    tags: pd.DataFrame  # the tags frame
    tag_rows: list[int]  # per row of the tags frame: its digest's row
    tag_repositories: list[str]
    tag_names: list[str]
    edges: list[tuple[int, int]]  # (index row, child row), in the edges frame's order

    def __len__(self) -> int:
        return len(self.repositories)

    def key(self, row: int) -> Key:
        return self.repositories[row], self.digests[row]

    def known_mask(self) -> np.ndarray:
        mask = np.zeros(len(self), dtype=bool)
        mask[: self.known] = True
        return mask


def catalog(images: pd.DataFrame, tags: pd.DataFrame, edges: pd.DataFrame) -> Catalog:
    """Number the images of the registry stage's frames."""
    repositories = images["repository"].tolist()
    digests = images["digest"].tolist()
    row_of = {key: row for row, key in enumerate(zip(repositories, digests, strict=True))}
    if len(row_of) < len(repositories):  # the same manifest twice: the last one counts
        keep = np.zeros(len(repositories), dtype=bool)
        keep[list(row_of.values())] = True
        return catalog(images[keep], tags, edges)
    known = len(repositories)

    def row(key: Key) -> int:
        found = row_of.get(key)
        if found is None:
            found = row_of[key] = len(repositories)
            repositories.append(key[0])
            digests.append(key[1])
        return found

    tag_repositories = tags["repository"].tolist()
    tag_names = tags["tag"].tolist()
    found = [row_of.get(key) for key in zip(tag_repositories, tags["digest"].tolist(), strict=True)]
    if None in found:  # tags of manifests the scan did not return
        tag_digests = tags["digest"].tolist()
        found = [
            row((repository, tag_digests[at])) if image is None else image
            for at, (repository, image) in enumerate(zip(tag_repositories, found, strict=True))
        ]
    edge_rows = [
        (row((repository, parent)), row((repository, child)))
        for repository, parent, child in column_rows(edges, "repository", "parent", "child")
    ]
    return Catalog(
        repositories=repositories,
        digests=digests,
        row_of=row_of,
        known=known,
        images=images.reset_index(drop=True),
        tags=tags.reset_index(drop=True),
        tag_rows=cast(list[int], found),
        tag_repositories=tag_repositories,
        tag_names=tag_names,
        edges=edge_rows,
    )
