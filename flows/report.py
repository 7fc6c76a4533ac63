"""Human-readable reports of a run: markdown for Prefect artifacts, rich tables for the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tasks.core.config import Config
from tasks.policy.summary import by_reason, summarise
from tasks.registry.extract import RegistryExtraction


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@dataclass
class RunReport:
    """What a run decided and did."""

    summary: pd.DataFrame
    reasons: pd.DataFrame
    results: pd.DataFrame
    incomplete: list[str]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        plan: pd.DataFrame,
        blobs: pd.DataFrame,
        results: pd.DataFrame,
        incomplete: list[str],
        notes: list[str],
    ) -> RunReport:
        return cls(summarise(plan, blobs), by_reason(plan), results, incomplete, notes)

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
            "| repository | kept | planned deletions | deleted by this run | reclaimable |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in self.summary_with_outcomes().itertuples(index=False):
            lines.append(
                f"| {row.repository} | {row.kept} | {row.deleted} | {row.deleted_in_run} | "
                f"{human_bytes(row.bytes_reclaimable)} |"
            )
        lines += ["", "| action | reason | digests |", "|---|---|---:|"]
        for row in self.reasons.itertuples(index=False):
            lines.append(f"| {row.action} | {row.reason} | {row.digests} |")
        if len(self.results):
            lines += ["", "Outcomes: " + ", ".join(f"{k} {v}" for k, v in self.outcomes().items())]
        skipped = self.results[~self.results["outcome"].isin(["deleted", "gone", "would-delete"])]
        for row in skipped.itertuples(index=False):
            lines.append(f"- {row.outcome}: {row.repository}@{row.digest} — {row.detail}")
        if self.incomplete:
            lines.append("")
            lines.append("Not touched (listing incomplete): " + ", ".join(self.incomplete))
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


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
    if registry is not None and registry.status.empty:
        patterns = ", ".join(config.registry.repositories)
        notes.append(f"registry.repositories [{patterns}] matched no repository: nothing scanned")
    if not config.uses_kubernetes:
        notes.append("Kubernetes stage skipped by configuration: images in use were not checked")
    if not config.uses_git:
        notes.append("Git-history policy disabled by configuration")
    return notes
