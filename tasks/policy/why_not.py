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

from collections.abc import Iterable
from datetime import datetime, timedelta

import pandas as pd

from tasks.core.config import Config, KeepPolicy, Limit, name_pattern
from tasks.core.duration import format_duration
from tasks.core.frames import from_micros
from tasks.policy.gitpolicy import _ordinal, _ranked, _References, _Walk, _window_start, _within
from tasks.policy.history import CommitHistory
from tasks.policy.werf_layout import META_TAG


def why_not(
    table: pd.DataFrame,
    werf: list[str],
    refs: pd.DataFrame,
    history: CommitHistory,
    policies: list[KeepPolicy],
    now: datetime,
    wanted: Iterable[tuple[str, str]],
) -> dict[tuple[str, str], list[str]]:
    """For each (repository, digest) of `wanted` in the plan `table` that is linked to
    commits, the lines saying why no policy keeps it, closest first. An image is ranked
    with its repository's, or in a repository werf wrote (`werf`), with its werf image's
    (from the meta records' tags)."""
    by_repository: dict[str, list[str]] = {}
    for repository, digest in wanted:
        by_repository.setdefault(repository, []).append(digest)
    found: dict[tuple[str, str], list[str]] = {}
    for repository, digests in by_repository.items():
        rows = table[table["repository"] == repository]
        for peers, targets in _peer_groups(rows, repository in werf, digests):
            lines = near_misses(refs, history, peers, targets, policies, now)
            found.update({(repository, digest): lines[digest] for digest in lines})
    return found


def _peer_groups(
    rows: pd.DataFrame, werf: bool, targets: list[str]
) -> list[tuple[dict[str, set[str]], list[str]]]:
    """The images each of `targets` is ranked with (digest -> commits), with the targets
    ranked there: the repository's images, or werf's per image (its stages' digests and
    the commits their meta records name)."""
    images = rows.drop_duplicates("digest")
    whole = {str(d): set(c) for d, c in zip(images["digest"], images["commits"], strict=True)}
    if not werf:
        return [(whole, targets)]
    digest_of = dict(zip(rows["tag"], rows["digest"], strict=True))
    published: dict[str, dict[str, set[str]]] = {}
    for tag in rows["tag"]:
        if meta := META_TAG.match(str(tag)):
            image, commit, stage = meta.groups()
            if stage in digest_of:
                published.setdefault(image, {}).setdefault(digest_of[stage], set()).add(commit)
    groups: dict[str | None, list[str]] = {}
    for digest in targets:
        image = next((name for name, peers in published.items() if digest in peers), None)
        groups.setdefault(image, []).append(digest)
    return [(whole if image is None else published[image], ds) for image, ds in groups.items()]


def near_misses(
    refs: pd.DataFrame,
    history: CommitHistory,
    peers: dict[str, set[str]],
    targets: list[str],
    policies: list[KeepPolicy],
    now: datetime,
) -> dict[str, list[str]]:
    """For each of `targets` linked to commits (keys of `peers`, which maps every image
    ranked with them to its commits), the lines saying why no policy keeps it, closest
    first. One walk per reference serves every target."""
    keys = sorted(peers)
    rows = {key: row for row, key in enumerate(keys)}
    wanted = {rows[t]: t for t in targets if t in rows and peers[t]}
    if not wanted:
        return {}
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
    lines: dict[str, list[tuple[float, str]]] = {target: [] for target in wanted.values()}
    for (name, kind), (commit, date) in heads.items():
        if (name, kind) not in matched:
            continue
        head = int(history.rows([commit])[0])
        if head < 0:
            continue
        if kind == "tag":
            on_head = walk.times[head]
            ranks = {image: (0, on_head) for image in walk.images_on(head) if image in wanted}
        else:
            reached = walk.reach(head, None, None, "And")
            ranks = {
                image: (rank, when)
                for image, rank, when, _ in _ranked(reached, ["peers"] * len(keys))
                if image in wanted
            }
        for image, (rank, when) in ranks.items():
            if (name, kind) in chosen:
                index = chosen[(name, kind)]
                line = _missed(policies[index], index, kind, name, rank, when, now)
            else:
                index = matched[(name, kind)]
                line = _unselected(policies[index], index, kind, name, date, now)
            lines[wanted[image]].append(line)
    found = {}
    for target, misses in lines.items():
        if misses:
            found[target] = [line for _, line in sorted(misses)]
        else:
            shas = ", ".join(sorted(c[:7] for c in peers[target]))
            found[target] = [
                f"no live branch or tag reaches its commits ({shas}): was its branch deleted "
                "from origin, or its commit never pushed?"
            ]
    return found


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


WALK_BUDGET = 20_000_000
"""Commits the deletions list's Git near misses may visit (about 7 s at the ~0.33 us a
visit measured on benchmarks/git_policy.py's repository: 29,395 commits, 1,701 references
and 5 repositories are 250 million visits, 83 s, so skipped there; `explain` walks them for
one image). Over it, the list gives the build-age line."""


def walk_cost(git: tuple[pd.DataFrame, CommitHistory], wanted: list[tuple[str, str]]) -> int:
    """Commits visited, at most, to find the near misses of `wanted`: every reference's
    whole history, once per repository."""
    refs, history = git
    return len(refs) * len(history.times) * len({repository for repository, _ in wanted})


def closest_rules(
    table: pd.DataFrame,
    werf: list[str],
    config: Config,
    git: tuple[pd.DataFrame, CommitHistory] | None,
    now: datetime,
    wanted: Iterable[tuple[str, str]],
) -> dict[tuple[str, str], str]:
    """For each (repository, digest) of `wanted`, the keep rule that came closest to keeping
    it, in one line: the nearest Git policy miss for an image linked to commits (`git`: the
    references and the history, when Git is in use, and when walking every reference's
    whole history for every repository stays within WALK_BUDGET commits), else how far
    outside keepImagesBuiltWithinLastNHours it was built, else nothing to measure (no line).
    """
    wanted = list(wanted)
    closest: dict[tuple[str, str], str] = {}
    if git is not None and walk_cost(git, wanted) <= WALK_BUDGET:
        refs, history = git
        policies = config.effective_policies()
        for key, lines in why_not(table, werf, refs, history, policies, now, wanted).items():
            closest[key] = lines[0]
    cleanup = config.cleanup
    if cleanup.disable_built_within_last_n_hours_policy:
        return closest
    window = timedelta(hours=cleanup.keep_images_built_within_last_n_hours)
    images = table.drop_duplicates(["repository", "digest"])
    keys = zip(images["repository"], images["digest"], strict=True)
    created = dict(zip(keys, pd.to_datetime(images["created"], utc=True), strict=True))
    start = pd.Timestamp(now).tz_convert("UTC") - window
    for key in wanted:
        when = created.get(key, pd.NaT)
        if key in closest or pd.isna(when) or when >= start:
            continue
        closest[key] = (
            f"built {when:%Y-%m-%d %H:%M} UTC, outside keepImagesBuiltWithinLastNHours "
            f"({format_duration(window)}) by {_human((start - when).to_pytimedelta())}"
        )
    return closest
