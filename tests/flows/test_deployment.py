"""deployments/prefect.yaml deployed to the embedded Prefect server and run by a real process
worker: the scheduled path users take."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import build_scenario, now_for_demo
from flows.deploy_local import deploy_and_run
from tasks.core.home import regsweep_home


def test_deployment_runs_on_a_process_worker(
    prefect_harness: None, registry: LocalRegistry, kube: KubeAPIFixture, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    scenario = build_scenario(tmp_path / "scenario", registry.url, kube, now_for_demo())
    kube.write_kubeconfig(tmp_path / "scenario" / "kubeconfig")
    run = deploy_and_run(
        str(PREFECT_API_URL.value()),
        {"config_path": str(scenario.config_path), "now": scenario.now.isoformat()},
    )
    assert run.state is not None and run.state.name == "Completed", run.state
    assert run.deployment_id is not None
    plan = pd.read_parquet(regsweep_home() / "runs" / str(run.id) / "plan.parquet")
    assert set(plan.loc[plan["action"] == "delete", "digest"]) == {
        scenario.digests[n] for n in scenario.expect_deleted
    }
    assert scenario.present(registry.url) == set(scenario.digests)  # apply defaults to false
