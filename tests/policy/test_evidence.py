"""Evidence lines, deferred or not, read back in the order the rules wrote them: checked
against a plain dict of lists on random sequences of writes (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core.frames import typed_frame
from tasks.policy.catalog import catalog
from tasks.policy.evidence import DeferredLines, Evidence, EvidenceLines
from tasks.registry.frames import EDGE_COLUMNS

ROWS = 12

# One write: ("add", row) | ("many", rows) | ("deferred", rows) | ("replace", row)
writes = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, ROWS - 1)),
        st.tuples(st.just("many"), st.sets(st.integers(0, ROWS - 1))),
        st.tuples(st.just("deferred"), st.sets(st.integers(0, ROWS - 1))),
        st.tuples(st.just("replace"), st.integers(0, ROWS - 1)),
    ),
    max_size=12,
)


def _catalog() -> object:
    digests = [f"sha256:{i:064x}" for i in range(ROWS)]
    images = pd.DataFrame({"repository": pd.Series(["app"] * ROWS, dtype="str"), "digest": digests})
    tags = pd.DataFrame({"repository": ["app"], "tag": ["t"], "digest": [digests[0]]})
    return catalog(images, tags, typed_frame([], EDGE_COLUMNS))


def _apply(sequence: list[tuple[str, object]]) -> tuple[EvidenceLines, dict[int, list[str]]]:
    lines, model = EvidenceLines(), {}  # type: ignore[var-annotated]
    for step, (kind, what) in enumerate(sequence):
        if kind == "add":
            assert isinstance(what, int)
            lines.add(what, f"add {step}")
            model.setdefault(what, []).append(f"add {step}")
        elif kind == "many":
            rows = np.array(sorted(what), dtype=np.int64)  # type: ignore[call-overload]
            lines.add_many(rows, [f"many {step} {r}" for r in rows.tolist()])
            for r in rows.tolist():
                model.setdefault(r, []).append(f"many {step} {r}")
        elif kind == "deferred":
            rows = np.array(sorted(what), dtype=np.int64)  # type: ignore[call-overload]

            def format(at: np.ndarray, rows: np.ndarray = rows, step: int = step) -> list[str]:
                return [f"deferred {step} {r}" for r in rows[at].tolist()]

            lines.add_deferred(DeferredLines(rows, format, f"deferred {step} "))
            for r in rows.tolist():
                model.setdefault(r, []).append(f"deferred {step} {r}")
        else:
            assert isinstance(what, int)
            kept = [line for line in lines.lines(what) if line.startswith("add")]
            lines.replace(what, [f"replaced {step}", *kept])
            model[what] = [
                f"replaced {step}",
                *[x for x in model.get(what, []) if x.startswith("add")],
            ]
    return lines, {row: found for row, found in model.items() if found}


@settings(max_examples=300, deadline=None)
@given(writes)
def test_lines_read_back_in_the_order_written(sequence: list[tuple[str, object]]) -> None:
    lines, model = _apply(sequence)
    for row in range(ROWS):
        assert lines.lines(row) == model.get(row, []), row
    images = _catalog()
    evidence = Evidence(lines, images)  # type: ignore[arg-type]
    expected = {images.key(row): found for row, found in model.items()}  # type: ignore[attr-defined]
    assert dict(evidence.items()) == expected
    assert len(evidence) == len(expected) and set(evidence) == set(expected)
    for key, found in expected.items():
        assert evidence[key] == found and evidence.get(key) == found
    assert evidence.get(("app", "sha256:" + "f" * 64)) is None


def test_deferred_lines_are_formatted_only_when_read() -> None:
    asked: list[list[int]] = []
    rows = np.array([1, 3, 5], dtype=np.int64)

    def format(at: np.ndarray) -> list[str]:
        asked.append(rows[at].tolist())
        return [f"pulled {r}" for r in rows[at].tolist()]

    lines = EvidenceLines()
    lines.add(3, "kubernetes: in use")
    lines.add_deferred(DeferredLines(rows, format, "pulled "))
    lines.add(5, "keep-tag: v1")
    assert asked == []
    assert lines.lines(3) == ["kubernetes: in use", "pulled 3"]
    assert lines.lines(5) == ["pulled 5", "keep-tag: v1"]
    assert lines.lines(2) == []
    assert asked == [[3], [5]]
    evidence = Evidence(lines, _catalog())  # type: ignore[arg-type]
    assert evidence.first_lines("keep-tag") == ["keep-tag: v1"]
    assert asked == [[3], [5]]  # no deferred line may start so: none formatted
    assert evidence.first_lines("pulled 1") == ["pulled 1"]


def test_a_deferred_row_it_does_not_hold_is_a_key_error() -> None:
    deferred = DeferredLines(np.array([2], dtype=np.int64), lambda at: ["x"] * len(at), "x")
    with pytest.raises(KeyError):
        deferred.line(1)
    assert 2 in deferred and 1 not in deferred
