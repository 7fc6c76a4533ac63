"""`regsweep repair`: tags naming nothing removed, open ledger records closed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    app,
    expected_errors,
    load,
)
from flows.cli.render import (
    fail,
    say,
)


@app.command()
def repair(
    config: ConfigOption = DEFAULT_CONFIG,
    apply: Annotated[
        bool, typer.Option("--apply", help="really remove them (default: show what it would do)")
    ] = False,
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="where to record the repairs")
    ] = None,
) -> None:
    """Remove tags that name nothing (a deletion cut short by a crash, or another tool's
    damage), whoever left them, and close ledger records earlier runs left open."""
    cfg = load(config)
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
