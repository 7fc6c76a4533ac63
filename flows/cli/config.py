"""`regsweep config`: the configuration's JSON Schema, and a commented first configuration."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import DEFAULT_CONFIG, app, load
from flows.cli.render import bad_argument, console, say

SCHEMA_FILE = "regsweep.schema.json"

config_app = typer.Typer(help="The configuration: its JSON Schema, and a first regsweep.yaml.")
app.add_typer(config_app, name="config")


def schema_text() -> str:
    """The JSON Schema of regsweep.yaml, as `config schema` prints it."""
    from tasks.core.config import config_schema

    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"


@config_app.command("schema")
def schema(
    out: Annotated[
        Path | None, typer.Option("--out", help="write it to this file (default: print it)")
    ] = None,
) -> None:
    """Print the JSON Schema of regsweep.yaml (editors validate and complete against it:
    `# yaml-language-server: $schema=regsweep.schema.json` at the top of the file)."""
    text = schema_text()
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text)
    say(f"wrote {out}")


@config_app.command("init")
def init(
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="the registry's URL (asked on a terminal when not given)"),
    ] = None,
    git: Annotated[
        Path | None,
        typer.Option(
            "--git",
            help="a full clone of the repository the images are built from "
            "(default: this directory when it is one)",
        ),
    ] = None,
    kube_context: Annotated[
        str | None,
        typer.Option(
            "--kube-context",
            help="the kubeconfig context of the cluster that runs the images (default: the "
            "current one, when there is a kubeconfig)",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="where to write it")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
) -> None:
    """Write a commented first regsweep.yaml (and the JSON Schema beside it, which the file
    names for editors), from what is given, asked or found here; check it as `plan` would."""
    if out.exists() and not force:
        bad_argument("--out", f"{out} exists: give another --out, or --force to replace it")
    if registry is None:
        if not sys.stdin.isatty():
            bad_argument("--registry", "the registry's URL is needed (no terminal to ask on)")
        registry = typer.prompt("Registry URL (https://registry.example.com)")
    clone = git if git is not None else (Path(".") if Path(".git").exists() else None)
    context = kube_context or current_kube_context()
    text = starting_configuration(registry, clone, context)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text() if out.exists() else None
    out.write_text(text)
    try:
        load(out)  # the file must be one `plan` takes, else nothing is left behind
    except typer.Exit:
        if previous is None:
            out.unlink()
        else:
            out.write_text(previous)
        raise
    (out.parent / SCHEMA_FILE).write_text(schema_text())
    say(f"wrote {out} and {out.parent / SCHEMA_FILE}")
    console.print(
        f"next: regsweep check{'' if out == DEFAULT_CONFIG else f' -c {out}'}, then regsweep plan",
        highlight=False,
    )


def current_kube_context() -> str | None:
    """The current context of $KUBECONFIG (its first file) or ~/.kube/config, if any."""
    import yaml

    first = (os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)[0]
    try:
        document = yaml.safe_load(Path(first).expanduser().read_text())
    except (OSError, yaml.YAMLError):
        return None
    context = document.get("current-context") if isinstance(document, dict) else None
    return str(context) if context else None


def starting_configuration(registry: str, clone: Path | None, context: str | None) -> str:
    """A commented regsweep.yaml: the registry, Git and the cluster as given (what is not
    there is switched off, with what to set to switch it on), werf's default policies."""
    git = (
        f"git:\n  path: {json.dumps(str(clone))}  # a full clone (not shallow): its "
        "branches and tags decide\n"
        if clone is not None
        else "# git: {path: ./checkout}  # a full clone of the repository the images are "
        "built from\n"
    )
    kubernetes = (
        f"kubernetes:\n  contexts: [{json.dumps(context)}]  # every image its Pods, "
        "workloads and Helm releases name is kept\n"
        if context is not None
        else "kubernetes:\n  enabled: false  # no kubeconfig found: set `kubeconfig` (and "
        "`contexts`) to keep what the cluster runs\n"
    )
    policy = (
        "  keepPolicies: []  # empty: werf's default policies (tags, branches, main)\n"
        if clone is not None
        else "  disableGitHistoryBasedPolicy: true  # no Git clone: set git.path and drop "
        "this line\n"
    )
    return (
        f"# yaml-language-server: $schema={SCHEMA_FILE}\n"
        "# regsweep's configuration (written by `regsweep config init`). Every key: the\n"
        f"# JSON Schema beside this file ({SCHEMA_FILE}), or `regsweep config schema`.\n"
        "registry:\n"
        f"  url: {json.dumps(registry)}  # credentials never go here: REGSWEEP_REGISTRY_USERNAME"
        " and _PASSWORD, or docker's config.json\n"
        '  repositories: ["*"]  # globs over the catalog; narrow them to start small\n'
        f"{git}"
        f"{kubernetes}"
        "cleanup:\n"
        f"{policy}"
        "  keepImagesBuiltWithinLastNHours: 2\n"
        "  unlinked: keep  # keep | delete: images no Git commit names\n"
        "safety:\n"
        "  maxDeleteFraction: 0.5  # a run that would delete more is refused (--force)\n"
    )
