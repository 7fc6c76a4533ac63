"""`regsweep run --apply` on a terminal lists what it would delete and asks (issue #32:
it deleted without showing what). No: nothing is deleted. Yes: exactly what was listed,
and nothing the list did not show (the delete step refuses the rest:
tests/delete/test_refusals_preview.py). Without a terminal (a schedule) it never asks:
every piped `run --apply` of the suite would stop at the question otherwise."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import build_scenario, now_for_demo

QUESTION = b"Delete these from "


def on_a_terminal(
    args: list[str], answer: bytes, env: dict[str, str], timeout: float = 300
) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; answer the question
    with `answer` when it is asked; return the exit code and everything it wrote."""
    controller, terminal = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={k: v for k, v in env.items() if k != "COLUMNS"} | {"TERM": "dumb"},
    )
    os.close(terminal)
    seen, answered = b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        if not answered and QUESTION in seen:
            os.write(controller, answer)
            answered = True
        if child.poll() is not None and not ready:
            break
    os.close(controller)
    return child.wait(timeout=60), seen.decode(errors="replace")


def test_apply_on_a_terminal_lists_and_asks_and_deletes_only_what_was_confirmed(
    prefect_env: dict[str, str], registry: LocalRegistry, kube: KubeAPIFixture, tmp_path: Path
) -> None:
    now = now_for_demo()
    scenario = build_scenario(tmp_path / "scenario", registry.url, kube, now)
    kube.write_kubeconfig(tmp_path / "scenario" / "kubeconfig")
    args = ["run", "-c", str(scenario.config_path), "--apply", "--now", now.isoformat()]
    doomed = {scenario.digests[n] for n in scenario.expect_deleted}

    code, said = on_a_terminal(args, b"n\n", prefect_env)
    assert code == 0, said
    assert f"would delete {len(doomed)} image(s)" in said and "nothing deleted" in said
    assert all(digest in said for digest in doomed)
    assert scenario.present(registry.url) == set(scenario.digests)  # declined: all there

    code, said = on_a_terminal(args, b"y\n", prefect_env)
    assert code == 0, said
    assert scenario.present(registry.url) == scenario.expect_kept

    # Later: nothing left to delete, so nothing is asked and the run is recorded (a later
    # `now`: the same one would reuse the cached extraction of the run before)
    later = [*args[:-1], (now + timedelta(minutes=1)).isoformat()]
    code, said = on_a_terminal(later, b"y\n", prefect_env)
    assert code == 0, said
    assert "nothing to delete or untag" in said and QUESTION.decode() not in said
    assert scenario.present(registry.url) == scenario.expect_kept
