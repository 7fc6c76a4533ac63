"""Why no keepPolicy keeps an image: for `regsweep explain` of a deletion (pure).

Tried as a new user would, `explain` of a deleted image said only "its commits are not among
the images any keepPolicy keeps". This says, reference by reference, how close each policy
came, closest first: "3rd newest image on branch main; keepPolicies[2] keeps 2 there",
"outside keepPolicies[1]'s 168h window by 3 days", "branch feature-old reaches it, but
keepPolicies[1] does not select it: older than 168h by 2 days", "no live branch or tag
reaches its commits: was its branch deleted from origin?". The walk and the ranking are
the git policy's own (`tasks.policy.gitpolicy`), with no cut-off.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from tasks.core.config import KeepPolicy, Limit, name_pattern
from tasks.core.duration import format_duration
from tasks.core.frames import from_micros
from tasks.policy.gitpolicy import _ordinal, _ranked, _References, _Walk, _window_start, _within
from tasks.policy.history import CommitHistory


def near_misses(
    refs: pd.DataFrame,
    history: CommitHistory,
    peers: dict[str, set[str]],
    target: str,
    policies: list[KeepPolicy],
    now: datetime,
) -> list[str]:
    """Lines saying why no policy keeps `target` (a key of `peers`, which maps every image
    ranked with it, its repository or werf image, to its commits), closest first."""
    keys = sorted(peers)
    rows = {key: row for row, key in enumerate(keys)}
    if target not in rows or not peers[target]:
        return []
    walk = _Walk(history, {rows[k]: peers[k] for k in keys}, ["peers"] * len(keys))
    references = _References(refs)
    chosen: dict[tuple[str, str], int] = {}  # reference -> the last policy selecting it
    matched: dict[tuple[str, str], int] = {}  # reference -> the last policy whose pattern fits
    for index, policy in enumerate(policies):
        for name, kind, _ in references.select(policy, now):
            chosen[(name, kind)] = index
        kind = "branch" if policy.references.branch is not None else "tag"
        pattern = name_pattern(policy.references.branch or policy.references.tag or "")
        for name, ref_kind, _, _ in references.rows:
            if ref_kind == kind and pattern.fullmatch(name):
                matched[(name, kind)] = index
    heads = {(name, kind): (commit, date) for name, kind, commit, date in references.rows}
    lines: list[tuple[float, str]] = []
    for (name, kind), (commit, date) in heads.items():
        if (name, kind) not in matched:
            continue
        head = int(history.rows([commit])[0])
        if head < 0:
            continue
        if kind == "tag":
            if rows[target] not in walk.images_on(head):
                continue
            rank, when = 0, walk.times[head]
        else:
            reached = walk.reach(head, None, None, "And")
            if rows[target] not in reached:
                continue
            ranked = {image: (r, t) for image, r, t, _ in _ranked(reached, ["peers"] * len(keys))}
            rank, when = ranked[rows[target]]
        if (name, kind) in chosen:
            index = chosen[(name, kind)]
            lines.append(_missed(policies[index], index, kind, name, rank, when, now))
        else:
            index = matched[(name, kind)]
            lines.append(_unselected(policies[index], index, kind, name, date, now))
    if not lines:
        shas = ", ".join(sorted(c[:7] for c in peers[target]))
        return [
            f"no live branch or tag reaches its commits ({shas}): was its branch deleted "
            "from origin, or its commit never pushed?"
        ]
    return [line for _, line in sorted(lines)]


def _missed(
    policy: KeepPolicy, index: int, kind: str, name: str, rank: int, when: int, now: datetime
) -> tuple[float, str]:
    """How far the image is from what the policy that sets `name`'s imagesPerReference
    keeps there."""
    per = policy.images_per_reference
    where = f"{kind} {name}"
    if kind == "tag":  # a tag keeps the images of its commit: a miss here is the limit's
        return 0.0, f"{where} names its commit; keepPolicies[{index}] keeps it"
    last = per.effective_last()
    start = _window_start(per.in_, now)
    time = from_micros(when)
    parts = []
    distance = 0.0
    if last is not None and rank >= last:
        parts.append(f"{_ordinal(rank + 1)} newest image on {where}; keeps {last} there")
        distance = rank + 1 - last
    window = per.in_
    if window is not None and start is not None and when < start:
        late = (now - window) - time
        parts.append(
            f"outside the {format_duration(window)} window by {_human(late)} "
            f"(commit {time:%Y-%m-%d %H:%M} UTC)"
        )
        distance = distance or late.total_seconds() / 86400
    if not parts or _within(last, start, per.operator, rank, when):
        parts = [f"{_ordinal(rank + 1)} newest image on {where}"]
    joined = f" {per.operator.lower()} ".join(parts) if len(parts) > 1 else parts[0]
    return distance, f"{joined} (cleanup.keepPolicies[{index}])"


def _unselected(
    policy: KeepPolicy, index: int, kind: str, name: str, date: int, now: datetime
) -> tuple[float, str]:
    limit = policy.references.limit or Limit()
    parts = []
    if limit.last is not None:
        parts.append(f"not among the {limit.last} newest {kind}es it selects")
    if limit.in_ is not None:
        age = now - from_micros(date) - limit.in_
        if age > timedelta():
            parts.append(f"older than {format_duration(limit.in_)} by {_human(age)}")
    why = f" {limit.operator.lower()} ".join(parts) or "its limit leaves it out"
    return 1e6, (
        f"{kind} {name} reaches it, but cleanup.keepPolicies[{index}] does not select {name}: {why}"
    )


def _human(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days >= 1:
        return f"{days:.0f} day{'s' if round(days) != 1 else ''}"
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"
