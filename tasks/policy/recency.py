"""When images were pushed and pulled, as the registry and pull rules rank them: the push
time per image (`PushTimes`) and the pull records per tag and digest (`PullView`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from tasks.core.duration import format_duration
from tasks.core.frames import from_micros, to_micros
from tasks.policy.catalog import Catalog
from tasks.policy.evidence import DeferredLines
from tasks.policy.state import PlanState, created_column
from tasks.pulls.records import PullRecords


@dataclass
class PushTimes:
    """Per image row, the time the push rules rank by (epoch us, `known`): the vendor's push
    time where the registry stage read one (`PlanInputs.pushed`; `source` names its field),
    else `created`. In a repository whose push times were read, `created` does not count
    (a mirror's images carry their upstream build dates, reproducible builds 1970): an
    image the vendor lists no time for is `unlisted`. An index takes its newest child's
    time when that is newer."""

    micros: np.ndarray
    known: np.ndarray
    unlisted: np.ndarray
    source: np.ndarray  # per row: the vendor's field, "" for `created`

    @classmethod
    def of(cls, state: PlanState) -> PushTimes:
        images = state.images
        size = len(images)
        micros, known = created_column(images)
        source = np.full(size, "", dtype=object)
        covered = np.zeros(size, dtype=bool)
        pushed = state.inputs.pushed
        if pushed is not None and not pushed.empty:
            rows = images.rows_of(pushed)
            found = np.flatnonzero(rows >= 0)
            at = rows[found]
            times = pushed["pushed"]
            covered[at] = True
            known[at] = times.notna().to_numpy()[found]
            micros[at] = times.astype("int64").to_numpy()[found]
            source[at] = pushed["source"].to_numpy(dtype=object)[found]
        for parent, kids in state.children.items():  # in edge order: indexes may nest
            for kid in kids:
                if known[kid] and (not known[parent] or micros[kid] > micros[parent]):
                    micros[parent], known[parent] = micros[kid], True
                    source[parent] = source[kid]
        return cls(micros, known, covered & ~known, source)

    def by(self, row: int) -> str:
        """The evidence's ", by <the vendor's field>" where `row` ranks by the vendor's time."""
        return f", by {self.source[row]}" if self.source[row] else ""


@dataclass
class PullView:
    """The pull records in image rows: last pull (epoch us, -1 never) and the record it is
    from (row of `records.last`, -1 none) per image row, an index taking its newest
    child's. The pulls per day are looked up only for evidence lines (`pulls_since`)."""

    images: Catalog  # not the whole state: the deferred evidence lines keep this alive
    records: PullRecords | None
    last: np.ndarray
    record: np.ndarray
    _days: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _counts: dict[int, np.ndarray] = field(default_factory=dict)  # day start -> per row

    @classmethod
    def of(cls, state: PlanState, pulls: PullRecords | None) -> PullView:
        size = len(state.images)
        last = np.full(size, -1, dtype=np.int64)
        record = np.full(size, -1, dtype=np.int64)
        if pulls is None:
            return cls(state.images, None, last, record)
        rows = state.images.rows_of(pulls.last)
        micros = pulls.last["last_pull"].astype("int64").to_numpy()
        found = np.flatnonzero(rows >= 0)
        last[rows[found]] = micros[found]
        record[rows[found]] = found
        for parent, kids in state.children.items():  # in edge order: indexes may nest
            for kid in kids:
                if last[kid] > last[parent]:
                    last[parent], record[parent] = last[kid], record[kid]
        return cls(state.images, pulls, last, record)

    def pulls_since(self, day_start_us: int, rows: np.ndarray) -> np.ndarray:
        """The pulls of each image row of `rows` on the record days from `day_start_us`."""
        if self._days is None:
            days = self.records.days if self.records is not None else None
            if days is None or days.empty:
                empty = np.zeros(0, dtype=np.int64)
                self._days = (empty, empty, empty)
            else:
                day_rows = self.images.rows_of(days)
                keep = day_rows >= 0
                self._days = (
                    day_rows[keep],
                    days["day"].astype("int64").to_numpy()[keep],
                    days["pulls"].to_numpy()[keep],
                )
        counts = self._counts.get(day_start_us)
        if counts is None:  # once per window, however many lines are read one at a time
            day_rows, day_micros, day_pulls = self._days
            recent = day_micros >= day_start_us
            counts = np.bincount(
                day_rows[recent], weights=day_pulls[recent], minlength=len(self.last)
            ).astype(np.int64)
            self._counts[day_start_us] = counts
        return np.asarray(counts[rows], dtype=np.int64)

    def agents(self, rows: np.ndarray) -> list[str]:
        """The user agent of the last pull of each image row ("" for none known)."""
        if self.records is None:
            return [""] * len(rows)
        listed = self.records.last["user_agents"].to_numpy()
        return [
            str(listed[at][0]) if at >= 0 and len(listed[at]) else ""
            for at in self.record[rows].tolist()
        ]

    def keep_in_window(
        self, state: PlanState, where: str, window: timedelta, candidates: np.ndarray
    ) -> None:
        since = state.now - window
        since_us = to_micros(since)
        label = f"{where} {format_duration(window)}"
        pulled = np.flatnonzero(candidates & (self.last >= since_us))
        day_start = to_micros(datetime(since.year, since.month, since.day, tzinfo=since.tzinfo))

        def lines(at: np.ndarray) -> list[str]:  # formatted when read (explain, a report)
            rows = pulled[at]
            whens = np.datetime_as_string(self.last[rows].astype("datetime64[us]"), unit="m")
            return [
                f"pulled-within: last pulled {when[:10]} {when[11:]} UTC"
                f"{' by ' + agent if agent else ''}, {count} pulls in the window ({label})"
                for when, agent, count in zip(
                    whens.tolist(),
                    self.agents(rows),
                    self.pulls_since(day_start, rows).tolist(),
                    strict=True,
                )
            ]

        deferred = DeferredLines(pulled, lines, "pulled-within: last pulled ")
        state.reasons.keep_many(pulled, "pulled-within", deferred)
        gaps = self.records.gaps(since, state.now) if self.records else [(since, state.now)]
        if not gaps:
            return
        start, end = gaps[0]
        why = (
            f"pulled-within: pull records do not cover the window ({label}): nothing "
            f"recorded {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC; kept until they do"
        )
        unpulled = np.flatnonzero(candidates & (self.last < since_us))
        state.reasons.keep_many(unpulled, "pulled-within", [why] * len(unpulled))

    def keep_most_recent(
        self, state: PlanState, where: str, count: int, candidates: np.ndarray
    ) -> None:
        if self.records is None:  # no records at all: which are the most recent is unknown
            for image in np.flatnonzero(candidates).tolist():
                state.reasons.keep(
                    image, "pulled-within", f"pulled-within: no pull records ({where}); kept"
                )
            return
        pulled = np.flatnonzero(candidates & (self.last >= 0))
        ranked = pulled[np.lexsort((pulled, -self.last[pulled]))][:count]
        for rank, image in enumerate(ranked.tolist(), start=1):
            when = from_micros(int(self.last[image]))
            state.reasons.keep(
                image,
                "pulled-within",
                f"pulled-within: {where}: {ordinal(rank)} most recently pulled "
                f"(last {when:%Y-%m-%d %H:%M} UTC, mostRecentlyPulledCount {count})",
            )


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
