"""`regsweep demo`: the whole job end to end on local parts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import (
    app,
)
from flows.cli.render import (
    console,
    print_run,
)


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
