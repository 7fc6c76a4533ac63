"""The commits frame as rows: what the history walks and the linking step look up.

Commits are numbered by their row in the frame; parents are kept in CSR form and SHAs are
looked up in Arrow, not in a dict of 10^5 Python strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.core.frames import arrow_string_lists, arrow_strings


@dataclass
class CommitHistory:
    """The commits frame as rows: SHAs, committer times (epoch microseconds), parents in CSR
    form (``parent_rows[parent_offsets[i]:parent_offsets[i + 1]]``; parents the frame does
    not list are left out) and `bound`: per commit the newest committer time among it and
    all its ancestors. It equals the commit's own time unless committer times go backwards
    somewhere (clock skew, rebases)."""

    shas: pa.Array
    times: np.ndarray
    parent_offsets: np.ndarray
    parent_rows: np.ndarray
    bound: np.ndarray

    @classmethod
    def from_frame(cls, commits: pd.DataFrame) -> CommitHistory:
        shas = arrow_strings(commits["sha"])
        parents = arrow_string_lists(commits["parents"])
        counts = pc.fill_null(pc.list_value_length(parents), 0).to_numpy().astype(np.int64)
        found = pc.index_in(pc.list_flatten(parents), value_set=shas)
        rows = np.asarray(pc.fill_null(found, -1).to_numpy(), dtype=np.int64)
        listed = rows >= 0
        if not listed.all():
            counts = np.bincount(
                np.repeat(np.arange(len(shas)), counts)[listed], minlength=len(shas)
            )
            rows = rows[listed]
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts)])
        times = commits["time"].astype("int64").to_numpy()
        return cls(shas, times, offsets, rows, _newest_ancestor_times(offsets, rows, times))

    def rows(self, shas: list[str]) -> np.ndarray:
        """The row of each SHA, -1 where it is not a commit of the frame."""
        return _rows_in(self.shas, shas)

    def sha(self, row: int) -> str:
        return str(self.shas[row].as_py())


def _rows_in(known: pa.Array, values: list[str]) -> np.ndarray:
    found = pc.index_in(pa.array(values, type=pa.large_string()), value_set=known)
    return np.asarray(pc.fill_null(found, -1).to_numpy(), dtype=np.int64)


PROPAGATION_ROUNDS = 64
"""Rounds of vectorised propagation before `_newest_ancestor_times` walks instead."""


def _newest_ancestor_times(
    parent_offsets: np.ndarray, parent_rows: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """For every commit row, the newest committer time among it and its ancestors.

    Vectorised: each round lifts every commit to the newest bound among its parents; it
    settles after as many rounds as the longest run of commits older than an ancestor
    (a few, even with clock skew). A history that needs more falls back to a walk.
    """
    child_at = np.repeat(np.arange(len(times)), np.diff(parent_offsets))
    bound = times.astype(np.int64, copy=True)
    for _ in range(PROPAGATION_ROUNDS):
        lifted = bound[parent_rows]
        rising = lifted > bound[child_at]
        if not rising.any():
            return bound
        np.maximum.at(bound, child_at[rising], lifted[rising])
    return _newest_ancestor_times_by_walk(parent_offsets, parent_rows, times)


def _newest_ancestor_times_by_walk(
    parent_offsets: np.ndarray, parent_rows: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """`_newest_ancestor_times` by a depth-first walk (any history, in one pass)."""
    offsets: list[int] = parent_offsets.tolist()
    parents: list[int] = parent_rows.tolist()
    bound: list[int] = times.tolist()
    done = [False] * len(bound)
    for root in range(len(bound)):
        stack = [(root, False)]
        while stack:
            commit, expanded = stack.pop()
            if done[commit]:
                continue
            mine = parents[offsets[commit] : offsets[commit + 1]]
            if expanded:  # every parent is done
                bound[commit] = max([bound[commit], *(bound[p] for p in mine)])
                done[commit] = True
            else:
                stack.append((commit, True))
                stack.extend((p, False) for p in mine if not done[p])
    return np.array(bound, dtype=np.int64)
