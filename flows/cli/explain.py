"""`regsweep explain`: every rule that keeps an image, or why none does."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from tasks.core.config import Config

from flows.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    NowOption,
    OutputOption,
    WerfOption,
    app,
    expected_errors,
    load,
    moment_of,
)
from flows.cli.plan import plan_here
from flows.cli.render import (
    exit_if_incomplete,
    fail,
    output_format,
    print_json,
    say,
    tell,
)


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
    image: Annotated[str, typer.Argument(help="REPOSITORY[:TAG|@DIGEST]")],
    config: ConfigOption = DEFAULT_CONFIG,
    now: NowOption = None,
    werf_config: WerfOption = None,
    output: OutputOption = "table",
) -> None:
    """Say every rule that keeps an image, or why none does."""
    output = output_format(output)
    cfg = load(config, werf_config)
    moment = moment_of(now)
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
        globs = cfg.registry.repositories
        if not any(fnmatchcase(repository, glob) for glob in globs):
            tell(
                f"regsweep: {repository} is outside registry.repositories ({', '.join(globs)}): "
                "regsweep neither scans nor deletes it"
            )
        else:
            scanned = planned.registry.status["repository"].tolist()
            what = "repository" if repository not in scanned else "tag or digest"
            tell(f"regsweep: {image} is not in the registry as scanned (no such {what})")
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
