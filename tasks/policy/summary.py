"""Summaries of a plan: per repository and per reason, with reclaimable bytes."""

from __future__ import annotations

import pandas as pd

from tasks.frames import column_rows

SUMMARY_COLUMNS = ["repository", "kept", "deleted", "bytes_reclaimable"]


def digest_decisions(plan: pd.DataFrame) -> pd.DataFrame:
    """One row per (repository, digest): action and first reason (of its first row)."""
    return plan.drop_duplicates(["repository", "digest"])[
        ["repository", "digest", "action", "reason"]
    ].reset_index(drop=True)


def reclaimable_bytes(plan: pd.DataFrame, blobs: pd.DataFrame) -> pd.Series:
    """Bytes per repository freed (after garbage collection) by deleting the plan's digests:
    blobs only deleted images use, each counted once per repository."""
    decisions = digest_decisions(plan)
    joined = blobs.merge(decisions, on=["repository", "digest"], how="left")
    kept_blobs = set(column_rows(joined[joined["action"] != "delete"], "repository", "blob"))
    freed = joined[joined["action"] == "delete"].drop_duplicates(["repository", "blob"])
    mask = [(r, b) not in kept_blobs for r, b in column_rows(freed, "repository", "blob")]
    return freed[mask].groupby("repository")["size"].sum().astype("int64")


def summarise(plan: pd.DataFrame, blobs: pd.DataFrame) -> pd.DataFrame:
    """Per repository: kept and deleted digests, and reclaimable bytes."""
    decisions = digest_decisions(plan)
    counts = (
        decisions.groupby(["repository", "action"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=["keep", "delete"], fill_value=0)
        .rename(columns={"keep": "kept", "delete": "deleted"})
    )
    counts["bytes_reclaimable"] = reclaimable_bytes(plan, blobs).reindex(counts.index, fill_value=0)
    return counts.reset_index()[SUMMARY_COLUMNS].astype(
        {"kept": "int64", "deleted": "int64", "bytes_reclaimable": "int64"}
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
