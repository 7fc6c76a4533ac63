"""Every benchmark runs at a smoke size here, so none can rot unnoticed (two of six had
crashed for a wave before anyone looked). The figures are printed, the targets not judged:
a wall-clock target would fail on a busy machine, not on a broken benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SMOKED = sorted(p.name for p in BENCHMARKS.glob("[!_]*.py"))


@pytest.mark.parametrize("script", SMOKED)
def test_the_benchmark_runs_at_a_smoke_size(
    script: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # the soak's flow runs record in the session's Prefect server (a temporary one of its
    # own costs 15-20 s, and tests/delete/test_soak.py already starts none)
    base = request.getfixturevalue("prefect_env") if script == "soak.py" else dict(os.environ)
    env = {
        **base,
        "REGSWEEP_BENCH_SMOKE": "1",
        "REGSWEEP_HOME": str(tmp_path / "home"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    done = subprocess.run(
        [sys.executable, script],
        cwd=BENCHMARKS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "RESULT " in done.stdout  # it got as far as its figures
