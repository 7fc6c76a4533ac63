"""werf's cleanup report, written from a plan (and a run's results), so that keep-lists and
jq pipelines built on `werf cleanup --save-cleanup-report` keep working.

The format is werf's (werf/werf `pkg/cleanup_report/cleanup_report.go` at 73d8d4ac9):
`{"command", "dryRun", "repo", "kept": [item], "deleted": [item]}`, an item
`{"type", "tag", "reason", "imageName", "stageID", "commit", "id"}` with empty fields
left out; types `stage`, `customTag`, `rejectedStage`, `rejectedStageMarker`,
`imageMetadata`, `managedImage`, `importMetadata` (`finalStage` is werf's final repo, which
regsweep does not have). What werf reports, regsweep reports: kept stages with their
reason in werf's words (`pkg/cleaning/stage_manager/stages.go`), kept and deleted custom
tags, deleted stages, rejected stages and their markers, and deleted records. Reasons werf
does not have (Helm history, pulls, a restore, a vendor protection...) keep their regsweep
name. One file per werf repository.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.frames import column_rows
from tasks.policy.werf_layout import META_TAG, REJECTED_TAG, STAGE_TAG

WERF_REASONS = {
    "kubernetes": "used in Kubernetes",
    "git-policy": "git policy",
    "stage-parent": "ancestor",
    "stage-source": "import source",
    "index-child": "image index platform",
    "keep-list": "keep list",
}
DELETED_OUTCOMES = ("deleted", "gone", "would-delete")


def werf_reason(reason: str, hours: float) -> str:
    """A regsweep keep reason in werf's words, where werf has one."""
    if reason == "built-within":
        return f"built within last {hours:g} hours"
    return WERF_REASONS.get(reason.split("[", 1)[0], reason)


def cleanup_reports(
    plan: pd.DataFrame,
    repositories: list[str],
    registry_host: str,
    dry_run: bool,
    built_within_hours: float,
    results: pd.DataFrame | None = None,
) -> dict[str, dict[str, Any]]:
    """{repository: werf's report} for each of `repositories` (those read the werf way).

    With `results` (a run's delete step) a digest is reported deleted only when the step
    deleted it (or found it gone); one the step did not delete is reported kept, its reason
    the outcome (`skipped-moved`, `refused`...). Without, the plan's decision is reported."""
    outcome = {}
    if results is not None:
        for repository, digest, result in column_rows(results, "repository", "digest", "outcome"):
            outcome[(repository, digest)] = result
    by_repo: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    for repository, digest, tag, action, reason in column_rows(
        plan, "repository", "digest", "tag", "action", "reason"
    ):
        if repository in repositories and tag:
            by_repo[repository].append((digest, tag, action, reason))
    reports = {}
    for repository in repositories:
        kept: list[dict[str, str]] = []
        deleted: list[dict[str, str]] = []
        rows = by_repo.get(repository, [])
        stage_digests = {d for d, t, _, _ in rows if STAGE_TAG.match(t)}
        for digest, tag, action, reason in sorted(rows, key=lambda r: r[1]):
            done = outcome.get((repository, digest))
            goes = action == "delete" and (results is None or done in DELETED_OUTCOMES)
            if action == "delete" and not goes:
                reason = str(done or reason)
            item = _item(tag, digest, stage_digests)
            if item is None:
                continue
            if goes:
                deleted += _deleted_items(item)
            elif item["type"] in ("stage", "customTag"):
                kept_item = dict(item)
                if item["type"] == "stage":
                    kept_item["reason"] = werf_reason(reason, built_within_hours)
                kept.append(kept_item)
        reports[repository] = {
            "command": "cleanup",
            "dryRun": dry_run,
            "repo": f"{registry_host}/{repository}",
            "kept": kept,
            "deleted": deleted,
        }
    return reports


def _item(tag: str, digest: str, stage_digests: set[str]) -> dict[str, str] | None:
    """The report item of one tag of a werf repository, by what the tag is."""
    if STAGE_TAG.match(tag):
        return {"type": "stage", "tag": tag}
    if meta := META_TAG.match(tag):
        image, commit, stage = meta.groups()
        return {"type": "imageMetadata", "stageID": stage, "commit": commit, "id": image}
    if rejected := REJECTED_TAG.match(tag):
        return {"type": "rejectedStageMarker", "tag": tag, "stageID": rejected.group(1)}
    if tag.startswith("managed-image-"):
        return {"type": "managedImage", "imageName": tag.removeprefix("managed-image-")}
    if tag.startswith("import-metadata-"):
        return {"type": "importMetadata", "id": tag.removeprefix("import-metadata-")}
    if tag.startswith("custom-tag-meta-"):
        return None  # werf reports the custom tag itself, not its record
    if digest in stage_digests:
        return {"type": "customTag", "tag": tag}
    return None  # not werf's: no item


def _deleted_items(item: dict[str, str]) -> list[dict[str, str]]:
    if item["type"] == "rejectedStageMarker":  # werf deletes the stage with its marker
        stage = {"type": "rejectedStage", "tag": item["stageID"]}
        return [stage, {"type": "rejectedStageMarker", "tag": item["tag"]}]
    return [item]


def save_cleanup_reports(path: Path, reports: dict[str, dict[str, Any]]) -> list[Path]:
    """Write the reports: to `path` when there is one, else one file per repository
    (`<stem>-<repository with / as _><suffix>`); each written whole or not at all (a
    sibling renamed into place, as werf does). Returns the paths written."""
    written = []
    for repository, report in sorted(reports.items()):
        target = path
        if len(reports) > 1:
            slug = repository.replace("/", "_")
            target = path.with_name(f"{path.stem}-{slug}{path.suffix or '.json'}")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(report, indent="\t") + "\n"
        fd, temporary = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
