"""`regsweep run`: the Prefect flow, a dry run unless `--apply`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from datetime import datetime

    from tasks.core.config import Config

from flows.cli.app import (
    DEFAULT_CONFIG,
    CleanupReportOption,
    ConfigOption,
    NowOption,
    WerfOption,
    app,
    expected_errors,
    load,
    moment_of,
)
from flows.cli.render import (
    OPTIONS,
    bad_argument,
    fail,
    print_run,
    say,
    tell,
)


@app.command()
def run(
    config: ConfigOption = DEFAULT_CONFIG,
    apply: Annotated[
        bool, typer.Option("--apply", help="really delete (default: dry run)")
    ] = False,
    now: NowOption = None,
    ledger: Annotated[Path | None, typer.Option("--ledger", help="deletion ledger path")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="override the guards: safety.maxDeleteFraction, the cluster guard (no cluster "
            "image names this registry) and the Git guard (images link commits Git does not "
            "know)",
        ),
    ] = False,
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
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="apply without asking (a terminal is asked first)"),
    ] = False,
) -> None:
    """Run the Prefect flow: extract, plan, and delete (only with --apply). On a terminal,
    --apply lists the deletions and asks first."""
    runner = None
    if task_runner is not None:
        from flows.scale_out import TaskRunnerChoiceError, task_runner_from_option

        try:
            runner = task_runner_from_option(task_runner)
        except TaskRunnerChoiceError as exc:
            bad_argument("", str(exc))  # the message names --task-runner
    cfg = load(config, werf_config)
    moment = moment_of(now)
    preflight(cfg)
    confirmed = None
    if apply and not yes and sys.stdin.isatty() and sys.stdout.isatty():
        confirmed = confirm_deletions(cfg, moment)
        now = moment.isoformat()  # the run plans at the moment the list was made
    from flows.cleanup import cleanup
    from flows.result import RunFailed

    flow = cleanup if runner is None else cleanup.with_options(task_runner=runner)
    if not OPTIONS.debug:
        one_line_prefect_logs()
    where = os.environ.get("PREFECT_API_URL")
    tell(
        f"recording the run in the Prefect server at {where}"
        if where
        else "recording the run in a temporary Prefect server (its history stays in "
        f"{os.environ.get('PREFECT_HOME', '~/.prefect')}); set PREFECT_API_URL to use a "
        "long-lived one"
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
            confirmed=confirmed,
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


def confirm_deletions(config: Config, moment: datetime) -> list[str]:
    """On a terminal, before an apply: the plan made here, its deletions and untags listed,
    and a question. Returns what was confirmed (the run deletes nothing else); exits 0,
    nothing deleted, when the answer is no."""
    from flows.cli.plan import plan_here
    from flows.guards import confirmation_keys, refusals_of

    try:
        planned = plan_here(config, moment)
    except expected_errors() as exc:
        raise fail(exc) from None
    deletes, untags = confirmation_keys(planned)
    if not deletes and not untags:
        say("nothing to delete or untag: the run goes on to record it")
        return []
    say(f"the run would delete {len(deletes)} image(s) and untag {len(untags)} tag(s):")
    for key in [*deletes, *untags]:
        say(f"  {key}")
    for why in refusals_of(config, planned):
        say(f"  (a guard refuses some of them: {why})")
    if not typer.confirm(f"Delete these from {config.registry.url}?", default=False):
        say("nothing deleted")
        raise typer.Exit(0)
    return [*deletes, *untags]
