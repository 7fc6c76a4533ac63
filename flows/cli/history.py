"""`regsweep history`: the runs Prefect recorded."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import (
    OutputOption,
    app,
)
from flows.cli.render import (
    console,
    output_format,
    print_json,
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
    counts = ("kept", "planned", "deleted")
    for column in ("start", "duration", "state", "mode", *counts, "bytes", "run"):
        table.add_column(column, justify="right" if column in counts else "left", no_wrap=True)
    for row in runs.itertuples(index=False):
        table.add_row(
            "" if pd.isna(row.start) else f"{row.start:%Y-%m-%d %H:%M:%S}",
            f"{row.duration_s:.1f} s",
            row.state,
            "apply" if row.apply else "dry run",
            str(row.kept),
            str(row.planned),
            str(row.deleted),
            human_bytes(row.bytes),
            row.flow_run_id,
        )
    console.print(table)
