"""Number every image the plan talks about, so that the keep rules work on rows.

A row is one (repository, digest): the images frame's rows first (deduplicated), then
digests that only a tag or an index edge names (the scan did not return their manifest).
Only the first `known` rows are images the registry stage read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.core.frames import arrow_strings, column_rows

Key = tuple[str, str]
"""(repository, manifest digest)."""


@dataclass
class Catalog:
    """Image rows, and the tags and index edges of the registry in terms of them."""

    repositories: list[str]
    digests: list[str]
    known: int
    images: pd.DataFrame  # the images frame, one row per known row, in row order
    tags: pd.DataFrame  # the tags frame
    tag_rows: list[int] = field(default_factory=list)  # per tag: its digest's row
    tag_repositories: list[str] = field(default_factory=list)
    tag_names: list[str] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)  # (index row, child row)
    _row_of: dict[Key, int] | None = None
    _image_keys: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.repositories)

    def key(self, row: int) -> Key:
        return self.repositories[row], self.digests[row]

    def find(self, key: Key) -> int | None:
        """The row of `key`, None if no tag, edge or image names it."""
        return self._rows().get(key)

    def rows_of(self, frame: pd.DataFrame) -> np.ndarray:
        """The row of each (repository, digest) of `frame` among the images the registry
        stage read, -1 where none: one Arrow hash lookup, not a dict per key."""
        if frame.empty or self.images.empty:
            return np.full(len(frame), -1, dtype=np.int64)
        if self._image_keys is None:
            self._image_keys = _keys(self.images)
        found = pc.index_in(_keys(frame), value_set=self._image_keys)
        return np.asarray(pc.fill_null(found, -1).to_numpy(), dtype=np.int64)

    def known_mask(self) -> np.ndarray:
        mask = np.zeros(len(self), dtype=bool)
        mask[: self.known] = True
        return mask

    def _rows(self) -> dict[Key, int]:
        if self._row_of is None:  # most plans need none: built on first use
            keys = zip(self.repositories, self.digests, strict=True)
            self._row_of = {key: row for row, key in enumerate(keys)}
        return self._row_of

    def _row(self, key: Key) -> int:
        """The row of `key`, numbering it after the others if it is new."""
        rows = self._rows()
        found = rows.get(key)
        if found is None:
            found = rows[key] = len(self.repositories)
            self.repositories.append(key[0])
            self.digests.append(key[1])
        return found


def catalog(images: pd.DataFrame, tags: pd.DataFrame, edges: pd.DataFrame) -> Catalog:
    """Number the images of the registry stage's frames."""
    image_keys = _keys(images)
    if pc.count_distinct(image_keys).as_py() < len(images):  # one manifest twice: last counts
        last = {key: row for row, key in enumerate(image_keys.to_pylist())}
        keep = np.zeros(len(images), dtype=bool)
        keep[list(last.values())] = True
        return catalog(images[keep], tags, edges)
    numbered = Catalog(
        repositories=images["repository"].tolist(),
        digests=images["digest"].tolist(),
        known=len(images),
        images=images.reset_index(drop=True),
        tags=tags.reset_index(drop=True),
        tag_repositories=tags["repository"].tolist(),
        tag_names=tags["tag"].tolist(),
    )
    found = pc.index_in(_keys(tags), value_set=image_keys)
    numbered.tag_rows = pc.fill_null(found, -1).to_numpy().tolist()
    if found.null_count:  # tags of manifests the scan did not return
        tag_digests = tags["digest"].tolist()
        numbered.tag_rows = [
            numbered._row((numbered.tag_repositories[at], tag_digests[at])) if row < 0 else row
            for at, row in enumerate(numbered.tag_rows)
        ]
    numbered.edges = [
        (numbered._row((repository, parent)), numbered._row((repository, child)))
        for repository, parent, child in column_rows(edges, "repository", "parent", "child")
    ]
    return numbered


def _keys(frame: pd.DataFrame) -> pa.Array:
    """`repository NUL digest` per row: one string per key, for Arrow's hash lookups."""
    return pc.binary_join_element_wise(
        arrow_strings(frame["repository"]),
        arrow_strings(frame["digest"]),
        pa.scalar("\x00", pa.large_string()),
    )
