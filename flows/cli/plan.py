"""`regsweep plan`: every stage and the plan in this process, no Prefect; what a run would
refuse, it refuses too (exit 4)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from datetime import datetime

    from flows.pipeline import Planned
    from tasks.core.config import Config
    from tasks.policy.plan import Plan

from flows.cli.app import (
    DEFAULT_CONFIG,
    CleanupReportOption,
    ConfigOption,
    NowOption,
    OutputOption,
    WerfOption,
    app,
    expected_errors,
    load,
    moment_of,
)
from flows.cli.render import (
    OPTIONS,
    bad_argument,
    errors,
    exit_if_incomplete,
    exit_if_refused,
    fail,
    output_format,
    print_json,
    print_summary,
    tell,
)


def plan_here(config: Config, now: datetime, show_progress: bool = True) -> Planned:
    """Every stage and the plan in this process (no Prefect), with progress bars on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from flows.pipeline import compute_plan, local_stages
    from tasks.core.progress import ScanTally

    # Bars are drawn only on a terminal (rich draws nothing to a pipe or a file): elsewhere
    # the scan is not called back for each tag at all.
    if not show_progress or OPTIONS.quiet or not errors.is_terminal:
        return compute_plan(config, now, local_stages())
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    ) as progress:
        bars: dict[str, Any] = {}
        overall = progress.add_task("scan: listing repositories", total=None)
        tally = ScanTally()

        def on_tag(repository: str, done: int, total: int) -> None:
            if repository not in bars:
                bars[repository] = progress.add_task(f"scan {repository}", total=total)
            progress.update(bars[repository], completed=done)
            tally.update(repository, done, total)
            progress.update(overall, description=f"scan: {tally.summary()}")

        return compute_plan(config, now, local_stages(on_tag))


@app.command()
def plan(
    config: ConfigOption = DEFAULT_CONFIG,
    now: NowOption = None,
    werf_config: WerfOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="PLAN.parquet or PLAN.csv")] = None,
    output: OutputOption = "table",
    cleanup_report: CleanupReportOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="preview `run --force`: guards overridden")
    ] = False,
) -> None:
    """Preview the plan, deleting nothing; exit 4 where `run` would refuse deletions."""
    output = output_format(output)
    if out is not None and out.suffix not in (".parquet", ".csv"):
        bad_argument("--out", f"must end in .parquet or .csv, not {out.name!r}")
    cfg = load(config, werf_config)
    moment = moment_of(now)
    try:
        planned = plan_here(cfg, moment, show_progress=output == "table")
    except expected_errors() as exc:
        raise fail(exc) from None
    from flows.guards import refusals_of, run_notes
    from flows.report import plan_document, write_plan
    from tasks.policy.summary import summarise

    if out is not None:
        write_plan(planned.plan.table, out)
        tell(f"plan written to {out}")
    if cleanup_report is not None:
        save_werf_report(cleanup_report, cfg, planned.plan, dry_run=True)
    from tasks.delete.stage import run_reconcile

    _, damage = run_reconcile(cfg, planned.registry, None)  # reads ledgers, sends nothing
    # The notes and refusals `run` would give: the same functions work them out.
    notes = run_notes(cfg, planned, damage)
    refused = refusals_of(cfg, planned, force)
    if output == "json":
        print_json(plan_document(cfg, moment, planned, notes, refused))
    else:
        for note in notes:
            tell(f"warning: {note}")
        print_summary(summarise(planned.plan.table, planned.registry.blobs))
    exit_if_refused(refused)
    exit_if_incomplete(planned)


def save_werf_report(path: Path, config: Config, plan: Plan, dry_run: bool) -> None:
    """werf's cleanup report of the plan's werf repositories (`flows.werf_report`)."""
    from flows.werf_report import cleanup_reports, save_cleanup_reports

    hours = config.cleanup.keep_images_built_within_last_n_hours
    reports = cleanup_reports(plan.table, plan.werf, config.registry.host, dry_run, hours)
    if not reports:
        tell("warning: --save-cleanup-report: no repository here is werf's: nothing written")
        return
    for written in save_cleanup_reports(path, reports):
        tell(f"werf cleanup report written to {written}")
