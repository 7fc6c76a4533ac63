"""Summaries of a plan: per repository and per reason, with reclaimable bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.frames import column_rows

SUMMARY_COLUMNS = ["repository", "kept", "deleted", "untagged", "bytes_reclaimable"]


def digest_decisions(plan: pd.DataFrame) -> pd.DataFrame:
    """One row per (repository, digest): action (`keep` or `delete`: an untagged tag's
    digest is kept) and first reason (of its first kept or deleted row)."""
    return (
        plan[plan["action"] != "untag"]
        .drop_duplicates(["repository", "digest"])[["repository", "digest", "action", "reason"]]
        .reset_index(drop=True)
    )


def reclaimable_bytes(plan: pd.DataFrame, blobs: pd.DataFrame) -> pd.Series:
    """Bytes per repository freed (after garbage collection) by deleting the plan's digests:
    blobs only deleted images use, each counted once per repository."""
    decisions = digest_decisions(plan)
    joined = blobs.merge(decisions, on=["repository", "digest"], how="left")
    kept_blobs = set(column_rows(joined[joined["action"] != "delete"], "repository", "blob"))
    freed = joined[joined["action"] == "delete"].drop_duplicates(["repository", "blob"])
    # An array, not a list: an empty list would select no columns instead of no rows.
    mask = np.fromiter(
        ((r, b) not in kept_blobs for r, b in column_rows(freed, "repository", "blob")),
        dtype=bool,
        count=len(freed),
    )
    return freed[mask].groupby("repository")["size"].sum().astype("int64")


def summarise(plan: pd.DataFrame, blobs: pd.DataFrame) -> pd.DataFrame:
    """Per repository: kept and deleted digests, tags untagged (on kept digests), and
    reclaimable bytes (no rows for an empty plan)."""
    decisions = digest_decisions(plan)
    untagged = plan[plan["action"] == "untag"].groupby("repository").size()
    repositories = pd.Index(sorted(set(decisions["repository"])), name="repository", dtype="str")
    actions = decisions.groupby("repository")["action"]
    table = pd.DataFrame(
        {
            "kept": actions.agg(lambda a: int((a == "keep").sum())),
            "deleted": actions.agg(lambda a: int((a == "delete").sum())),
            "untagged": untagged,
            "bytes_reclaimable": reclaimable_bytes(plan, blobs),
        }
    ).reindex(repositories, fill_value=0)
    return (
        table.fillna(0)
        .astype(
            {"kept": "int64", "deleted": "int64", "untagged": "int64", "bytes_reclaimable": "int64"}
        )
        .reset_index()[SUMMARY_COLUMNS]
    )


def by_reason(plan: pd.DataFrame) -> pd.DataFrame:
    """Digests per (action, first reason)."""
    decisions = digest_decisions(plan)
    return (
        decisions.groupby(["action", "reason"])
        .size()
        .rename("digests")
        .reset_index()
        .sort_values(["action", "digests"], ascending=[False, False], ignore_index=True)
    )
