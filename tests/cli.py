"""Run the `regsweep` CLI as a user does: a separate process, so exit codes and stderr are real."""

from __future__ import annotations

import subprocess
import sys


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`regsweep ARGS` in a child process; the result holds returncode, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
