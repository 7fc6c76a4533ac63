"""The `regsweep` command line (thin: parse arguments, call stages or the flow, print).

Exit codes: 0 success; 2 bad configuration or arguments; 3 an extraction failed and
nothing was deleted; 4 deletions refused or partly failed (the ledger says which).

Imports are made where a command needs them: `--help`, `--version` and a configuration
error come back before pandas, pydantic or Prefect are loaded.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from datetime import datetime

    from flows.pipeline import Planned
    from flows.result import RunResult
    from tasks.core.config import Config
    from tasks.policy.plan import Plan

# regsweep's own warnings (registry retries, failed deletions) go to the flow run's logs too.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")
# ...and outside a flow run (plan, check, restore) they stay on the terminal, unwarned.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# A user's shell has none of the Makefile's settings. The temporary Prefect server a `run`
# starts sends no telemetry (its heartbeat raced the run for the SQLite database), and on a
# busy machine it gets time to start (Prefect's 20 s default timed out on a loaded 2-core
# runner): a scheduled cleanup must not fail because the machine was busy.
PREFECT_STARTUP_SECONDS = 180
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault(
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(PREFECT_STARTUP_SECONDS)
)

app = typer.Typer(
    name="regsweep",
    help="Clean a container registry without deleting an image someone still needs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _console(stderr: bool = False) -> Console:
    """A console that never wraps or truncates when it is not a terminal (a pipe, a file, a
    CI log): digests, references and paths are copied from there. NO_COLOR is honoured."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 100_000
    return Console(stderr=stderr, width=width, soft_wrap=True)


console = _console()
errors = _console(stderr=True)


@dataclass
class _Options:
    debug: bool = False
    quiet: bool = False


OPTIONS = _Options()

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="regsweep YAML file")]
WerfOption = Annotated[
    Path | None,
    typer.Option("--werf-config", help="take the cleanup section from this werf.yaml"),
]
NowOption = Annotated[
    str | None, typer.Option("--now", help="fix 'now' (ISO 8601) for every time window")
]
CleanupReportOption = Annotated[
    Path | None,
    typer.Option(
        "--save-cleanup-report",
        help="write werf's cleanup-report JSON of each werf repository to this path",
    ),
]
OutputOption = Annotated[
    str, typer.Option("--output", "-o", help="table (default) or json: one JSON document")
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"regsweep {version('regsweep')}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="print the version and exit", is_eager=True, callback=_version
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="only warnings and errors (for cron)")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="REGSWEEP_DEBUG", help="show the traceback of a failure"),
    ] = False,
) -> None:
    """Clean a container registry without deleting an image someone still needs."""
    OPTIONS.debug, OPTIONS.quiet = debug, quiet
    console.quiet = quiet
    if quiet:  # Prefect reads its settings when first imported, after this
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def say(text: str) -> None:
    """Print a line no one may find wrapped or coloured: digests, references, paths."""
    console.print(text, highlight=False, soft_wrap=True, markup=False)


def exit_code(exc: BaseException) -> int:
    """Map an error to the documented exit code."""
    from flows.result import RunFailed
    from tasks.cluster.errors import ClusterError
    from tasks.core.errors import ConfigError
    from tasks.delete.errors import DeletionError
    from tasks.git.errors import GitError
    from tasks.pulls.errors import PullsError
    from tasks.registry.errors import RegistryError

    if isinstance(exc, RunFailed):
        return exc.exit_code
    if isinstance(exc, ConfigError):
        return 2
    if isinstance(exc, RegistryError | GitError | ClusterError | PullsError):
        return 3
    if isinstance(exc, DeletionError):
        return 4
    return 1


LABELS = {
    2: "configuration error",
    3: "extraction failed or incomplete, nothing deleted in its scope",
    4: "deletion",
}


def fail(exc: BaseException) -> typer.Exit:
    """Print the one line of an expected failure (and with --debug its traceback); return the
    exit to raise."""
    code = exit_code(exc)
    if OPTIONS.debug and exc.__traceback__ is not None:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    errors.print(
        f"[bold red]regsweep: {LABELS.get(code, 'error')}:[/] {escape(str(exc))}",
        highlight=False,
        soft_wrap=True,
    )
    return typer.Exit(code)


def bad_argument(field: str, message: str) -> NoReturn:
    """Exit 2 naming the argument."""
    from tasks.core.errors import ConfigError

    raise fail(ConfigError(field, message))


def output_format(value: str) -> str:
    if value not in ("table", "json"):
        bad_argument("--output", f"must be table or json, not {value!r}")
    return value


def print_json(document: Any) -> None:
    """One JSON document on stdout (even with --quiet: a script asked for it)."""
    import json

    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _config(path: Path, werf_config: Path | None = None) -> Config:
    from tasks.core.config import load_config
    from tasks.core.errors import ConfigError

    try:
        return load_config(path, werf_config)
    except ConfigError as exc:
        raise fail(exc) from None


def _now(text: str | None) -> datetime:
    from datetime import UTC, datetime

    from flows.pipeline import parse_now

    if text is None:
        return datetime.now(UTC)
    try:
        return parse_now(text)
    except ValueError:
        bad_argument("--now", f"{text!r} is not an ISO 8601 time")


def expected_errors() -> tuple[type[Exception], ...]:
    """The failures a command reports in one line: bad configuration, and a stage that
    could not read its part."""
    from tasks.cluster.errors import ClusterError
    from tasks.core.errors import ConfigError
    from tasks.git.errors import GitError
    from tasks.pulls.errors import PullsError
    from tasks.registry.errors import RegistryError

    return (ConfigError, RegistryError, GitError, ClusterError, PullsError)


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
    config: ConfigOption,
    now: NowOption = None,
    werf_config: WerfOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="PLAN.parquet or PLAN.csv")] = None,
    output: OutputOption = "table",
    cleanup_report: CleanupReportOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="preview `run --force`: guards overridden")
    ] = False,
) -> None:
    """Preview the plan: extract and decide in this process; delete nothing. Exits 4 with
    the reasons where `run` would refuse deletions."""
    output = output_format(output)
    if out is not None and out.suffix not in (".parquet", ".csv"):
        bad_argument("--out", f"must end in .parquet or .csv, not {out.name!r}")
    cfg = _config(config, werf_config)
    moment = _now(now)
    try:
        planned = plan_here(cfg, moment, show_progress=output == "table")
    except expected_errors() as exc:
        raise fail(exc) from None
    from flows.guards import refusals_of, run_notes
    from flows.report import plan_document, write_plan
    from tasks.policy.summary import summarise

    if out is not None:
        write_plan(planned.plan.table, out)
        errors.print(f"plan written to {out}", soft_wrap=True, highlight=False, markup=False)
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
            errors.print(f"warning: {note}", soft_wrap=True, highlight=False, markup=False)
        print_summary(summarise(planned.plan.table, planned.registry.blobs))
    exit_if_refused(refused)
    exit_if_incomplete(planned)


def exit_if_refused(refused: list[str]) -> None:
    """Exit 4 naming each reason a run of this plan would refuse deletions, as `run` does
    (its dry run too): the preview refuses what the run refuses."""
    if not refused:
        return
    for why in refused:
        errors.print(
            f"regsweep: a run would refuse deletions: {why}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    raise typer.Exit(4)


def save_werf_report(path: Path, config: Config, plan: Plan, dry_run: bool) -> None:
    """werf's cleanup report of the plan's werf repositories (`flows.werf_report`)."""
    from flows.werf_report import cleanup_reports, save_cleanup_reports

    hours = config.cleanup.keep_images_built_within_last_n_hours
    reports = cleanup_reports(plan.table, plan.werf, config.registry.host, dry_run, hours)
    if not reports:
        errors.print(
            "warning: --save-cleanup-report: no repository here is werf's: nothing written",
            highlight=False,
            markup=False,
        )
        return
    for written in save_cleanup_reports(path, reports):
        errors.print(f"werf cleanup report written to {written}", highlight=False, markup=False)


def exit_if_incomplete(planned: Planned) -> None:
    """Exit 3 naming each repository the scan could not read whole (a run would delete
    nothing there): the plan shown covers only the rest."""
    status = planned.registry.status
    incomplete = status[~status["complete"]]
    if incomplete.empty:
        return
    for repository, why in zip(incomplete["repository"], incomplete["error"], strict=True):
        errors.print(
            f"regsweep: {repository}: listing incomplete, a run deletes nothing there: {why}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    raise typer.Exit(3)


def print_summary(summary: Any, title: str = "plan") -> None:
    from rich.table import Table

    from flows.report import human_bytes

    table = Table(title=title)
    untags = bool(summary["untagged"].any())  # the column only where a plan untags
    columns = ("repository", "kept", "deleted", *(("untagged",) if untags else ()), "reclaimable")
    for column in columns:
        table.add_column(column, justify="left" if column == "repository" else "right")
    for row in summary.itertuples(index=False):
        counts = [str(row.kept), str(row.deleted), *([str(row.untagged)] if untags else [])]
        table.add_row(row.repository, *counts, human_bytes(row.bytes_reclaimable))
    console.print(table)


@app.command()
def run(
    config: ConfigOption,
    apply: Annotated[
        bool, typer.Option("--apply", help="really delete (default: dry run)")
    ] = False,
    now: NowOption = None,
    ledger: Annotated[Path | None, typer.Option("--ledger", help="deletion ledger path")] = None,
    force: Annotated[bool, typer.Option("--force", help="override maxDeleteFraction")] = False,
    werf_config: WerfOption = None,
    cleanup_report: CleanupReportOption = None,
    task_runner: Annotated[
        str | None,
        typer.Option(
            "--task-runner",
            help="threads (default), dask (a local Dask cluster) or dask=ADDRESS: "
            "scan and delete one task per repository on Dask",
        ),
    ] = None,
) -> None:
    """Run the Prefect flow: extract, plan, and delete (only with --apply)."""
    runner = None
    if task_runner is not None:
        from flows.scale_out import TaskRunnerChoiceError, task_runner_from_option

        try:
            runner = task_runner_from_option(task_runner)
        except TaskRunnerChoiceError as exc:
            bad_argument("", str(exc))  # the message names --task-runner
    cfg = _config(config, werf_config)
    if now is not None:
        _now(now)
    preflight(cfg)
    from flows.cleanup import cleanup
    from flows.result import RunFailed

    flow = cleanup if runner is None else cleanup.with_options(task_runner=runner)
    if not OPTIONS.debug:
        one_line_prefect_logs()
    where = os.environ.get("PREFECT_API_URL")
    errors.print(
        f"recording the run in the Prefect server at {where}"
        if where
        else "recording the run in a temporary Prefect server (its history stays in "
        f"{os.environ.get('PREFECT_HOME', '~/.prefect')}); set PREFECT_API_URL to use a "
        "long-lived one",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    try:
        result = flow(
            config_path=str(config.resolve()),
            apply=apply,
            now=now,
            ledger=str(ledger) if ledger else None,
            force=force,
            werf_config=str(werf_config.resolve()) if werf_config else None,
            cleanup_report=str(cleanup_report.resolve()) if cleanup_report else None,
        )
    except RunFailed as exc:
        print_run(exc.result)
        raise fail(exc) from None
    except Exception as exc:
        raise fail(exc) from None
    print_run(result)


def preflight(config: Config) -> None:
    """What can fail before Prefect starts (13-25 s) fails now, in one line: the keep list,
    and a registry that does not answer (exit 3). An auth answer to `GET /v2/` does not stop
    the run: some registries refuse an unscoped token there and grant the scoped ones the
    scan asks for (`regsweep check` reports it)."""
    from tasks.policy.stage import read_keep_list
    from tasks.registry.errors import AccessDenied, AuthenticationFailed
    from tasks.registry.stage import probe_registry

    try:
        read_keep_list(config)
        probe_registry(config)
    except (AuthenticationFailed, AccessDenied):
        pass
    except expected_errors() as exc:
        raise fail(exc) from None


def one_line_prefect_logs() -> None:
    """Prefect's terminal log lines without tracebacks (an expected failure is one line;
    --debug shows them). What Prefect sends to its API keeps them, for the UI."""
    import logging

    from prefect.logging.handlers import APILogHandler

    class OneLine(logging.Formatter):
        def __init__(self, inner: logging.Formatter | None) -> None:
            super().__init__()
            self.inner = inner

        def format(self, record: logging.LogRecord) -> str:
            saved = record.exc_info, record.exc_text, record.stack_info
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            try:
                return (self.inner or logging.Formatter()).format(record)
            finally:
                record.exc_info, record.exc_text, record.stack_info = saved

    names = ["", "prefect", "prefect.flow_runs", "prefect.task_runs", "tasks"]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler, APILogHandler) and not isinstance(
                handler.formatter, OneLine
            ):
                handler.setFormatter(OneLine(handler.formatter))


def print_run(result: RunResult) -> None:
    """The report of a run: per repository, per decision, outcomes, notes, where things are."""
    from rich.table import Table

    from flows.report import human_bytes

    table = Table(title="applied" if result.apply else "dry run (nothing deleted)")
    columns = ("repository", "kept", "planned deletions", "deleted now", "reclaimable")
    for column in columns:
        table.add_column(column, justify="left" if column == "repository" else "right")
    for row in result.summary:
        table.add_row(
            row["repository"],
            str(row["kept"]),
            str(row["deleted"]),
            str(row["deleted_in_run"]),
            human_bytes(row["bytes_reclaimable"]),
        )
    console.print(table)
    reasons = Table(title="digests by decision")
    for column in ("action", "reason", "digests"):
        reasons.add_column(column)
    for row in result.reasons:
        reasons.add_row(row["action"], row["reason"], str(row["digests"]))
    console.print(reasons)
    if result.outcomes:
        say("outcomes: " + ", ".join(f"{k} {v}" for k, v in result.outcomes.items()))
    for line in result.problems:
        say(f"  {line}")
    for note in result.notes:
        say(f"note: {note}")
    for repo, why in sorted(result.incomplete.items()):
        say(f"not touched (incomplete listing): {repo}: {why}")
    say(f"flow run {result.flow_run_id}; plan {result.plan_path}")
    if result.ledger_path:
        say(f"ledger {result.ledger_path}")


def strip_registry(image: str, config: Config) -> str:
    """`image` without a leading host that names the configured registry (or an alias)."""
    from tasks.core.reference import canonical_registry

    first, slash, rest = image.strip().partition("/")
    names = config.registry.names
    looks_like_host = "." in first or ":" in first or first == "localhost"
    if slash and looks_like_host and canonical_registry(first) in names:
        return rest
    return image


@app.command()
def explain(
    config: ConfigOption,
    image: Annotated[str, typer.Argument(help="REPOSITORY[:TAG|@DIGEST]")],
    now: NowOption = None,
    werf_config: WerfOption = None,
    output: OutputOption = "table",
) -> None:
    """Say every rule that keeps an image, or why none does."""
    output = output_format(output)
    cfg = _config(config, werf_config)
    moment = _now(now)
    from flows.report import explanations
    from tasks.core.reference import split_repository_reference

    repository, tag, digest = split_repository_reference(strip_registry(image, cfg))
    try:
        planned = plan_here(cfg, moment, show_progress=False)
    except expected_errors() as exc:
        raise fail(exc) from None
    found = explanations(planned.plan, cfg, repository, tag, digest, planned.git, moment)
    if not found:
        exit_if_incomplete(planned)
        errors.print(
            f"regsweep: {image} is not in the registry (as scanned)", highlight=False, markup=False
        )
        raise typer.Exit(2)
    if output == "json":
        print_json({"image": image, "digests": found})
        return
    for entry in found:
        say(f"{entry['repository']}@{entry['digest']}")
        say(f"  tags: {', '.join(entry['tags']) or '(untagged)'}")
        say(f"  commits: {', '.join(c[:7] for c in entry['commits']) or 'none'}")
        say(f"  {entry['action'].upper()} ({entry['reason']})")
        for line in entry["evidence"]:
            say(f"    - {line}")


@app.command()
def restore(
    ledger: Annotated[Path, typer.Option("--ledger", help="ledger written by `run --apply`")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="take the registry URL from here")
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="registry URL (default: the one the ledger records)"),
    ] = None,
    repository: Annotated[str | None, typer.Option("--repository")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601")] = None,
    digest: Annotated[str | None, typer.Option("--digest")] = None,
) -> None:
    """Put deleted manifests and their tags back from the ledger (the ledger alone is enough:
    it records the registry URL; credentials come from docker config or the environment)."""
    import asyncio

    from tasks.core.config import registry_only
    from tasks.core.errors import ConfigError
    from tasks.delete.errors import DeletionError, LedgerError
    from tasks.delete.restore import Restored, RestoreFilter, ledger_registries, restorable
    from tasks.delete.restore import restore as do_restore
    from tasks.registry.errors import RegistryError
    from tasks.registry.stage import make_client

    if not ledger.is_file():
        raise fail(ConfigError("--ledger", f"{ledger} is not a file"))
    selection = RestoreFilter(repository, digest, _now(since) if since else None)
    base = _config(config) if config else None
    given = registry or (base.registry.url if base else None)
    try:
        if given is not None:  # matched by host: works for ledgers without URLs too
            settings = registry_only(given, base)
            records = restorable(ledger, settings.registry.host, selection)
        else:
            recorded = ledger_registries(ledger)
            if "" in recorded or len(recorded) > 1:
                which = "it predates registry URLs" if "" in recorded else ", ".join(recorded)
                raise ConfigError("--registry", f"the ledger names no single registry ({which})")
            if not recorded:
                records = []
            else:
                settings = registry_only(recorded[0], field="--ledger")
                records = restorable(ledger, recorded[0], selection)
    except (LedgerError, OSError) as exc:
        raise fail(ConfigError("--ledger", str(exc))) from None
    except ConfigError as exc:
        raise fail(exc) from None
    if not records:
        console.print("nothing to restore: no deletion in the ledger matches")
        return

    async def go() -> list[Restored]:
        # The scan's client factory: credentials, vendor, limits and cache as `run` has them.
        async with make_client(settings) as client:
            return await do_restore(client, records)

    try:
        restored = asyncio.run(go())
    except LedgerError as exc:
        raise fail(ConfigError("--ledger", str(exc))) from None
    except (DeletionError, RegistryError, ConfigError) as exc:
        raise fail(exc) from None
    for done in restored:
        untag = done.record.action == "untag"  # the digest stayed: only its tag comes back
        say(f"{'re-tagged' if untag else 'restored'} {done.record.repository}@{done.record.digest}")
        for tag in done.tags:
            say(f"  tag {tag}: restored")
        for tag, now_at in sorted(done.skipped.items()):
            say(f"  tag {tag}: skipped, it now points at {now_at}")
    if restored:
        window = _config(config).safety.keep_restored_for if config else None
        from tasks.core.duration import format_duration

        how_long = format_duration(window) if window else "7 days by default"
        say(
            f"later runs keep what was restored for safety.keepRestoredFor ({how_long}) from "
            "now (keep reason `restored`); to keep an image for good, add it to the file "
            "cleanup.keepList names, e.g. "
            f"{restored[0].record.repository}@{restored[0].record.digest}"
        )


@app.command()
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, help="how many runs")] = 20,
    output: OutputOption = "table",
) -> None:
    """Print past runs of the cleanup flow (from the Prefect API), newest first."""
    output = output_format(output)
    import pandas as pd
    from rich.table import Table

    from flows.history import run_history
    from flows.report import human_bytes

    runs = run_history(limit)
    if output == "json":
        print_json({"runs": runs.to_dict(orient="records")})
        return
    table = Table(title=f"regsweep runs (last {limit})")
    for column in ("start", "duration", "state", "mode", "kept", "deleted", "bytes", "run"):
        table.add_column(
            column, justify="right" if column in ("kept", "deleted") else "left", no_wrap=True
        )
    for row in runs.itertuples(index=False):
        table.add_row(
            "" if pd.isna(row.start) else f"{row.start:%Y-%m-%d %H:%M:%S}",
            f"{row.duration_s:.1f} s",
            row.state,
            "apply" if row.apply else "dry run",
            str(row.kept),
            str(row.deleted),
            human_bytes(row.bytes),
            row.flow_run_id,
        )
    console.print(table)


@app.command()
def check(config: ConfigOption, werf_config: WerfOption = None, now: NowOption = None) -> None:
    """Check every part before a first --apply, deleting nothing: one line each; exit 0
    only when all pass (3 otherwise)."""
    from flows.check import run_checks

    cfg = _config(config, werf_config)
    failed = 0
    for result in run_checks(cfg, _now(now)):
        mark = "[green]ok[/]  " if result.ok else "[bold red]FAIL[/]"
        console.print(
            f"{mark} {escape(result.part)}: {escape(result.detail)}",
            highlight=False,
            soft_wrap=True,
        )
        failed += not result.ok
    if failed:
        errors.print(f"regsweep: {failed} check(s) failed", highlight=False)
        raise typer.Exit(3)


@app.command()
def verify(config: ConfigOption, output: OutputOption = "table") -> None:
    """Is the registry whole? Every tag of the configured repositories names a manifest and
    every image the cluster uses is there. Deletes nothing; exit 0 only when whole (4 when
    something is missing or dangling, 3 when a part cannot be read)."""
    output = output_format(output)
    cfg = _config(config)
    from tasks.delete.stage import verify_registry

    try:
        verdict = verify_registry(cfg)
    except expected_errors() as exc:
        raise fail(exc) from None
    if output == "json":
        print_json({"whole": verdict.whole, "problems": verdict.lines()})
    else:
        for line in verdict.lines():
            say(line)
        say(
            f"{'whole' if verdict.whole else 'NOT whole'}: {verdict.repositories} "
            f"repositories, {verdict.tags} tags, {verdict.needed} images in use read; "
            f"{len(verdict.missing)} missing, {len(verdict.dangling)} dangling"
        )
    if verdict.errors:
        raise typer.Exit(3)
    if not verdict.whole:
        raise typer.Exit(4)


@app.command()
def repair(
    config: ConfigOption,
    apply: Annotated[
        bool, typer.Option("--apply", help="really remove them (default: show what it would do)")
    ] = False,
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="where to record the repairs")
    ] = None,
) -> None:
    """Remove tags that name nothing (a deletion cut short by a crash, or another tool's
    damage), whoever left them, and close ledger records earlier runs left open."""
    cfg = _config(config)
    from datetime import UTC, datetime

    from flows.cleanup import runs_home
    from tasks.delete.stage import repair_registry

    path = None
    if apply:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = ledger or runs_home() / f"repair-{stamp}" / "ledger.jsonl"
    try:
        rows, damage = repair_registry(cfg, str(path) if path else None)
    except expected_errors() as exc:
        raise fail(exc) from None
    for row in rows.itertuples(index=False):
        tags = ", ".join(row.tags)
        at = f" (named {row.digest})" if row.digest else ""
        say(f"{row.outcome}: {row.repository}:{tags}{at} — {row.detail}")
    if rows.empty and not damage.open_records:
        say("nothing to repair: every tag names a manifest")
    elif damage.open_records:
        verb = "closed" if apply else "to close"
        say(f"{len(damage.open_records)} open ledger record(s) {verb}")
    if path is not None and not rows.empty:
        say(f"ledger {path}")
    if (rows["outcome"] == "failed").any():
        raise typer.Exit(4)


pulls_app = typer.Typer(help="Pull records: what the registry says was pulled.")
app.add_typer(pulls_app, name="pulls")


@pulls_app.command("serve")
def pulls_serve(
    config: ConfigOption,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to receive notifications on")
    ] = "127.0.0.1:8686",
) -> None:
    """Receive the registry's notifications (POST /events) and record pulls, until stopped."""
    from tasks.core.secrets import secret_value
    from tasks.pulls.errors import PullsError
    from tasks.pulls.service import serve
    from tasks.pulls.store import PullStore

    cfg = _config(config)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        bad_argument("--listen", f"must be HOST:PORT, not {listen!r}")
    token = os.environ.get("REGSWEEP_PULLS_TOKEN", "")
    if not token and cfg.pulls.token_secret:
        token = secret_value(cfg.pulls.token_secret, "pulls.tokenSecret")
    if not token:
        bad_argument(
            "pulls.tokenSecret",
            "no bearer token: set REGSWEEP_PULLS_TOKEN or name a Prefect Secret block here",
        )
    try:
        store = PullStore(cfg.pulls.database)
    except PullsError as exc:
        bad_argument("pulls.database", str(exc))
    errors.print(
        f"recording pulls in {cfg.pulls.database}; the registry posts to http://{listen}/events",
        highlight=False,
        markup=False,
    )
    serve(store, token, cfg.pulls.ignore_user_agents, host, int(port))


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option("--workdir", help="where demo state goes")] = Path(
        ".demo"
    ),
) -> None:
    """Run the whole job end to end on local parts: registry, Git repository, cluster."""
    from flows.demo.run import run_demo

    code = run_demo(workdir.resolve(), console, print_run)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point: an unexpected error is one line too (--debug: traceback)."""
    # At exit, the interpreter's garbage collection passes over pandas', pyarrow's and
    # httpx's objects cost ~0.13 s, a twentieth of a warm `plan`: frozen, they are left to
    # the operating system. Modules, files and atexit handlers are finalised as usual.
    atexit.register(gc.freeze)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if OPTIONS.debug:
            raise
        errors.print(
            f"[bold red]regsweep: internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(rerun with --debug for the traceback, and please report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
