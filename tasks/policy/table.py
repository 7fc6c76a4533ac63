"""The plan table, built from the decided `PlanState`:

``plan`` — one row per repository x digest x tag (tag empty for an untagged manifest)
    repository  str                  repository name
    digest      str                  manifest digest
    tag         str                  tag on the digest, empty when untagged
    media_type  str                  manifest media type
    created     datetime64[us, UTC]  config ``created`` (an index: its newest child)
    commits     object (list[str])   commit SHAs the image is linked to
    action      str                  ``keep``, ``delete`` (the digest, every tag on it) or
                                     ``untag`` (this tag; the digest stays for its kept tags)
    reason      str                  first keep reason in REASON_ORDER, or ``no-policy``
    reasons     object (list[str])   every keep reason that applies
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.core.frames import arrow_strings
from tasks.policy.state import PlanState

PLAN_COLUMNS = {
    "repository": "str",
    "digest": "str",
    "tag": "str",
    "media_type": "str",
    "created": "datetime64[us, UTC]",
    "commits": "object",
    "action": "str",
    "reason": "str",
    "reasons": "object",
}
PLAN_COLUMNS_ORDER = list(PLAN_COLUMNS)


def plan_table(state: PlanState) -> pd.DataFrame:
    """One row per tag and one per untagged known image, sorted for reading. String
    columns are taken and sorted in Arrow, from the registry stage's own columns."""
    images, reasons, kept = state.images, state.reasons, state.kept
    commits, created, has_created = state.links.commits, state.created, state.has_created
    tag_rows = np.array(images.tag_rows, dtype=np.int64)
    tagged = np.zeros(len(images), dtype=bool)
    tagged[tag_rows] = True
    untagged = np.flatnonzero(~tagged[: images.known])
    rows = np.concatenate([tag_rows, untagged])
    masks = reasons.digest[rows]
    masks[: len(tag_rows)] |= reasons.tag
    keep = kept[rows]
    untag = np.zeros(len(rows), dtype=bool)
    untag[: len(tag_rows)] = state.untag
    masks[keep & ~untag & ~masks.any(axis=1), reasons.column["shared-digest"]] = True
    lists, which = reasons.ordered(masks)

    frame, tags = images.images, images.tags
    phantoms = len(images) - images.known
    # Per catalog row, one array each: Arrow's take concatenates a chunked column first
    # (a copy more: a quarter of a gigabyte of fresh memory at a million rows)
    repositories = _by_row(frame["repository"], images.repositories[images.known :])
    digests = _by_row(frame["digest"], images.digests[images.known :])
    tag_names = arrow_strings(tags["tag"])
    if len(untagged):
        tag_names = pa.concat_arrays([tag_names, _empty_strings(len(untagged))])
    action = np.where(untag, 2, np.where(keep, 1, 0)).astype(np.int8)  # _ACTIONS' positions
    # Sorted by numbers where it can be: the repository's rank among the repositories and
    # the action's code, then the strings (4x faster than comparing four string columns)
    order = pc.sort_indices(
        pa.table(
            {
                "repository": _ranks(repositories)[rows],
                "action": action,
                "tag": tag_names,
                "digest": pa.chunked_array(
                    [arrow_strings(tags["digest"]), arrow_strings(frame["digest"]).take(untagged)]
                ),
            }
        ),
        sort_keys=[(name, "ascending") for name in ("repository", "action", "tag", "digest")],
    ).to_numpy()
    rows, which = rows[order], which[order]
    micros = pd.array(created[rows], dtype="Int64")
    micros[~has_created[rows]] = pd.NA
    reason = pa.array([names[0] if names else "no-policy" for names in lists], pa.large_string())
    table = {
        "repository": _strings(repositories.take(rows)),
        "digest": _strings(digests.take(rows)),
        "tag": _strings(tag_names.take(order)),
        "media_type": _strings(_by_row(frame["media_type"], [""] * phantoms).take(rows)),
        "created": pd.to_datetime(micros, unit="us", utc=True).astype(PLAN_COLUMNS["created"]),
    }
    table["commits"] = pd.Series([sorted(commits.get(r, ())) for r in rows.tolist()], dtype=object)
    table["action"] = _strings(_ACTIONS.take(action[order]))
    table["reason"] = _strings(reason.take(which))
    table["reasons"] = pd.Series([list(lists[w]) for w in which.tolist()], dtype=object)
    return pd.DataFrame(table)


_ACTIONS = pa.array(["delete", "keep", "untag"], pa.large_string())
"""The plan's actions in their sort order (alphabetical), by code."""


def _by_row(column: pd.Series, phantoms: list[str]) -> pa.Array:
    """A string column of the images frame per catalog row: the frame's values, then
    `phantoms`' for the rows only a tag or an index edge names."""
    values = arrow_strings(column)
    return pa.concat_arrays([values, pa.array(phantoms, pa.large_string())]) if phantoms else values


def _ranks(values: pa.Array) -> np.ndarray:
    """Per value, the rank of its distinct value in Arrow's string order."""
    encoded = pc.dictionary_encode(values)
    rank = np.empty(len(encoded.dictionary), dtype=np.int64)
    rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(len(rank))
    return np.asarray(rank[encoded.indices.to_numpy(zero_copy_only=False)], dtype=np.int64)


def _empty_strings(count: int) -> pa.Array:
    return pa.array(np.full(count, ""), type=pa.large_string())


def _strings(values: pa.Array) -> pd.Series:
    return pd.Series(pd.array(values, dtype="str"))
