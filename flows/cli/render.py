"""What the command line prints: the consoles (never wrapped when piped), one-line failures
and their exit codes, the plan summary and the run report, JSON documents.

Exit codes: 0 success; 2 bad configuration or arguments; 3 an extraction failed and
nothing was deleted; 4 deletions refused or partly failed (the ledger says which).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from flows.pipeline import Planned
    from flows.result import RunResult


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


def tell(text: str) -> None:
    """Print a line on stderr as it is (no markup, highlighting or wrapping): warnings, what
    was written where, why a command exits."""
    errors.print(text, highlight=False, soft_wrap=True, markup=False)


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
EXIT_CODES = {
    0: "done: what was asked (a dry run planned; an apply deleted and verified; `check` "
    "passed everywhere)",
    1: "an unexpected error, or a run that failed otherwise (the flow run ends Failed)",
    2: "a configuration or argument error, naming the field or option; nothing was done",
    3: "an extraction failed or was incomplete (registry, Git, cluster, pull records), or a "
    "`check` line failed: nothing deleted in its scope",
    4: "deletions refused (the guards; `plan`: a run would refuse) or failed, or verify found "
    "something missing; the ledger says what was sent",
    130: "interrupted (Ctrl-C)",
}
"""Every exit code regsweep commands give, and what it means (the manual's reference)."""


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


def exit_if_refused(refused: list[str]) -> None:
    """Exit 4 naming each reason a run of this plan would refuse deletions, as `run` does
    (its dry run too): the preview refuses what the run refuses."""
    if not refused:
        return
    for why in refused:
        tell(f"regsweep: a run would refuse deletions: {why}")
    raise typer.Exit(4)


def exit_if_incomplete(planned: Planned) -> None:
    """Exit 3 naming each repository the scan could not read whole (a run would delete
    nothing there): the plan shown covers only the rest."""
    status = planned.registry.status
    incomplete = status[~status["complete"]]
    if incomplete.empty:
        return
    for repository, why in zip(incomplete["repository"], incomplete["error"], strict=True):
        tell(f"regsweep: {repository}: listing incomplete, a run deletes nothing there: {why}")
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
    print_deletions(result.deletions, "deletions and untags" if result.apply else "would delete")
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


DELETIONS_PRINTED = 200  # lines of the list a run prints (the artifact and plan file: all)


def print_deletions(rows: list[dict[str, Any]], title: str) -> None:
    """Every deletion and untag (up to DELETIONS_PRINTED), a line each, nothing wrapped."""
    from flows.report import human_bytes

    if not rows:
        return
    say(f"{title}:")
    for row in rows[:DELETIONS_PRINTED]:
        tags = f":{row['tags']}" if row["tags"] else ""
        say(
            f"  {row['outcome']:<13} {row['repository']}{tags} {row['digest']} "
            f"({human_bytes(row['size'])})"
        )
    if len(rows) > DELETIONS_PRINTED:
        say(f"  ... and {len(rows) - DELETIONS_PRINTED} more (the run's `deletions` artifact)")
