"""The evidence behind every keep: lines per image row, some formatted only when read.

A rule that keeps many images at once (a pull rule keeps half a million on a large
registry) hands over `DeferredLines`: one object for all of them, which formats a row's
line when somebody reads it (`explain`, a report), and which is not even stored per row.
`Evidence` is the plan's view of it all: a mapping from (repository, digest) to the lines,
in the order the rules wrote them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from tasks.policy.catalog import Catalog, Key


class DeferredLines:
    """The evidence lines of `rows` (ascending image rows), each formatted when read:
    `format(positions)` returns the lines of rows[positions]. Every line starts with
    `prefix`."""

    def __init__(
        self, rows: np.ndarray, format: Callable[[np.ndarray], list[str]], prefix: str
    ) -> None:
        self.rows = rows
        self.prefix = prefix
        self._format = format
        self._every: dict[int, str] | None = None

    def __contains__(self, row: object) -> bool:
        return isinstance(row, int) and self.get(row) is not None

    def get(self, row: int) -> str | None:
        """The line of `row`, None when these lines do not hold it."""
        if self._every is not None:
            return self._every.get(row)
        at = int(np.searchsorted(self.rows, row))
        if at >= len(self.rows) or int(self.rows[at]) != row:
            return None
        return self._format(np.array([at]))[0]

    def line(self, row: int) -> str:
        found = self.get(row)
        if found is None:
            raise KeyError(row)
        return found

    def every(self) -> dict[int, str]:
        """The line of every row, formatted in one pass (then kept)."""
        if self._every is None:
            lines = self._format(np.arange(len(self.rows)))
            self._every = dict(zip(self.rows.tolist(), lines, strict=True))
        return self._every


Line = str | DeferredLines


class EvidenceLines:
    """Every image row's evidence, in the order it was written.

    A row's lines are its listed lines (`listed`), after the deferred lines that hold it
    but that it does not list: a deferred batch is listed only by the rows that had lines
    already when it came (few; a row that gets lines later then starts with it). `replace`
    drops everything a row had, deferred lines included."""

    def __init__(self) -> None:
        self.listed: dict[int, list[Line]] = {}
        self.deferred: list[DeferredLines] = []
        self._cut: dict[int, int] = {}  # row -> deferred batches before it were replaced

    def add(self, row: int, line: str) -> None:
        listed = self.listed.get(row)
        if listed is None:
            self.listed[row] = [line]
        else:
            listed.append(line)

    def add_many(self, rows: np.ndarray, lines: list[str]) -> None:
        for row, line in zip(rows.tolist(), lines, strict=True):
            self.add(row, line)

    def add_deferred(self, lines: DeferredLines) -> None:
        self.deferred.append(lines)
        if self.listed:
            have = np.fromiter(self.listed, dtype=np.int64, count=len(self.listed))
            for row in have[np.isin(have, lines.rows)].tolist():
                self.listed[row].append(lines)

    def replace(self, row: int, lines: list[str]) -> None:
        self.listed[row] = list(lines)
        self._cut[row] = len(self.deferred)

    def lines(self, row: int) -> list[str]:
        """The lines of `row`, every one formatted."""
        listed = self.listed.get(row, [])
        unlisted = [
            batch.get(row)
            for batch in self.deferred[self._cut.get(row, 0) :]
            if not any(line is batch for line in listed)
        ]
        return [line for line in unlisted if line is not None] + [
            line if isinstance(line, str) else line.line(row) for line in listed
        ]

    def rows(self) -> list[int]:
        """Every row with a line, in ascending order."""
        every = {row for row, lines in self.listed.items() if lines}
        for batch in self.deferred:
            every.update(batch.rows.tolist())
        # a row replaced by no lines keeps none of the deferred ones before (never seen:
        # a referrer's evidence always says why)
        return sorted(r for r in every if r not in self._cut or self.lines(r))


class Evidence(Mapping[Key, list[str]]):
    """(repository, digest) -> its evidence lines."""

    def __init__(self, lines: EvidenceLines, images: Catalog) -> None:
        self._lines = lines
        self._images = images
        self._rows: list[int] | None = None

    def __getitem__(self, key: Key) -> list[str]:
        row = self._images.find(key)
        found = [] if row is None else self._lines.lines(row)
        if not found:
            raise KeyError(key)
        return found

    def _every_row(self) -> list[int]:
        if self._rows is None:
            self._rows = self._lines.rows()
        return self._rows

    def __iter__(self) -> Iterator[Key]:
        return (self._images.key(row) for row in self._every_row())

    def __len__(self) -> int:
        return len(self._every_row())

    def items(self) -> Iterator[tuple[Key, list[str]]]:  # type: ignore[override]
        for batch in self._lines.deferred:  # each in one pass, not a row at a time
            batch.every()
        for row in self._every_row():
            yield self._images.key(row), self._lines.lines(row)

    def values(self) -> Iterator[list[str]]:  # type: ignore[override]
        return (lines for _, lines in self.items())

    def first_lines(self, prefix: str) -> list[str]:
        """Per image with a line starting with `prefix`, the first such line. Deferred
        lines are never formatted for it: none of theirs may start with `prefix`."""
        if any(
            b.prefix.startswith(prefix) or prefix.startswith(b.prefix) for b in self._lines.deferred
        ):
            return [
                next(line for line in lines if line.startswith(prefix))
                for lines in self.values()
                if any(line.startswith(prefix) for line in lines)
            ]
        found = []
        for lines in self._lines.listed.values():
            for line in lines:
                if isinstance(line, str) and line.startswith(prefix):
                    found.append(line)
                    break
        return found
