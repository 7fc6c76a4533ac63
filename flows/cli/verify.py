"""`regsweep verify`: is the registry whole?"""

from __future__ import annotations

import typer

from flows.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    OutputOption,
    app,
    expected_errors,
    load,
)
from flows.cli.render import (
    fail,
    output_format,
    print_json,
    say,
)


@app.command()
def verify(config: ConfigOption = DEFAULT_CONFIG, output: OutputOption = "table") -> None:
    """Is the registry whole? Every tag of the configured repositories names a manifest and
    every image the cluster uses is there. Deletes nothing; exit 0 only when whole (4 when
    something is missing or dangling, 3 when a part cannot be read)."""
    output = output_format(output)
    cfg = load(config)
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
