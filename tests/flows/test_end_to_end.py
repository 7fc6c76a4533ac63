"""The whole job on real parts: registry process, Git repository, Kubernetes API fixture,
Prefect. After each run the registry itself is checked image by image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import FlowRunSort

from flows.cleanup import cleanup
from flows.demo.kube_api import Fault, KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import Scenario, build_scenario, now_for_demo
from tests.cli import run_cli
from tests.flows.failing import apply_failing_at_the_ledger


@pytest.fixture
def scenario(tmp_path: Path, registry: LocalRegistry, kube: KubeAPIFixture) -> Scenario:
    built = build_scenario(tmp_path / "scenario", registry.url, kube, now_for_demo())
    kube.write_kubeconfig(tmp_path / "scenario" / "kubeconfig")
    return built


def test_dry_run_deletes_nothing_then_apply_deletes_exactly_the_plan(
    prefect_harness: None, registry: LocalRegistry, scenario: Scenario
) -> None:
    everything = set(scenario.digests)
    dry = cleanup(config_path=str(scenario.config_path), now=scenario.now.isoformat())
    assert dry.outcomes == {"would-delete": len(scenario.expect_deleted)}
    assert scenario.present(registry.url) == everything
    # what a person sees: every deletion listed, not only counted
    doomed = {scenario.digests[n] for n in scenario.expect_deleted}
    assert {d["digest"] for d in dry.deletions} == doomed
    assert {d["outcome"] for d in dry.deletions} == {"would-delete"}
    assert all(d["size"] > 0 and d["repository"].startswith("demo/") for d in dry.deletions)

    applied = cleanup(
        config_path=str(scenario.config_path), apply=True, now=scenario.now.isoformat()
    )
    assert applied.outcomes == {"deleted": len(scenario.expect_deleted)}
    assert scenario.present(registry.url) == scenario.expect_kept
    assert [(d["digest"], d["outcome"]) for d in applied.deletions] == sorted(
        (d["digest"], "deleted") for d in dry.deletions
    )
    plan = pd.read_parquet(applied.plan_path)
    assert set(plan.loc[plan["action"] == "delete", "digest"]) == {
        scenario.digests[n] for n in scenario.expect_deleted
    }
    ledger = Path(applied.ledger_path).read_text().splitlines()
    assert len(ledger) == 2 * len(scenario.expect_deleted)  # pending + done per digest


def test_rerun_after_failed_delete_reuses_cached_extraction(
    prefect_harness: None, registry: LocalRegistry, scenario: Scenario, tmp_path: Path
) -> None:
    apply_failing_at_the_ledger(scenario, tmp_path)
    assert scenario.present(registry.url) == set(scenario.digests)  # failed before any DELETE

    result = cleanup(
        config_path=str(scenario.config_path),
        apply=True,
        now=scenario.now.isoformat(),
        ledger=str(tmp_path / "ledger.jsonl"),
    )
    assert scenario.present(registry.url) == scenario.expect_kept

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result.flow_run_id]))
        )
    states = {run.name.rsplit("-", 1)[0]: run.state_name for run in runs}
    assert states["extract_registry"] == "Cached"
    assert states["extract_git"] == "Cached"
    assert states["extract_cluster"] == "Cached"
    assert states["delete"] == "Completed"


def test_cli_plan_writes_the_contract_table_without_prefect(
    registry: LocalRegistry, scenario: Scenario, tmp_path: Path
) -> None:
    out_csv = tmp_path / "plan.csv"
    out_parquet = tmp_path / "plan.parquet"
    env = {"PREFECT_API_URL": "http://127.0.0.1:9/api", "PATH": "/usr/bin:/bin"}
    for out in (out_csv, out_parquet):
        done = run_cli(
            "plan",
            "--config",
            str(scenario.config_path),
            "--now",
            scenario.now.isoformat(),
            "--out",
            str(out),
            env=env,
        )
        assert done.returncode == 0, done.stderr
    csv = pd.read_csv(out_csv, keep_default_na=False)
    parquet = pd.read_parquet(out_parquet)
    columns = [
        "repository",
        "digest",
        "tag",
        "media_type",
        "created",
        "commits",
        "action",
        "reason",
        "reasons",
    ]
    assert list(csv.columns) == columns
    assert list(parquet.columns) == columns
    assert set(parquet.loc[parquet["action"] == "delete", "digest"]) == {
        scenario.digests[n] for n in scenario.expect_deleted
    }
    untagged = parquet[parquet["tag"] == ""]
    assert set(untagged["digest"]) == {
        scenario.digests["main3-arm64"],
        scenario.digests["main3-amd64"],
    }
    assert scenario.present(registry.url) == set(scenario.digests)


def test_explain_says_why(registry: LocalRegistry, scenario: Scenario) -> None:
    def explain(image: str) -> str:
        done = run_cli(
            "explain",
            "--config",
            str(scenario.config_path),
            "--now",
            scenario.now.isoformat(),
            image,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    release = explain("demo/app:v1.0.0")
    assert "KEEP (helm-history)" in release  # Helm history comes first in reason order
    assert "git-policy[0]: tag v1.0.0" in release
    deleted = explain(f"demo/app@{scenario.digests['old1']}")
    assert "DELETE (no-policy)" in deleted
    assert "not among the images any keepPolicy keeps" in deleted
    # As a cluster or a CI log names it: with the registry's host (issue #13, item 6).
    prefixed = explain(f"{registry.host.replace('127.0.0.1', 'localhost')}/demo/app:v1.0.0")
    assert "KEEP (helm-history)" in prefixed


def test_cluster_failure_exits_3_and_deletes_nothing(
    prefect_harness: None, registry: LocalRegistry, scenario: Scenario, kube: KubeAPIFixture
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    kube.faults.append(Fault("/apis/apps/v1/daemonsets", 403))
    done = CliRunner().invoke(
        app,
        [
            "run",
            "--config",
            str(scenario.config_path),
            "--apply",
            "--now",
            scenario.now.isoformat(),
        ],
    )
    assert done.exit_code == 3, done.output
    assert "Delete these" not in done.output  # not a terminal: never asked
    assert "kind DaemonSet" in done.output
    assert scenario.present(registry.url) == set(scenario.digests)


def test_history_lists_the_runs_of_the_session(
    prefect_harness: None, registry: LocalRegistry, scenario: Scenario
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.history import run_history

    dry = cleanup(config_path=str(scenario.config_path), now=scenario.now.isoformat())
    applied = cleanup(
        config_path=str(scenario.config_path), apply=True, now=scenario.now.isoformat()
    )
    runs = run_history(limit=50).set_index("flow_run_id")
    expected = len(scenario.expect_deleted)
    # planned and done apart: a dry run plans the deletions and deletes nothing
    columns = ["apply", "planned", "deleted", "state"]
    assert runs.loc[dry.flow_run_id, columns].tolist() == [False, expected, 0, "Completed"]
    assert runs.loc[applied.flow_run_id, columns].tolist() == [
        True,
        expected,
        expected,
        "Completed",
    ]
    assert runs.loc[applied.flow_run_id, "kept"] == len(scenario.expect_kept)
    assert runs.loc[applied.flow_run_id, "bytes"] > 0
    printed = CliRunner().invoke(app, ["history", "--limit", "50"], env={"COLUMNS": "200"})
    assert printed.exit_code == 0, printed.output
    assert applied.flow_run_id[:8] in printed.output
    # Without PREFECT_API_URL, history reads the database in-process: with temporary servers
    # forbidden, it still lists the runs (a server started for it would fail the command)
    from prefect.settings import get_current_settings

    database = get_current_settings().server.database.connection_url
    assert database is not None
    done = _history_without_server(
        {"PREFECT_API_DATABASE_CONNECTION_URL": database.get_secret_value()}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = {run["flow_run_id"]: run for run in json.loads(done.stdout)["runs"]}
    assert listed[applied.flow_run_id]["deleted"] == expected
    assert listed[dry.flow_run_id]["planned"] == expected


def test_history_of_a_machine_that_never_ran_is_empty(tmp_path: Path) -> None:
    done = _history_without_server({"PREFECT_HOME": str(tmp_path / "prefect")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == {"runs": []}
    assert not (tmp_path / "prefect" / "prefect.db").exists()  # read nothing, created nothing


def _history_without_server(settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`regsweep history -o json` with no Prefect server and none allowed to start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(settings, PREFECT_SERVER_EPHEMERAL_ENABLED="false")
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "history", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_replan_from_saved_inputs_touches_nothing(
    prefect_harness: None, registry: LocalRegistry, scenario: Scenario
) -> None:
    from flows.snapshot import load_inputs, replan
    from tasks.core.frames import STRING_LISTS

    dry = cleanup(config_path=str(scenario.config_path), now=scenario.now.isoformat())
    run_dir = Path(dry.run_dir)
    saved = pd.read_parquet(dry.plan_path)
    registry.stop()  # nothing below may need the registry
    commits = load_inputs(run_dir)[2].commits
    assert commits is not None and commits["parents"].dtype == STRING_LISTS
    assert all(isinstance(p, list) for p in commits["parents"].tolist())
    assert sum(len(p) for p in commits["parents"].tolist()) >= len(commits) - 1
    same = replan(run_dir).table
    assert same[["repository", "digest", "tag", "action", "reason"]].equals(
        saved[["repository", "digest", "tag", "action", "reason"]]
    )
    keep_all = replan(
        run_dir,
        {"keepPolicies": [{"references": {"branch": "/.*/"}, "imagesPerReference": {"last": -1}}]},
    )
    assert (keep_all.table["action"] == "keep").sum() > (saved["action"] == "keep").sum()
    # 30 days on, the pull records (they end at the run) cannot say what was not pulled:
    # the pull rule keeps everything it covers; without it, at least as much goes
    later = scenario.now + timedelta(days=30)
    assert set(replan(run_dir, now=later).table["action"]) == {"keep"}
    without_pulls = replan(run_dir, {"keepImagesPulledWithin": None}, now=later).table
    assert (without_pulls["action"] == "delete").sum() >= (saved["action"] == "delete").sum()


def test_prefect_flow_run_retry_reuses_cached_extraction(
    prefect_env: dict[str, str], registry: LocalRegistry, scenario: Scenario, tmp_path: Path
) -> None:
    """`prefect flow-run retry <id>` on a failed run: the same flow run, extraction from
    the cache, the plan recomputed from it, the delete step (which failed) run again."""
    blocker = apply_failing_at_the_ledger(scenario, tmp_path)
    with get_client(sync_client=True) as client:
        failed = client.read_flow_runs(limit=1, sort=FlowRunSort.START_TIME_DESC)[0]
    assert failed.state_name == "Failed"
    blocker.unlink()  # the operator fixes the cause, then retries the run
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "flow-run",
            "retry",
            str(failed.id),
            "--entrypoint",
            "flows/cleanup.py:cleanup",
        ],
        capture_output=True,
        text=True,
        env=prefect_env,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert scenario.present(registry.url) == scenario.expect_kept
    with get_client(sync_client=True) as client:
        retried = client.read_flow_run(failed.id)
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[failed.id]))
        )
    assert retried.state_name == "Completed"
    states: dict[str, set[str]] = {}
    for run in runs:
        states.setdefault(run.name.rsplit("-", 1)[0], set()).add(str(run.state_name))
    for stage in ("extract_registry", "extract_git", "extract_cluster"):
        assert states[stage] == {"Completed", "Cached"}, states  # first attempt, then cache
    assert states["delete"] == {"Failed", "Completed"}
    ledger = blocker / "ledger.jsonl"  # written by the retry, once the blocker was gone
    assert len(ledger.read_text().splitlines()) == 2 * len(scenario.expect_deleted)
