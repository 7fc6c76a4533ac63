"""notebooks/retention.ipynb runs (nbmake) on the data of a demo-sized dry run and apply."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flows.cleanup import cleanup
from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import build_scenario, now_for_demo

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "retention.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in cells)


def test_retention_notebook_runs_on_demo_runs(
    prefect_env: dict[str, str], registry: LocalRegistry, kube: KubeAPIFixture, tmp_path: Path
) -> None:
    scenario = build_scenario(tmp_path / "scenario", registry.url, kube, now_for_demo())
    kube.write_kubeconfig(tmp_path / "scenario" / "kubeconfig")
    dry = cleanup(config_path=str(scenario.config_path), now=scenario.now.isoformat())
    cleanup(config_path=str(scenario.config_path), apply=True, now=scenario.now.isoformat())
    registry.stop()  # the notebook must not need the registry

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake", str(NOTEBOOK)],
        capture_output=True,
        text=True,
        env=prefect_env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    runs = Path(dry.run_dir).parent
    for name in ("reclaimable.png", "pulls.png"):  # the pull plot: the demo records pulls
        figures = [run / name for run in runs.iterdir()]
        assert any(f.exists() and f.stat().st_size > 0 for f in figures), name
