"""Human-readable reports of a run: markdown for Prefect artifacts, rich tables for the CLI."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.core.config import DEFAULT_POLICY_NAMES, Config
from tasks.policy.plan import Plan
from tasks.policy.summary import by_reason, summarise
from tasks.registry.frames import RegistryExtraction
from tasks.registry.vendors import registry_kind

if TYPE_CHECKING:
    from flows.pipeline import Planned
    from tasks.git.extract import GitExtraction


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


DELETIONS_SHOWN = 1000  # rows of the deletions list in the markdown report (the artifact: all)
DELETION_COLUMNS = ["repository", "tags", "digest", "size", "outcome", "closest"]
ACTED = ("deleted", "would-delete", "untagged", "would-untag", "gone", "failed", "refused")


def deletions(
    results: pd.DataFrame,
    images: pd.DataFrame,
    closest: dict[tuple[str, str], str] | None = None,
) -> pd.DataFrame:
    """Every deletion and untag of a run, one row each: repository, tags, digest, size (the
    image's config and layer bytes; shared blobs may stay), outcome, and the keep rule that
    came closest (`closest_rules`; empty where nothing can be measured, and for an untag,
    whose digest stays). Dry runs list what they would do."""
    closest = closest or {}
    acted = results[results["outcome"].isin(ACTED)]
    keys = zip(images["repository"], images["digest"], strict=True)
    sizes = dict(zip(keys, images["size"], strict=True))
    rows = [
        {
            "repository": row.repository,
            "tags": ", ".join(row.tags),
            "digest": row.digest,
            "size": int(sizes.get(key, 0)),
            "outcome": row.outcome,
            "closest": "" if "untag" in row.outcome else closest.get(key, ""),
        }
        for row in acted.itertuples(index=False)
        for key in [(row.repository, row.digest)]
    ]
    frame = pd.DataFrame(rows, columns=DELETION_COLUMNS)
    return frame.sort_values(["repository", "digest", "tags"], ignore_index=True)


@dataclass
class RunReport:
    """What a run decided and did."""

    summary: pd.DataFrame
    reasons: pd.DataFrame
    results: pd.DataFrame
    incomplete: list[str]
    notes: list[str] = field(default_factory=list)
    pulls: pd.DataFrame | None = None  # PullRecords.activity(): per repository, when pulled
    deletions: pd.DataFrame | None = None  # `deletions()`: every deletion and untag

    @classmethod
    def build(
        cls,
        plan: pd.DataFrame,
        blobs: pd.DataFrame,
        results: pd.DataFrame,
        incomplete: list[str],
        notes: list[str],
        pulls: pd.DataFrame | None = None,
        images: pd.DataFrame | None = None,
        closest: dict[tuple[str, str], str] | None = None,
    ) -> RunReport:
        """The report; with the registry's `images`, the list of deletions too (with the
        rule that came closest to keeping each, from `closest_rules`)."""
        listed = deletions(results, images, closest) if images is not None else None
        summary, reasons = summarise(plan, blobs), by_reason(plan)
        return cls(summary, reasons, results, incomplete, notes, pulls, listed)

    def summary_with_outcomes(self) -> pd.DataFrame:
        """The summary plus `deleted_in_run`: digests this run really deleted, per repository."""
        deleted = self.results[self.results["outcome"] == "deleted"]
        counts = deleted.groupby("repository").size()
        table = self.summary.copy()
        table["deleted_in_run"] = [int(counts.get(r, 0)) for r in table["repository"]]
        return table

    def outcomes(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.results["outcome"].value_counts().items()}

    def markdown(self, title: str) -> str:
        lines = [f"# {title}", ""]
        lines += [
            "| repository | kept | planned deletions | deleted by this run | untagged "
            "(planned) | reclaimable |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in self.summary_with_outcomes().itertuples(index=False):
            lines.append(
                f"| {row.repository} | {row.kept} | {row.deleted} | {row.deleted_in_run} | "
                f"{row.untagged} | {human_bytes(row.bytes_reclaimable)} |"
            )
        lines += ["", "| action | reason | digests |", "|---|---|---:|"]
        for row in self.reasons.itertuples(index=False):
            lines.append(f"| {row.action} | {row.reason} | {row.digests} |")
        if len(self.results):
            lines += ["", "Outcomes: " + ", ".join(f"{k} {v}" for k, v in self.outcomes().items())]
        fine = ["deleted", "gone", "would-delete", "untagged", "would-untag"]
        skipped = self.results[~self.results["outcome"].isin([*fine, "skipped-unsupported"])]
        for row in skipped.itertuples(index=False):
            what = f"{row.repository}:{row.tags[0]}" if not row.closure else ""
            what = what or f"{row.repository}@{row.digest}"
            lines.append(f"- {row.outcome}: {what} — {row.detail}")

        if self.deletions is not None and len(self.deletions):
            lines += ["", *self._deletion_lines()]
        if self.incomplete:
            lines.append("")
            lines.append("Not touched (listing incomplete): " + ", ".join(self.incomplete))
        lines += [f"- {note}" for note in self.notes]
        if self.pulls is not None:
            lines += ["", *self._pull_lines()]
        return "\n".join(lines) + "\n"

    def _deletion_lines(self) -> list[str]:
        assert self.deletions is not None
        shown = self.deletions.head(DELETIONS_SHOWN)
        lines = [
            "Deletions and untags, with the keep rule that came closest "
            "(`regsweep explain REPOSITORY@DIGEST` says how close every rule came):",
            "",
            "| repository | tags | digest | size | outcome | closest rule |",
            "|---|---|---|---:|---|---|",
        ]
        lines += [
            f"| {r.repository} | {r.tags} | {r.digest} | {human_bytes(r.size)} | {r.outcome} "
            f"| {r.closest} |"
            for r in shown.itertuples(index=False)
        ]
        if len(self.deletions) > len(shown):
            more = len(self.deletions) - len(shown)
            lines.append(f"\n... and {more} more: the `deletions` table artifact lists them all")
        return lines

    def _pull_lines(self) -> list[str]:
        assert self.pulls is not None
        if self.pulls.empty:
            return ["Pull activity: no pull recorded (regsweep pulls serve)."]
        windows = [c for c in self.pulls.columns if c.startswith("pulls_")]
        heads = " | ".join(
            f"pulls, last {c.removeprefix('pulls_').removesuffix('d')} days" for c in windows
        )
        lines = [
            "Pull activity (regsweep pulls serve):",
            "",
            f"| repository | last pull | digests pulled | {heads} |",
            "|---|---|---:|" + "---:|" * len(windows),
        ]
        for row in self.pulls.to_dict(orient="records"):
            counts = " | ".join(str(row[c]) for c in windows)
            last = row["last_pull"].strftime("%Y-%m-%d %H:%M UTC")
            lines.append(f"| {row['repository']} | {last} | {row['digests']} | {counts} |")
        return lines


def write_plan(plan: pd.DataFrame, path: Path) -> Path:
    """Write the plan as Parquet or CSV (by suffix); lists in CSV are `;`-joined."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        flat = plan.copy()
        for column in ("commits", "reasons"):
            flat[column] = flat[column].map(";".join)
        flat["created"] = flat["created"].map(lambda t: "" if pd.isna(t) else t.isoformat())
        flat.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        plan.to_parquet(path, index=False)
    else:
        raise ValueError(f"--out must end in .parquet or .csv, not {path.name!r}")
    return path


def stage_notes(config: Config, registry: RegistryExtraction | None = None) -> list[str]:
    """Warnings about what this run did not look at, for the report and the CLI."""
    notes = []
    kind = registry_kind(config)
    if kind.name != "distribution":
        notes.append(kind.describe())
    counted = kind.vendor.counts_pulls and registry is not None
    if counted and registry is not None and "manifest_gets" in registry.status:
        gets = int(registry.status["manifest_gets"].sum())
        tags = int(registry.status["tags"].sum())
        notes.append(
            f"{kind.name} pull rate limit: the scan sent {gets} manifest GET(s) for {tags} "
            "tag(s) (every tag resolved by HEAD, which is not counted; the content cache "
            "served the manifests it had)"
        )
    if registry is not None and not registry.pushed.empty:
        pushed = registry.pushed
        sources = ", ".join(sorted(set(pushed["source"])))
        unlisted = int(pushed["pushed"].isna().sum())
        notes.append(
            f"push times: {sources} for {pushed['repository'].nunique()} repository(ies), "
            f"{len(pushed)} image(s)"
            + (
                f"; {unlisted} not in the vendor's listing (kept: not known to be old)"
                if unlisted
                else ""
            )
        )
    if registry is not None and registry.status.empty:
        patterns = ", ".join(config.registry.repositories)
        notes.append(f"registry.repositories [{patterns}] matched no repository: nothing scanned")
    if not config.uses_kubernetes:
        notes.append("Kubernetes stage skipped by configuration: images in use were not checked")
    if not config.uses_git:
        notes.append("Git-history policy disabled by configuration")
    return notes


PULL_GAP = "pulled-within: pull records do not cover the window"


def untag_notes(results: pd.DataFrame) -> list[str]:
    """One line for the untags the registry could not do (`cleanup.untag: api` where the
    registry does not delete tags), with how to do them."""
    unsupported = results[results["outcome"] == "skipped-unsupported"]
    if unsupported.empty:
        return []
    return [f"{len(unsupported)} tag(s) not untagged: {unsupported['detail'].iloc[0]}"]


def pull_gap_notes(plan: Plan) -> list[str]:
    """The images kept only because the pull records have a gap (fail closed), counted,
    with the first gap's evidence: until the receivers' uptime covers the window."""
    gapped = plan.evidence.first_lines(PULL_GAP)
    if not gapped:
        return []
    detail = gapped[0].removeprefix("pulled-within: ")
    return [f"{len(gapped)} image(s) kept because {detail}"]


_GIT_POLICY = re.compile(r"^git-policy\[(\d+)\]")


def explanations(
    plan: Plan,
    config: Config,
    repository: str,
    tag: str,
    digest: str,
    git: GitExtraction | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """For `explain`: each digest `repository` + (`digest`, or `tag`, default `latest`)
    names, with its tags, commits, decision and every line of evidence. Under werf's default
    policies, a git-policy line says which default kept it; with the `git` extraction and
    `now`, a deleted image linked to commits says how close each policy came."""
    table = plan.table
    rows = table[table["repository"] == repository]
    rows = rows[rows["digest"] == digest] if digest else rows[rows["tag"] == (tag or "latest")]
    defaults = not config.cleanup.keep_policies
    found = []
    for row in rows.drop_duplicates("digest").itertuples(index=False):
        key = (row.repository, row.digest)
        same = table[(table["repository"] == row.repository) & (table["digest"] == row.digest)]
        evidence = list(plan.evidence.get(key, []))
        if defaults:
            evidence = [_name_default(line) for line in evidence]
        if row.action == "keep" and row.reason == "shared-digest":
            evidence.append("shared-digest: another tag on this digest is kept")
        if row.action == "untag":
            kept = sorted(same.loc[same["action"] == "keep", "tag"])
            evidence.insert(
                0,
                f"untag: no rule keeps tag {row.tag}; the digest stays for "
                f"{', '.join(t for t in kept if t) or 'its other rules'} (cleanup.untag)",
            )
        elif row.action != "keep":
            evidence.insert(0, "no keep rule applies")
            if row.commits:
                evidence.append("its commits are not among the images any keepPolicy keeps")
                if git is not None and now is not None and config.uses_git:
                    evidence += [
                        f"why not: {line}" for line in _why_not(plan, config, git, now, key)
                    ]
            unknown = plan.unknown_commits.get(key)
            if unknown:
                evidence.append(f"Git does not know: {', '.join(sorted(unknown))}")
        found.append(
            {
                "repository": row.repository,
                "digest": row.digest,
                "tags": sorted(t for t in same["tag"] if t),
                "commits": list(row.commits),
                "action": row.action,
                "reason": row.reason,
                "reasons": list(row.reasons),
                "evidence": evidence,
            }
        )
    return found


def _why_not(
    plan: Plan, config: Config, git: GitExtraction, now: datetime, key: tuple[str, str]
) -> list[str]:
    """`tasks.policy.why_not` for one deleted image of the plan."""
    from tasks.policy.history import CommitHistory
    from tasks.policy.why_not import why_not

    history = CommitHistory.from_frame(git.commits)
    policies = config.effective_policies()
    return why_not(plan.table, plan.werf, git.refs, history, policies, now, [key]).get(key, [])


def closest_rules(
    plan: Plan, config: Config, git: GitExtraction | None, now: datetime, results: pd.DataFrame
) -> dict[tuple[str, str], str]:
    """The keep rule that came closest to keeping each digest the run deletes or would
    delete (`tasks.policy.why_not.closest_rules`), for the deletions list."""
    from tasks.policy.history import CommitHistory
    from tasks.policy.why_not import closest_rules as closest

    acted = results[results["outcome"].isin(ACTED)]
    keys = list(dict.fromkeys(zip(acted["repository"], acted["digest"], strict=True)))
    walked = None
    if git is not None and config.uses_git:
        walked = (git.refs, CommitHistory.from_frame(git.commits))
    return closest(plan.table, plan.werf, config, walked, now, keys)


def _name_default(line: str) -> str:
    match = _GIT_POLICY.match(line)
    if match and int(match.group(1)) < len(DEFAULT_POLICY_NAMES):
        return f"{line} ({DEFAULT_POLICY_NAMES[int(match.group(1))]})"
    return line


def plan_document(
    config: Config, now: datetime, planned: Planned, notes: list[str], refusals: list[str]
) -> dict[str, Any]:
    """`regsweep plan --output json`: the plan as one JSON document (its keys:
    docs/how-to/terminal-cron-scripts.md)."""
    table = planned.plan.table
    summary = summarise(table, planned.registry.blobs)
    rows = []
    for row in table.itertuples(index=False):
        rows.append(
            {
                "repository": row.repository,
                "digest": row.digest,
                "tag": row.tag,
                "media_type": row.media_type,
                "created": None if pd.isna(row.created) else row.created.isoformat(),
                "commits": list(row.commits),
                "action": row.action,
                "reason": row.reason,
                "reasons": list(row.reasons),
            }
        )
    return {
        "registry": config.registry.url,
        "now": now.isoformat(),
        "summary": summary.to_dict(orient="records"),
        "notes": notes,
        "refusals": refusals,
        "plan": rows,
    }
