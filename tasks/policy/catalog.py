"""Number every image the plan talks about, so that the keep rules work on rows.

A row is one (repository, digest): the images frame's rows first (deduplicated), then
digests that only a tag or an index edge names (the scan did not return their manifest).
Only the first `known` rows are images the registry stage read.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    keys = list(column_rows(images, "repository", "digest"))
    row_of = {key: row for row, key in enumerate(keys)}
    if len(row_of) < len(keys):  # the same manifest twice: the last one counts
        keep = np.zeros(len(keys), dtype=bool)
        keep[list(row_of.values())] = True
        images = images[keep]
        keys = list(column_rows(images, "repository", "digest"))
        row_of = {key: row for row, key in enumerate(keys)}
    images = images.reset_index(drop=True)
    repositories = [repository for repository, _ in keys]
    digests = [digest for _, digest in keys]
    known = len(keys)

    def row(key: Key) -> int:
        found = row_of.get(key)
        if found is None:
            found = row_of[key] = len(repositories)
            repositories.append(key[0])
            digests.append(key[1])
        return found

    tag_repositories = tags["repository"].tolist()
    tag_names = tags["tag"].tolist()
    tag_rows = [
        row((repository, digest))
        for repository, digest in zip(tag_repositories, tags["digest"].tolist(), strict=True)
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
        images=images,
        tag_rows=tag_rows,
        tag_repositories=tag_repositories,
        tag_names=tag_names,
        edges=edge_rows,
    )
