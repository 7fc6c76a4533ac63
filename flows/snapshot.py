"""What a run saw, saved beside its plan, so a notebook can re-plan without the registry.

`<run dir>/inputs/` holds the registry frames (images, tags, index_edges, blobs, status,
and the vendor's protected and pushed), the Git frames (refs, commits), the cluster frame
and the pull records (pulls_last, pulls_days, pulls_uptime) when those stages ran, as
Parquet, plus `run.json` (the
configuration, the run's `now` and its keep list). `replan` builds the plan again from
them under other keepPolicies or another `now`: a what-if that touches nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flows.pipeline import Planned, Stages, compute_plan
from tasks.core.config import Config, parse_config
from tasks.core.frames import STRING_LISTS, typed_frame
from tasks.core.restored import RestoredImage
from tasks.git.extract import GitExtraction
from tasks.policy.plan import Plan
from tasks.policy.state import PlanInputs
from tasks.pulls.records import PullRecords
from tasks.registry.frames import (
    BLOB_COLUMNS,
    PROTECTED_COLUMNS,
    PUSHED_COLUMNS,
    STATUS_COLUMNS,
    RegistryExtraction,
)

_JSON_COLUMNS = ("labels", "annotations")  # dict columns: Parquet wants one shape per column
_UPTIME_COLUMNS = {"started": "datetime64[us, UTC]", "last_seen": "datetime64[us, UTC]"}


def save_inputs(run_dir: Path, config: Config, now: datetime, planned: Planned) -> Path:
    """Write the run's stage outputs under `run_dir/inputs`; return that directory."""
    out = run_dir / "inputs"
    out.mkdir(parents=True, exist_ok=True)
    frames: dict[str, pd.DataFrame] = {
        f.name: getattr(planned.registry, f.name) for f in fields(RegistryExtraction)
    }
    if planned.git is not None:
        frames |= {"refs": planned.git.refs, "commits": planned.git.commits}
    if planned.cluster is not None:
        frames["cluster"] = planned.cluster
    if planned.pulls is not None:
        frames |= {
            "pulls_last": planned.pulls.last,
            "pulls_days": planned.pulls.days,
            "pulls_uptime": pd.DataFrame(
                planned.pulls.uptime, columns=["started", "last_seen"]
            ).astype(_UPTIME_COLUMNS),
        }
    for name, frame in frames.items():
        flat = frame.copy()
        for column in _JSON_COLUMNS:
            if column in flat:
                flat[column] = flat[column].map(lambda v: json.dumps(v, sort_keys=True))
        if "parents" in flat:  # pandas cannot read its own metadata of Arrow list columns back
            flat["parents"] = pd.Series(flat["parents"].tolist(), index=flat.index, dtype=object)
        flat.to_parquet(out / f"{name}.parquet", index=False)
    run = {
        "config": config.model_dump(mode="json", by_alias=True, exclude_none=True),
        "now": now.isoformat(),
        "keep_list": planned.keep_list,
        "restored": [asdict(r) for r in planned.restored],
    }
    (out / "run.json").write_text(json.dumps(run, indent=2))
    return out


def load_inputs(run_dir: Path) -> tuple[Config, datetime, PlanInputs]:
    """Read back what `save_inputs` wrote: (configuration, now, plan inputs)."""
    folder = Path(run_dir) / "inputs"
    run: dict[str, Any] = json.loads((folder / "run.json").read_text())

    def frame(name: str) -> pd.DataFrame | None:
        path = folder / f"{name}.parquet"
        if not path.exists():
            return None
        data = pd.read_parquet(path)
        for column in _JSON_COLUMNS:
            if column in data:
                data[column] = data[column].map(json.loads)
        if "parents" in data:  # the dtype the Git stage documents
            data["parents"] = data["parents"].map(list).astype(STRING_LISTS)
        if "user_agents" in data:  # the object column of lists tasks.pulls.records documents
            data["user_agents"] = data["user_agents"].map(list)
        return data

    pulls = None
    last, days, uptime = frame("pulls_last"), frame("pulls_days"), frame("pulls_uptime")
    if last is not None and days is not None and uptime is not None:
        pulls = PullRecords(
            last=last,
            days=days,
            uptime=[
                (started.to_pydatetime(), seen.to_pydatetime())
                for started, seen in zip(uptime["started"], uptime["last_seen"], strict=True)
            ],
        )

    images, tags, edges = frame("images"), frame("tags"), frame("index_edges")
    assert images is not None and tags is not None and edges is not None, f"{folder} is partial"
    inputs = PlanInputs(
        images=images,
        tags=tags,
        index_edges=edges,
        refs=frame("refs"),
        commits=frame("commits"),
        cluster=frame("cluster"),
        keep_list=list(run.get("keep_list", [])),
        restored=[RestoredImage(**r) for r in run.get("restored", [])],
        pulls=pulls,
        protected=frame("protected"),
        pushed=frame("pushed"),  # None in a run saved before push times were read
    )
    return parse_config(run["config"]), datetime.fromisoformat(run["now"]), inputs


def saved_stages(inputs: PlanInputs) -> Stages:
    """Stages that answer with a run's saved frames instead of reading anything."""
    registry = RegistryExtraction(
        images=inputs.images,
        tags=inputs.tags,
        index_edges=inputs.index_edges,
        blobs=typed_frame([], BLOB_COLUMNS),
        status=typed_frame([], STATUS_COLUMNS),
        protected=(
            inputs.protected if inputs.protected is not None else typed_frame([], PROTECTED_COLUMNS)
        ),
        pushed=inputs.pushed if inputs.pushed is not None else typed_frame([], PUSHED_COLUMNS),
    )
    git = None
    if inputs.refs is not None and inputs.commits is not None:
        git = GitExtraction(refs=inputs.refs, commits=inputs.commits)
    return Stages(
        registry=lambda _: registry,
        git=lambda _: git,
        cluster=lambda _: inputs.cluster,
        keep_list=lambda _: inputs.keep_list,
        restored=lambda _: inputs.restored,
        pulls=lambda _: inputs.pulls,
    )


def replan(
    run_dir: Path, cleanup: dict[str, Any] | None = None, now: datetime | None = None
) -> Plan:
    """The plan of the run in `run_dir` again, with `cleanup` keys (camelCase, as in the
    configuration file) replaced and/or another `now`. Reads no registry, Git or cluster."""
    config, moment, inputs = load_inputs(run_dir)
    if cleanup:
        document = config.model_dump(mode="json", by_alias=True, exclude_none=True)
        document["cleanup"] = {**document.get("cleanup", {}), **cleanup}
        config = parse_config(document)
    return compute_plan(config, now or moment, saved_stages(inputs)).plan
