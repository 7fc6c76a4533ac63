"""The `regsweep` Typer application: its global options, the options commands share, and
what every command does with them (load the configuration, read `--now`). Each command is
its own module in this package; `flows.cli.render` prints.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

if TYPE_CHECKING:
    from datetime import datetime

    from tasks.core.config import Config

from flows.cli.render import OPTIONS, bad_argument, console, errors, fail

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

CONFIG_VARIABLE = "REGSWEEP_CONFIG"
DEFAULT_CONFIG = Path("regsweep.yaml")
ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_VARIABLE,
        show_default=False,
        help=f"regsweep YAML file (default: ${CONFIG_VARIABLE}, else ./regsweep.yaml)",
    ),
]
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


def show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"regsweep {version('regsweep')}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="print the version and exit", is_eager=True, callback=show_version
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


def load(path: Path, werf_config: Path | None = None) -> Config:
    """The configuration at `path` (with `--werf-config`'s cleanup); exit 2 naming the bad
    field."""
    from tasks.core.config import load_config
    from tasks.core.errors import ConfigError

    if not path.exists():
        where = "--config" if path != DEFAULT_CONFIG else "--config (default ./regsweep.yaml)"
        raise fail(
            ConfigError(
                where,
                f"{path} does not exist: give --config FILE, set {CONFIG_VARIABLE}, or write "
                "./regsweep.yaml",
            )
        )
    try:
        return load_config(path, werf_config)
    except ConfigError as exc:
        raise fail(exc) from None


def moment_of(text: str | None) -> datetime:
    """`--now`, else this moment; exit 2 when it is not an ISO 8601 time."""
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


def plain_flags(command: Any) -> None:
    """Flags take no value, so `--help` shows none (Typer prints `<bool>` beside each; its
    Click is its own copy, so flags are known by `is_flag`)."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    help_option = command.get_help_option  # made anew for each help: plain it as it comes

    def plain_help(ctx: Any) -> Any:
        option = help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = plain_help
    for sub in getattr(command, "commands", {}).values():
        plain_flags(sub)


def main() -> None:
    """Console-script entry point: an unexpected error is one line too (--debug: traceback)."""
    # At exit, the interpreter's garbage collection passes over pandas', pyarrow's and
    # httpx's objects cost ~0.13 s, a twentieth of a warm `plan`: frozen, they are left to
    # the operating system. Modules, files and atexit handlers are finalised as usual.
    atexit.register(gc.freeze)
    try:
        command = typer.main.get_command(app)
        plain_flags(command)
        command()
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
