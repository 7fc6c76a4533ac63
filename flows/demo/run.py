"""`regsweep demo`: the whole job end to end on local parts, then everything stopped."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import build_scenario, now_for_demo

if TYPE_CHECKING:
    from flows.result import RunResult


def _heading(console: Console, text: str) -> None:
    """A section heading of fixed width (a rule would span a piped console's full width)."""
    console.print(f"\n── {text} " + "─" * max(3, 72 - len(text)), highlight=False, markup=False)


def run_demo(workdir: Path, console: Console, print_run: Callable[[RunResult], None]) -> int:
    """Build the demo, run a dry run and an applied run (each shown by `print_run`), check
    the result; return the exit code."""
    from flows.cleanup import cleanup

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("REGSWEEP_HOME", str(workdir / "home"))
    started = time.monotonic()
    for part in ("registry", "scenario"):
        shutil.rmtree(workdir / part, ignore_errors=True)
    registry = LocalRegistry(workdir / "registry")
    kube = KubeAPIFixture()
    try:
        registry.start()
        _heading(console, "1. local parts")
        console.print(f"registry   {registry.url} (Distribution, data in {registry.root})")
        now = now_for_demo()
        scenario = build_scenario(workdir / "scenario", registry.url, kube, now)
        kube.start().write_kubeconfig(workdir / "scenario" / "kubeconfig")
        console.print(
            f"git        {workdir / 'scenario' / 'git' / 'checkout'} "
            "(main, feature-login, feature-old deleted from origin, v1.0.0, v1.1.0)"
        )
        console.print(f"kubernetes {kube.url} (API fixture: a Deployment, a Pod, Helm history)")
        console.print(f"config     {scenario.config_path}")

        _heading(console, "2. regsweep run (dry run: nothing is deleted)")
        dry = cleanup(config_path=str(scenario.config_path), now=now.isoformat())
        print_run(dry)

        _heading(console, "3. regsweep run --apply")
        applied = cleanup(config_path=str(scenario.config_path), apply=True, now=now.isoformat())
        print_run(applied)

        _heading(console, "4. check the registry")
        present = scenario.present(registry.url)
        wrong = sorted(present ^ scenario.expect_kept)
        for name, digest in sorted(scenario.digests.items()):
            repo = scenario.repository_of(name)
            mark = "kept   " if name in present else "deleted"
            console.print(f"  {mark} {repo}@{digest}  ({name})", highlight=False, markup=False)
        if wrong:
            console.print(f"[red]unexpected outcome for: {', '.join(wrong)}[/]")
            return 1
        _heading(console, "done")
        prefect_home = os.environ.get("PREFECT_HOME", "~/.prefect")
        console.print(
            f"Every image still needed survived; the rest was deleted in "
            f"{time.monotonic() - started:.0f}s.\n"
            f"Runs are recorded in Prefect (PREFECT_HOME={prefect_home}):"
            " `prefect server start` shows them at http://127.0.0.1:4200.\n"
            f"Ledger of deletions: {applied.ledger_path}; plan: {applied.plan_path}\n"
            f"The two runs again, no server needed: PREFECT_HOME={prefect_home} regsweep history"
            "\n(The demo's registry stops with it: `explain` and `plan` need a registry of "
            "your own, see docs/getting-started.md.)"
        )
        return 0
    finally:
        kube.stop()
        registry.stop()
