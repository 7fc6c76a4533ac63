"""What the pull store holds, as the plan reads it (produced by `tasks.pulls.stage`).

``last`` — per (repository, digest) ever pulled
    repository, digest (str); last_pull (datetime64[us, UTC]); user_agents (object: list)
``days`` — per (repository, digest, day): pulls (int64); day (datetime64[us, UTC], midnight)
``uptime`` — (started, last_seen) of every receiver: the times the records cover
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

LAST_COLUMNS = {
    "repository": "str",
    "digest": "str",
    "last_pull": "datetime64[us, UTC]",
    "user_agents": "object",
}
DAY_COLUMNS = {"repository": "str", "digest": "str", "day": "datetime64[us, UTC]", "pulls": "int64"}
# A receiver's heartbeat comes every 10 s: a silence shorter than this is not a gap.
GAP_TOLERANCE = timedelta(seconds=30)
# The report's and the notebook's windows: "reclaimable if the window were 7/30/90 days".
ACTIVITY_DAYS = (7, 30, 90)


@dataclass
class PullRecords:
    last: pd.DataFrame
    days: pd.DataFrame
    uptime: list[tuple[datetime, datetime]] = field(default_factory=list)

    def gaps(self, since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
        """The stretches of [since, until] no receiver was up for (longer than
        GAP_TOLERANCE): there, "not pulled" is not known."""
        gaps = []
        cursor = since
        for started, seen in sorted(self.uptime):
            if started - cursor > GAP_TOLERANCE:
                gaps.append((cursor, min(started, until)))
            cursor = max(cursor, seen)
            if cursor >= until:
                break
        if until - cursor > GAP_TOLERANCE:
            gaps.append((cursor, until))
        return [(a, b) for a, b in gaps if a < until]

    def activity(self, now: datetime, windows: tuple[int, ...] = ACTIVITY_DAYS) -> pd.DataFrame:
        """Per repository: the last pull, the digests ever pulled and the pulls in each
        window of `windows` days up to `now` (columns `pulls_7d`...): the report's table."""
        columns = ["repository", "last_pull", "digests", *(f"pulls_{d}d" for d in windows)]
        if self.last.empty:
            return pd.DataFrame(columns=columns)
        table = self.last.groupby("repository").agg(
            last_pull=("last_pull", "max"), digests=("digest", "nunique")
        )
        for days in windows:
            since = now - timedelta(days=days)  # its whole day counts, as in the pull rules
            recent = self.days[
                self.days["day"]
                >= datetime(since.year, since.month, since.day, tzinfo=since.tzinfo)
            ]
            table[f"pulls_{days}d"] = recent.groupby("repository")["pulls"].sum()
        table = table.fillna(0).reset_index()
        for days in windows:
            table[f"pulls_{days}d"] = table[f"pulls_{days}d"].astype("int64")
        return table[columns].sort_values("repository", ignore_index=True)
