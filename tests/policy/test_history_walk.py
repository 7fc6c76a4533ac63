"""The history walk stops early (newest commit first); it must keep exactly what a full
walk keeps. Checked against a brute-force reference on random histories, including
committer times that go backwards along parents (clock skew, rebases)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import KeepPolicy
from tasks.policy import history
from tasks.policy.gitpolicy import evaluate_git_policies
from tasks.policy.history import CommitHistory

NOW = datetime(2026, 11, 20, tzinfo=UTC)
Key = tuple[str, str]


def _ancestors(head: str, parents: dict[str, list[str]]) -> set[str]:
    """`head` and every commit reachable from it through all parents."""
    seen, stack = {head}, [head]
    while stack:
        for parent in parents[stack.pop()]:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def _brute_force(
    head: str,
    parents: dict[str, list[str]],
    times: dict[str, datetime],
    links: dict[Key, set[str]],
    last: int | None,
    window: timedelta | None,
    operator: str,
) -> set[Key]:
    seen = _ancestors(head, parents)
    newest = {
        key: max(times[s] for s in shas if s in seen) for key, shas in links.items() if shas & seen
    }
    kept = set()
    by_repo: dict[str, list[Key]] = defaultdict(list)
    for key in newest:
        by_repo[key[0]].append(key)
    for keys in by_repo.values():
        distinct = sorted({newest[k] for k in keys}, reverse=True)
        for key in keys:
            rank = distinct.index(newest[key])
            by_last = last is None or rank < last
            by_in = window is not None and newest[key] >= NOW - window
            if window is None:
                ok = by_last
            elif last is None:
                ok = by_in
            else:
                ok = (by_last and by_in) if operator == "And" else (by_last or by_in)
            if ok:
                kept.add(key)
    return kept


@pytest.mark.parametrize("seed", range(300))
def test_early_stopping_walk_keeps_what_a_full_walk_keeps(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randrange(5, 80)
    shas = [f"{seed:08x}{i:032x}" for i in range(count)]
    parents: dict[str, list[str]] = {shas[0]: []}
    times = {shas[0]: NOW - timedelta(hours=200)}
    for i in range(1, count):
        parents[shas[i]] = rng.sample(shas[:i], k=min(i, rng.choice((1, 1, 1, 2, 3))))
        skew = rng.choice((1, 1, 1, -1))  # a quarter of commits are older than a parent
        times[shas[i]] = times[parents[shas[i]][0]] + skew * timedelta(hours=rng.randrange(0, 9))
    links: dict[Key, set[str]] = {}
    for d in range(rng.randrange(1, 40)):
        key = (f"repo{rng.randrange(3)}", f"sha256:{d:064x}")
        links[key] = set(rng.sample(shas, k=rng.choice((1, 1, 2))))
    last = rng.choice((None, 0, 1, 2, 3, 5))
    window = rng.choice((None, timedelta(hours=24), timedelta(hours=100)))
    operator = rng.choice(("And", "Or"))
    head = rng.choice(shas[count // 2 :])

    per_reference: dict[str, object] = {"operator": operator}
    per_reference["last"] = -1 if last is None else last
    if window is not None:
        per_reference["in"] = f"{int(window.total_seconds() // 3600)}h"
        if last is None:
            del per_reference["last"]
    policy = KeepPolicy.model_validate(
        {"references": {"branch": "b"}, "imagesPerReference": per_reference}
    )
    refs = pd.DataFrame(
        {"name": ["b"], "kind": ["branch"], "commit": [head], "date": [times[head]]}
    ).astype({"date": "datetime64[us, UTC]"})
    commits = pd.DataFrame({"sha": shas, "parents": [parents[s] for s in shas]})
    commits["time"] = pd.Series([times[s] for s in shas]).astype("datetime64[us, UTC]")

    keys = list(links)
    rows = evaluate_git_policies(
        refs,
        CommitHistory.from_frame(commits),
        {row: links[key] for row, key in enumerate(keys)},
        [repository for repository, _ in keys],
        [policy],
        NOW,
    )
    kept = {keys[row] for row in rows}
    assert kept == _brute_force(head, parents, times, links, last, window, operator)


def _random_skewed_history(rng: random.Random, count: int) -> tuple[dict, dict]:
    shas = [f"c{i}" for i in range(count)]
    parents: dict[str, list[str]] = {shas[0]: []}
    times = {shas[0]: rng.randrange(10**6)}
    for i in range(1, count):
        parents[shas[i]] = rng.sample(shas[:i], k=min(i, rng.choice((1, 1, 2, 3))))
        times[shas[i]] = times[parents[shas[i]][0]] + rng.choice((1, 1, -1)) * rng.randrange(99)
    return parents, times


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("rounds", [64, 1], ids=["vectorised", "falls-back-to-walk"])
def test_newest_ancestor_time_is_the_max_over_all_ancestors(
    seed: int, rounds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "PROPAGATION_ROUNDS", rounds)
    rng = random.Random(seed)
    parents, times = _random_skewed_history(rng, rng.randrange(2, 200))
    shas = list(times)
    row_of = {sha: row for row, sha in enumerate(shas)}
    counts = [len(parents[sha]) for sha in shas]
    bound = history._newest_ancestor_times(
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        np.array([row_of[p] for sha in shas for p in parents[sha]], dtype=np.int64),
        np.array([times[sha] for sha in shas], dtype=np.int64),
    )
    assert dict(zip(shas, bound.tolist(), strict=True)) == {
        sha: max(times[a] for a in _ancestors(sha, parents)) for sha in shas
    }
