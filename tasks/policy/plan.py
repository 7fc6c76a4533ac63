"""The deletion plan: every keep rule applied to the extracted registry, Git and cluster.

Pure: DataFrames and the configuration in, the plan DataFrame out; no I/O, no clock.

``plan`` — one row per repository x digest x tag (tag empty for an untagged manifest)
    repository  str                  repository name
    digest      str                  manifest digest
    tag         str                  tag on the digest, empty when untagged
    media_type  str                  manifest media type
    created     datetime64[us, UTC]  config ``created`` (an index: its newest child)
    commits     object (list[str])   commit SHAs the image is linked to
    action      str                  ``keep`` or ``delete``
    reason      str                  first keep reason in REASON_ORDER, or ``no-policy``
    reasons     object (list[str])   every keep reason that applies
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from tasks.frames import column_rows, from_micros, gc_paused, to_micros
from tasks.policy.config import Config, name_pattern
from tasks.policy.gitpolicy import GitKeep, evaluate_git_policies
from tasks.policy.linking import CommitIndex, Key, link_images
from tasks.registry.reference import canonical_registry, split_repository_reference

REASON_ORDER = (
    "kubernetes",
    "helm-history",
    "git-policy",
    "keep-list",
    "keep-tag",
    "built-within",
    "unlinked",
    "index-child",
    "referrer",
    "shared-digest",
    "unreadable",
)
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
_REFERRER_TAG = re.compile(r"^sha256-([0-9a-f]{64})\.(sig|att|sbom)$")


@dataclass
class PlanInputs:
    """Everything the plan is computed from (git and cluster may be absent when disabled)."""

    images: pd.DataFrame
    tags: pd.DataFrame
    index_edges: pd.DataFrame
    refs: pd.DataFrame | None = None
    commits: pd.DataFrame | None = None
    cluster: pd.DataFrame | None = None
    keep_list: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """The plan table plus the evidence behind every keep, for reports and `explain`."""

    table: pd.DataFrame
    evidence: dict[Key, list[str]]
    unknown_commits: dict[Key, set[str]]


def _reason_rank(reason: str) -> int:
    return REASON_ORDER.index(reason.split("[", 1)[0])


def build_plan(inputs: PlanInputs, config: Config, registry_host: str, now: datetime) -> Plan:
    """Return the plan for `inputs` under `config` at time `now` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with gc_paused():
        return _build_plan(inputs, config, registry_host, now)


def _build_plan(inputs: PlanInputs, config: Config, registry_host: str, now: datetime) -> Plan:
    images, tags, edges = inputs.images, inputs.tags, inputs.index_edges
    cleanup = config.cleanup
    digest_reasons: dict[Key, set[str]] = defaultdict(set)
    evidence: dict[Key, list[str]] = defaultdict(list)
    tag_reasons: dict[tuple[str, str], set[str]] = defaultdict(set)

    def keep(key: Key, reason: str, why: str) -> None:
        digest_reasons[key].add(reason)
        evidence[key].append(why)

    tag_digest = {(r, t): d for r, t, d in column_rows(tags, "repository", "tag", "digest")}
    known = set(column_rows(images, "repository", "digest"))
    children: dict[Key, list[Key]] = defaultdict(list)
    for repo, parent, child in column_rows(edges, "repository", "parent", "child"):
        children[(repo, parent)].append((repo, child))

    # Links to commits.
    commit_index = CommitIndex(inputs.commits["sha"].tolist() if inputs.commits is not None else [])
    links = link_images(
        images, tags, edges, commit_index, config.link.label, config.link.tag_pattern
    )

    # Cluster: in use now, and Helm rollback targets.
    host = canonical_registry(registry_host)
    if inputs.cluster is not None and config.uses_kubernetes:
        used = inputs.cluster[inputs.cluster["registry"] == host]
        for row in used.itertuples(index=False):
            reason = "helm-history" if row.source == "helm" else "kubernetes"
            key: Key | None = None
            if row.digest:
                key = (row.repository, row.digest)
            elif (row.repository, row.tag) in tag_digest:
                key = (row.repository, tag_digest[(row.repository, row.tag)])
            if key is not None and key in known:
                where = f"{row.context}/{row.namespace} {row.kind} {row.object}"
                keep(key, reason, f"{reason}: {where} uses {row.image}")

    # Git history.
    if config.uses_git and inputs.refs is not None and inputs.commits is not None:
        git_keeps: dict[Key, list[GitKeep]] = evaluate_git_policies(
            inputs.refs, inputs.commits, links.commits, config.effective_policies(), now
        )
        for key, keeps in git_keeps.items():
            for k in keeps:
                keep(key, f"git-policy[{k.policy}]", k.describe())

    # Keep list: `repository:tag`, `repository@digest`, optionally prefixed by the host.
    for entry in inputs.keep_list:
        repo, tag, digest = split_repository_reference(entry, host)
        if digest and (repo, digest) in known:
            keep((repo, digest), "keep-list", f"keep-list: {entry}")
        elif tag and (repo, tag) in tag_digest:
            tag_reasons[(repo, tag)].add("keep-list")
            evidence[(repo, tag_digest[(repo, tag)])].append(f"keep-list: {entry}")

    # Keep tags (anchored).
    patterns = [name_pattern(p) for p in cleanup.keep_tags]
    if patterns:
        for (repo, tag), digest in tag_digest.items():
            if any(p.fullmatch(tag) for p in patterns):
                tag_reasons[(repo, tag)].add("keep-tag")
                evidence[(repo, digest)].append(f"keep-tag: tag {tag} matches cleanup.keepTags")

    # Built within the last N hours (an index is as new as its newest child).
    # Times as epoch microseconds (None = unknown): boxing 10^5 Timestamps costs seconds.
    created = _created_micros(images)
    for parent, kids in children.items():
        times = [t for k in kids if (t := created.get(k)) is not None]
        newest = created.get(parent)
        if times and (newest is None or max(times) > newest):
            created[parent] = max(times)
    if not cleanup.disable_built_within_last_n_hours_policy:
        since = now - timedelta(hours=cleanup.keep_images_built_within_last_n_hours)
        since_micros = to_micros(since)
        for key, micros in created.items():
            if micros is not None and micros >= since_micros:
                when = from_micros(micros)
                keep(key, "built-within", f"built-within: created {when:%Y-%m-%d %H:%M} UTC")

    # Unlinked images.
    child_keys = {k for kids in children.values() for k in kids}
    referrer_subject = _referrers(images, tags)
    if cleanup.unlinked == "keep":
        for key in known:
            if not links.commits.get(key) and key not in child_keys and key not in referrer_subject:
                keep(key, "unlinked", "unlinked: no commit link (cleanup.unlinked: keep)")

    # Per-tag reasons make their digest kept too.
    digest_kept = {k for k, r in digest_reasons.items() if r}
    digest_kept.update((repo, tag_digest[(repo, tag)]) for (repo, tag) in tag_reasons)

    # Children of kept indexes are kept (to a fixpoint: indexes may nest).
    frontier = [k for k in digest_kept if k in children]
    while frontier:
        parent = frontier.pop()
        for child in children[parent]:
            if child in known:
                digest_reasons[child].add("index-child")
                evidence[child].append(f"index-child: in kept index {parent[1][:19]}")
                if child not in digest_kept:
                    digest_kept.add(child)
                    if child in children:
                        frontier.append(child)

    # Referrers share their subject's decision, and nothing else decides for them.
    for key, subject in referrer_subject.items():
        digest_reasons[key] = set()
        digest_kept.discard(key)
        if subject in digest_kept:
            digest_reasons[key] = {"referrer"}
            evidence[key] = [f"referrer: of kept {subject[1][:19]}"]
            digest_kept.add(key)
        else:
            evidence[key] = [f"referrer: its subject {subject[1][:19]} is not kept or is gone"]

    # A manifest or config regsweep cannot parse is kept, whatever else says (older saved
    # inputs have no error column).
    if "error" in images.columns:
        for repo, digest, error in column_rows(images, "repository", "digest", "error"):
            if error:
                keep((repo, digest), "unreadable", f"unreadable: {error}")
                digest_kept.add((repo, digest))

    table = _table(
        images, tags, known, digest_reasons, tag_reasons, digest_kept, links.commits, created
    )
    return Plan(table=table, evidence=dict(evidence), unknown_commits=links.unknown)


def _created_micros(images: pd.DataFrame) -> dict[Key, int | None]:
    micros = images["created"].astype("int64").tolist()
    unknown = images["created"].isna().tolist()
    keys = column_rows(images, "repository", "digest")
    return {
        key: None if missing else m for key, m, missing in zip(keys, micros, unknown, strict=True)
    }


def _referrers(images: pd.DataFrame, tags: pd.DataFrame) -> dict[Key, Key]:
    """Map each referrer (OCI `subject`, or a `sha256-<hex>.sig|.att|.sbom` tag) to its subject."""
    subjects: dict[Key, Key] = {}
    for repo, digest, subject in column_rows(images, "repository", "digest", "subject"):
        if subject:
            subjects[(repo, digest)] = (repo, subject)
    for repo, tag, digest in column_rows(tags, "repository", "tag", "digest"):
        match = _REFERRER_TAG.match(tag)
        if match:
            subjects.setdefault((repo, digest), (repo, f"sha256:{match.group(1)}"))
    return subjects


def _table(
    images: pd.DataFrame,
    tags: pd.DataFrame,
    known: set[Key],
    digest_reasons: dict[Key, set[str]],
    tag_reasons: dict[tuple[str, str], set[str]],
    digest_kept: set[Key],
    commits: dict[Key, set[str]],
    created: dict[Key, int | None],
) -> pd.DataFrame:
    media = {(r, d): m for r, d, m in column_rows(images, "repository", "digest", "media_type")}
    tagged: set[Key] = set()
    entries = [(r, d, t) for r, t, d in column_rows(tags, "repository", "tag", "digest")]
    tagged.update((repo, digest) for repo, digest, _ in entries)
    entries += [(r, d, "") for r, d in sorted(known - tagged)]
    columns: dict[str, list[Any]] = {name: [] for name in PLAN_COLUMNS}
    rank_cache: dict[frozenset[str], list[str]] = {}
    for repo, digest, tag in entries:
        key = (repo, digest)
        reasons = frozenset(digest_reasons.get(key, set()) | tag_reasons.get((repo, tag), set()))
        if not reasons and key in digest_kept:
            reasons = frozenset({"shared-digest"})
        ordered = rank_cache.get(reasons)
        if ordered is None:
            ordered = rank_cache[reasons] = sorted(reasons, key=lambda r: (_reason_rank(r), r))
        columns["repository"].append(repo)
        columns["digest"].append(digest)
        columns["tag"].append(tag)
        columns["media_type"].append(media.get(key, ""))
        columns["created"].append(created.get(key))
        columns["commits"].append(sorted(commits.get(key, ())))
        columns["action"].append("keep" if key in digest_kept else "delete")
        columns["reason"].append(ordered[0] if ordered else "no-policy")
        columns["reasons"].append(list(ordered))
    micros = pd.array(columns.pop("created"), dtype="Int64")
    table = pd.DataFrame(
        {name: pd.Series(values, dtype=PLAN_COLUMNS[name]) for name, values in columns.items()}
    )
    table.insert(
        PLAN_COLUMNS_ORDER.index("created"),
        "created",
        pd.to_datetime(micros, unit="us", utc=True).astype(PLAN_COLUMNS["created"]),
    )
    return table.sort_values(["repository", "action", "tag", "digest"], ignore_index=True)
