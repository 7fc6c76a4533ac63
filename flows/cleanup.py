"""The cleanup flow: extract_registry -> extract_git -> extract_cluster -> plan -> delete.

Thin: it wires the stage tasks, names the steps, saves the plan and publishes artifacts.
Extraction and the plan are cached on (configuration, snapshot time), so a rerun of a failed
run - `prefect flow-run retry`, or a new run with the same `now` - skips finished steps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Failed

from flows.guards import RunOptions, delete_request, run_notes
from flows.history import DELETIONS_ARTIFACT, PLAN_ARTIFACT, REPORT_ARTIFACT
from flows.metrics import RunMeter, publish, run_figures
from flows.pipeline import Stages, compute_plan, parse_now
from flows.report import RunReport, closest_rules, untag_notes, write_plan
from flows.result import RunResult, dangling_tags, problems, refusals, run_failure
from flows.scale_out import (
    dask_slots,
    default_task_runner,
    delete_fanned_out,
    extract_registry_fanned_out,
)
from flows.snapshot import save_inputs
from flows.werf_report import cleanup_reports, save_cleanup_reports
from tasks.cluster.task import extract_cluster_task
from tasks.core.config import Config, load_config
from tasks.core.home import regsweep_home
from tasks.delete.task import delete_task, in_use_task, reconcile_task, verify_task
from tasks.git.task import extract_git_task
from tasks.policy.task import plan_task
from tasks.pulls.task import extract_pulls_task
from tasks.registry.frames import RegistryExtraction
from tasks.registry.task import extract_registry_task


def runs_home() -> Path:
    """Where run directories live: $REGSWEEP_HOME/runs (default ~/.regsweep/runs)."""
    return regsweep_home() / "runs"


@flow(name="regsweep-cleanup", log_prints=True, task_runner=default_task_runner())
def cleanup(
    config_path: str,
    apply: bool = False,
    now: str | None = None,
    ledger: str | None = None,
    force: bool = False,
    werf_config: str | None = None,
    cleanup_report: str | None = None,
    confirmed: list[str] | None = None,
) -> RunResult:
    """Plan and (with `apply`) delete; return what the run did; with `cleanup_report`, write
    werf's cleanup report of each werf repository there (`flows.werf_report`).

    Raises `RunFailed` (carrying the same result) when a listing was incomplete or deletions
    were refused or failed, so the flow run ends Failed. With `confirmed` (what a person
    confirmed on a terminal: "repository@digest", "repository:tag"), nothing else is
    deleted or untagged.
    """
    logger = get_run_logger()
    config = load_config(config_path, werf_config)
    moment = parse_now(now) if now else runtime.flow_run.scheduled_start_time
    meter = RunMeter()
    try:
        agreed = frozenset(confirmed) if confirmed is not None else None
        when = moment.astimezone(UTC)
        result = _run(config, when, apply, ledger, force, cleanup_report, agreed, meter)
    except Exception:  # the metrics say the run failed; the flow run fails as it would
        publish(config, meter.failed(apply))
        raise
    failure = run_failure(result)
    publish(config, run_figures(result, failure is None, meter))
    if failure is not None:
        # A Failed state, not a raise: an expected failure is one line in the logs, not a
        # traceback; calling the flow still raises `failure`, which carries the result.
        logger.error("%s", failure)
        return Failed(message=str(failure), data=failure)  # type: ignore[return-value]
    return result


def _run(
    config: Config,
    moment: datetime,
    apply: bool,
    ledger: str | None,
    force: bool,
    cleanup_report: str | None,
    confirmed: frozenset[str] | None,
    meter: RunMeter,
) -> RunResult:
    """The flow's work: the pipeline, the delete step, verify, the report."""
    logger = get_run_logger()
    snapshot = moment.isoformat()
    run_id = str(runtime.flow_run.id or "local")
    run_dir = runs_home() / run_id

    slots = dask_slots()  # on Dask: scan and delete as one task per repository

    def registry_stage(config: Config) -> RegistryExtraction:
        if slots:
            return extract_registry_fanned_out(config, snapshot, slots)
        return extract_registry_task(config, snapshot)

    stages = Stages(
        registry=meter.timed("registry", registry_stage),
        git=meter.timed("git", lambda config: extract_git_task(config, snapshot)),
        cluster=meter.timed("cluster", lambda config: extract_cluster_task(config, snapshot)),
        plan=meter.timed("plan", plan_task),
        pulls=meter.timed("pulls", lambda config: extract_pulls_task(config, snapshot)),
    )
    planned = compute_plan(config, moment, stages)
    plan, registry = planned.plan, planned.registry
    plan_path = write_plan(plan.table, run_dir / "plan.parquet")
    save_inputs(run_dir, config, moment, planned)
    logger.info("plan saved to %s (inputs for what-if analysis beside it)", plan_path)

    ledger_path = Path(ledger).expanduser() if ledger else run_dir / "ledger.jsonl"
    # Fresh eyes: the cluster is read again right before deleting, whatever the cache holds.
    in_use = in_use_task(config) if apply and config.uses_kubernetes else None
    options = RunOptions(apply, force, str(ledger_path), run_id, in_use, confirmed)
    request = delete_request(config, planned, options)
    # First finish what earlier runs' crashes cut short (tags naming nothing, open records).
    with meter.stage("delete"):
        repairs, damage = reconcile_task(
            config, registry, str(ledger_path) if apply else None, run_id
        )
        delete_step = delete_fanned_out if slots else delete_task
        results: pd.DataFrame = delete_step(config, plan.table, registry, request)
    if not repairs.empty:
        results = pd.concat([repairs, results], ignore_index=True)
    # Then read again what must survive: a loss fails the run, whoever caused it.
    with meter.stage("verify"):
        verdict = (
            verify_task(config, plan.table, registry, in_use, str(ledger_path), run_id)
            if apply
            else None
        )

    notes = run_notes(config, planned, None if apply else damage) + untag_notes(results)
    if verdict is not None:
        notes += [f"not whole after the run: {line}" for line in verdict.lines()]
        notes += [f"tag naming nothing: {line}" for line in verdict.repaired]
    if cleanup_report and plan.werf:
        reports = cleanup_reports(
            plan.table,
            plan.werf,
            config.registry.host,
            not apply,
            config.cleanup.keep_images_built_within_last_n_hours,
            results,
        )
        for written in save_cleanup_reports(Path(cleanup_report), reports):
            logger.info("werf cleanup report written to %s", written)
    incomplete = registry.incomplete()
    activity = planned.pulls.activity(moment) if planned.pulls is not None else None
    closest = closest_rules(plan, config, planned.git, moment, results)
    report = RunReport.build(
        plan.table, registry.blobs, results, incomplete, notes, activity, registry.images, closest
    )
    create_table_artifact(
        key=PLAN_ARTIFACT,
        table=report.summary_with_outcomes().to_dict(orient="records"),
        description=(
            "Per repository: digests kept and deleted by the plan, digests deleted by this "
            "run, bytes reclaimable after garbage collection"
        ),
    )
    assert report.deletions is not None
    create_table_artifact(
        key=DELETIONS_ARTIFACT,
        table=report.deletions.to_dict(orient="records"),
        description=(
            "Every deletion and untag of this run (a dry run: what it would do): repository, "
            "tags, digest, size in bytes, outcome, the keep rule that came closest"
        ),
    )
    mode = "apply" if apply else "dry run"
    create_markdown_artifact(key=REPORT_ARTIFACT, markdown=report.markdown(f"regsweep {mode}"))
    why = dict(zip(registry.status["repository"], registry.status["error"], strict=True))
    result = RunResult(
        flow_run_id=run_id,
        run_dir=str(run_dir),
        plan_path=str(plan_path),
        ledger_path=str(ledger_path) if apply else "",
        apply=apply,
        now=snapshot,
        summary=report.summary_with_outcomes().to_dict(orient="records"),
        reasons=report.reasons.to_dict(orient="records"),
        outcomes=report.outcomes(),
        incomplete={repo: str(why.get(repo) or "incomplete") for repo in incomplete},
        notes=notes,
        problems=problems(results),
        refusals=refusals(results),
        damage=verdict.lines() if verdict is not None else [],
        deletions=report.deletions.to_dict(orient="records"),
        dangling=dangling_tags(damage, repairs, verdict),
    )
    return result
