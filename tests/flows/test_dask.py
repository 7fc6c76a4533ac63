"""Scale out on Dask: the scan and the delete step as one Prefect task per repository on a
real LocalCluster (worker processes), against the real registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client, LocalCluster
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect_dask.task_runners import DaskTaskRunner

from flows.cleanup import cleanup
from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import Scenario, build_scenario, now_for_demo
from flows.pipeline import compute_plan, local_stages
from flows.scale_out import TaskRunnerChoiceError, task_runner_from_option
from tasks.core.config import load_config
from tasks.delete.closure import build_closures, deletion_targets
from tasks.delete.errors import DeletionRefused
from tasks.delete.loader import DeleteRequest, RepositoryScan
from tasks.delete.task import delete_repository_task
from tests.cli import run_cli


@pytest.fixture
def scenario(tmp_path: Path, registry: LocalRegistry, kube: KubeAPIFixture) -> Scenario:
    built = build_scenario(tmp_path / "scenario", registry.url, kube, now_for_demo())
    kube.write_kubeconfig(tmp_path / "scenario" / "kubeconfig")
    return built


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


def dask_task_keys(cluster: LocalCluster) -> list[str]:
    """Keys of every task the cluster's scheduler has run (prefect-dask names them after
    the Prefect task)."""
    with Client(cluster.scheduler_address) as client:
        return client.run_on_scheduler(  # type: ignore[no-any-return]
            lambda dask_scheduler: [str(key) for key in dask_scheduler.task_prefixes]
        )


def test_apply_on_dask_fans_out_per_repository_and_deletes_exactly_the_plan(
    prefect_harness: None,
    registry: LocalRegistry,
    scenario: Scenario,
    cluster: LocalCluster,
    tmp_path: Path,
) -> None:
    flow = cleanup.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    result = flow(
        config_path=str(scenario.config_path),
        apply=True,
        now=scenario.now.isoformat(),
        ledger=str(tmp_path / "ledger" / "ledger.jsonl"),
    )
    assert result.outcomes == {"deleted": len(scenario.expect_deleted)}
    assert scenario.present(registry.url) == scenario.expect_kept
    ledger = (tmp_path / "ledger" / "ledger.jsonl").read_text().splitlines()
    assert len(ledger) == 2 * len(scenario.expect_deleted)  # pending + done per digest
    assert list((tmp_path / "ledger").glob(".regsweep-run-*")) == []  # marker removed

    repositories = {Scenario.repository_of(n) for n in scenario.digests}
    plan = pd.read_parquet(result.plan_path)
    deleting = {r for r in plan.loc[plan["action"] == "delete", "repository"]}
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result.flow_run_id]))
        )
    names = sorted(run.name for run in runs)
    assert sorted(n for n in names if n.startswith("scan ")) == sorted(
        f"scan {[r]}" for r in repositories
    )
    assert sorted(n for n in names if n.startswith("delete in ")) == sorted(
        f"delete in {r}" for r in deleting
    )
    assert all(run.state_name == "Completed" for run in runs)
    # The per-repository tasks really ran on the cluster's workers.
    keys = dask_task_keys(cluster)
    assert any(k.startswith("scan_repositories_task") for k in keys), keys
    assert any(k.startswith("delete_repository_task") for k in keys), keys


def test_untags_fan_out_with_the_deletions(
    prefect_harness: None,
    registry: LocalRegistry,
    scenario: Scenario,
    cluster: LocalCluster,
    tmp_path: Path,
) -> None:
    """A repository whose only work is an untag gets its own delete task on the cluster."""
    import asyncio
    import datetime as dt

    import yaml

    from flows.demo.images import push_image
    from tasks.registry.client import RegistryClient
    from tests.skopeo import skopeo_tags

    async def push() -> None:
        async with RegistryClient(registry.url) as client:  # on a commit no policy reaches
            labels = {"org.opencontainers.image.revision": "e" * 40}
            old = scenario.now - dt.timedelta(days=9)
            await push_image(
                client, "demo/tools", ["v9.0.0", "scratch"], created=old, labels=labels
            )

    asyncio.run(push())
    document = yaml.safe_load(scenario.config_path.read_text())
    document["registry"]["repositories"] = ["demo/tools"]
    document["cleanup"] |= {"keepTags": ["/v9\\..*/"], "untag": "overwrite"}
    config = tmp_path / "tools.yaml"
    config.write_text(yaml.safe_dump(document))
    flow = cleanup.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    result = flow(
        config_path=str(config),
        apply=True,
        now=scenario.now.isoformat(),
        ledger=str(tmp_path / "ledger" / "ledger.jsonl"),
        force=True,
    )
    assert result.outcomes == {"untagged": 1}
    assert skopeo_tags(registry.url, "demo/tools") == ["v9.0.0"]
    assert any(k.startswith("delete_repository_task") for k in dask_task_keys(cluster))


def test_dry_run_from_the_cli_with_a_scheduler_address(
    prefect_env: dict[str, str], registry: LocalRegistry, scenario: Scenario, cluster: LocalCluster
) -> None:
    everything = set(scenario.digests)
    done = run_cli(
        "run",
        "--config",
        str(scenario.config_path),
        "--now",
        scenario.now.isoformat(),
        "--task-runner",
        f"dask={cluster.scheduler_address}",
        env=prefect_env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "would-delete" in done.stdout
    assert scenario.present(registry.url) == everything
    assert any(k.startswith("scan_repositories_task") for k in dask_task_keys(cluster))


@pytest.mark.parametrize("option", ["dask=", "spark", "threads=4", ""])
def test_a_task_runner_that_does_not_exist_is_refused(option: str, tmp_path: Path) -> None:
    with pytest.raises(TaskRunnerChoiceError, match="threads, dask or dask=ADDRESS"):
        task_runner_from_option(option)
    config = tmp_path / "regsweep.yaml"
    config.write_text("registry:\n  url: http://127.0.0.1:9\n  repositories: [a]\n")
    done = run_cli("run", "--config", str(config), "--task-runner", option or "x")
    assert done.returncode == 2
    assert "--task-runner must be threads, dask or dask=ADDRESS" in " ".join(done.stderr.split())


def test_a_worker_that_cannot_see_the_ledger_directory_refuses_to_delete(
    registry: LocalRegistry, scenario: Scenario, tmp_path: Path
) -> None:
    """A Dask worker on another machine would write the ledger where nobody reads it: the
    per-repository delete task finds no run marker beside the ledger and deletes nothing."""
    config = load_config(scenario.config_path)
    plan = compute_plan(config, scenario.now, local_stages()).plan
    closures = [
        c for c in build_closures(deletion_targets(plan.table), {}) if c.repository == "demo/app"
    ]
    assert closures
    request = DeleteRequest(True, str(tmp_path / "elsewhere" / "ledger.jsonl"), flow_run_id="r1")
    with pytest.raises(DeletionRefused, match="not on a filesystem this worker shares"):
        delete_repository_task.fn(config, "demo/app", closures, RepositoryScan(), request)
    assert scenario.present(registry.url) == set(scenario.digests)
    assert not (tmp_path / "elsewhere" / "ledger.jsonl").exists()
