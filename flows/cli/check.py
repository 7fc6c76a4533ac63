"""`regsweep check`: every part a run needs, checked without changing anything."""

from __future__ import annotations

import typer
from rich.markup import escape

from flows.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    NowOption,
    WerfOption,
    app,
    load,
    moment_of,
)
from flows.cli.render import (
    console,
    errors,
)


@app.command()
def check(
    config: ConfigOption = DEFAULT_CONFIG, werf_config: WerfOption = None, now: NowOption = None
) -> None:
    """Check every part before a first --apply, deleting nothing: one line each; exit 0
    only when all pass (3 otherwise)."""
    from flows.check import run_checks

    cfg = load(config, werf_config)
    failed = 0
    for result in run_checks(cfg, moment_of(now)):
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
