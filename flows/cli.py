"""The `regsweep` command line (thin: parse arguments, call stages or the flow, print).

Exit codes: 0 success; 2 bad configuration or arguments; 3 an extraction failed and
nothing was deleted; 4 deletions refused or partly failed (the ledger says which).
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.report import human_bytes
from tasks.cluster.errors import ClusterError
from tasks.core.config import Config, load_config
from tasks.core.errors import ConfigError
from tasks.core.progress import ScanTally
from tasks.core.reference import split_repository_reference
from tasks.delete.errors import DeletionError
from tasks.git.errors import GitError
from tasks.registry.errors import RegistryError

if TYPE_CHECKING:
    from flows.pipeline import Planned
    from flows.result import RunResult

# regsweep's own warnings (registry retries, failed deletions) go to the flow run's logs too.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")

app = typer.Typer(
    name="regsweep",
    help="Clean a container registry without deleting an image someone still needs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="regsweep YAML file")]
WerfOption = Annotated[
    Path | None,
    typer.Option("--werf-config", help="take the cleanup section from this werf.yaml"),
]
NowOption = Annotated[
    str | None, typer.Option("--now", help="fix 'now' (ISO 8601) for every time window")
]


def say(text: str) -> None:
    """Print a line no one may find wrapped or coloured: digests, references, paths."""
    console.print(text, highlight=False, soft_wrap=True)


def exit_code(exc: BaseException) -> int:
    """Map an error to the documented exit code."""
    from flows.result import RunFailed

    if isinstance(exc, RunFailed):
        return exc.exit_code
    if isinstance(exc, ConfigError):
        return 2
    if isinstance(exc, RegistryError | GitError | ClusterError):
        return 3
    if isinstance(exc, DeletionError):
        return 4
    return 1


def fail(exc: BaseException) -> typer.Exit:
    code = exit_code(exc)
    label = {
        2: "configuration error",
        3: "extraction failed or incomplete, nothing deleted in its scope",
        4: "deletion",
    }
    errors.print(
        f"[bold red]regsweep: {label.get(code, 'error')}:[/] {exc}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code)


def _config(path: Path, werf_config: Path | None = None) -> Config:
    try:
        return load_config(path, werf_config)
    except ConfigError as exc:
        raise fail(exc) from None


def _now(text: str | None) -> datetime:
    from flows.pipeline import parse_now

    if text is None:
        return datetime.now(UTC)
    try:
        return parse_now(text)
    except ValueError:
        raise fail(ConfigError("--now", f"{text!r} is not an ISO 8601 time")) from None


def plan_here(config: Config, now: datetime, show_progress: bool = True) -> Planned:
    """Every stage and the plan in this process (no Prefect), with progress bars on stderr."""
    from flows.pipeline import compute_plan, local_stages

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=not show_progress,
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
) -> None:
    """Preview the plan: extract and decide in this process; delete nothing."""
    from flows.report import stage_notes, write_plan
    from tasks.policy.summary import summarise

    cfg = _config(config, werf_config)
    if out is not None and out.suffix not in (".parquet", ".csv"):
        raise fail(ConfigError("--out", f"must end in .parquet or .csv, not {out.name!r}"))
    moment = _now(now)
    try:
        planned = plan_here(cfg, moment)
    except (ConfigError, RegistryError, GitError, ClusterError) as exc:
        raise fail(exc) from None
    if out is not None:
        write_plan(planned.plan.table, out)
        errors.print(f"plan written to {out}", soft_wrap=True)
    for note in stage_notes(cfg, planned.registry):
        errors.print(f"warning: {note}", soft_wrap=True, highlight=False)
    print_summary(summarise(planned.plan.table, planned.registry.blobs))


def print_summary(summary: Any, title: str = "plan") -> None:
    table = Table(title=title)
    for column in ("repository", "kept", "deleted", "reclaimable"):
        table.add_column(column, justify="left" if column == "repository" else "right")
    for row in summary.itertuples(index=False):
        table.add_row(
            row.repository, str(row.kept), str(row.deleted), human_bytes(row.bytes_reclaimable)
        )
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
    from flows.cleanup import cleanup
    from flows.scale_out import TaskRunnerChoiceError, task_runner_from_option

    flow = cleanup
    if task_runner is not None:
        try:
            flow = cleanup.with_options(task_runner=task_runner_from_option(task_runner))
        except TaskRunnerChoiceError as exc:
            raise fail(ConfigError("", str(exc))) from None
    _config(config, werf_config)
    if now is not None:
        _now(now)
    from flows.result import RunFailed

    try:
        result = flow(
            config_path=str(config.resolve()),
            apply=apply,
            now=now,
            ledger=str(ledger) if ledger else None,
            force=force,
            werf_config=str(werf_config.resolve()) if werf_config else None,
        )
    except RunFailed as exc:
        print_run(exc.result)
        raise fail(exc) from None
    except Exception as exc:
        raise fail(exc) from None
    print_run(result)


def print_run(result: RunResult) -> None:
    """The report of a run: per repository, per decision, outcomes, notes, where things are."""
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
        console.print("outcomes: " + ", ".join(f"{k} {v}" for k, v in result.outcomes.items()))
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
) -> None:
    """Say every rule that keeps an image, or why none does."""
    cfg = _config(config, werf_config)
    moment = _now(now)
    repository, tag, digest = split_repository_reference(strip_registry(image, cfg))
    try:
        result = plan_here(cfg, moment, show_progress=False).plan
    except (ConfigError, RegistryError, GitError, ClusterError) as exc:
        raise fail(exc) from None
    table = result.table
    rows = table[table["repository"] == repository]
    rows = rows[rows["digest"] == digest] if digest else rows[rows["tag"] == (tag or "latest")]
    if rows.empty:
        errors.print(f"regsweep: {image} is not in the registry (as scanned)")
        raise typer.Exit(2)
    for row in rows.drop_duplicates("digest").itertuples(index=False):
        key = (row.repository, row.digest)
        tags = sorted(
            t
            for t in table.loc[
                (table["repository"] == row.repository) & (table["digest"] == row.digest), "tag"
            ]
            if t
        )
        console.print(f"{row.repository}@{row.digest}", highlight=False)
        console.print(f"  tags: {', '.join(tags) or '(untagged)'}", highlight=False)
        links = ", ".join(c[:7] for c in row.commits) or "none"
        console.print(f"  commits: {links}", highlight=False)
        if row.action == "keep":
            console.print(f"  KEEP ({row.reason})")
            for line in result.evidence.get(key, []):
                console.print(f"    - {line}", highlight=False)
            if row.reason == "shared-digest":
                console.print("    - shared-digest: another tag on this digest is kept")
        else:
            console.print("  DELETE (no-policy): no keep rule applies")
            for line in result.evidence.get(key, []):
                console.print(f"    - {line}", highlight=False)
            if row.commits:
                console.print("    - its commits are not among the images any keepPolicy keeps")
            unknown = result.unknown_commits.get(key)
            if unknown:
                console.print(f"    - Git does not know: {', '.join(sorted(unknown))}")


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
    from tasks.core.reference import normalise_url, registry_host
    from tasks.delete.errors import LedgerError
    from tasks.delete.restore import Restored, RestoreFilter, ledger_registries, restorable
    from tasks.delete.restore import restore as do_restore
    from tasks.registry.client import RegistryClient
    from tasks.registry.credentials import load_credentials

    if not ledger.is_file():
        raise fail(ConfigError("--ledger", f"{ledger} is not a file"))
    selection = RestoreFilter(repository, digest, _now(since) if since else None)
    given = registry or (_config(config).registry.url if config else None)
    try:
        if given is not None:  # matched by host: works for ledgers without URLs too
            url = normalise_url(given)
            records = restorable(ledger, registry_host(url), selection)
        else:
            recorded = ledger_registries(ledger)
            if "" in recorded or len(recorded) > 1:
                which = "it predates registry URLs" if "" in recorded else ", ".join(recorded)
                raise ConfigError("--registry", f"the ledger names no single registry ({which})")
            url = recorded[0] if recorded else ""
            records = restorable(ledger, url, selection) if url else []
    except ValueError as exc:
        raise fail(ConfigError("--registry", str(exc))) from None
    except (LedgerError, OSError) as exc:
        raise fail(ConfigError("--ledger", str(exc))) from None
    except ConfigError as exc:
        raise fail(exc) from None
    if not records:
        console.print("nothing to restore: no deletion in the ledger matches")
        return

    async def go() -> list[Restored]:
        async with RegistryClient(url, credentials=load_credentials(registry_host(url))) as client:
            return await do_restore(client, records)

    try:
        restored = asyncio.run(go())
    except LedgerError as exc:
        raise fail(ConfigError("--ledger", str(exc))) from None
    except (DeletionError, RegistryError) as exc:
        raise fail(exc) from None
    for done in restored:
        say(f"restored {done.record.repository}@{done.record.digest}")
        for tag in done.tags:
            say(f"  tag {tag}: restored")
        for tag, now_at in sorted(done.skipped.items()):
            say(f"  tag {tag}: skipped, it now points at {now_at}")


@app.command()
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, help="how many runs")] = 20,
) -> None:
    """Print past runs of the cleanup flow (from the Prefect API), newest first."""
    import pandas as pd

    from flows.history import run_history
    from flows.report import human_bytes

    runs = run_history(limit)
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
            row.flow_run_id[:8],  # `prefect flow-run inspect` takes the full id from the UI
        )
    console.print(table)


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
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
