"""A run's metrics (`flows.metrics`), judged by Prometheus' own tools: `promtool check
metrics` reads the textfile, a real Pushgateway takes the push, a real Prometheus scrapes it
and answers PromQL with what the run did; a failed run leaves the last success in place."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from flows.cleanup import cleanup
from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry, free_port
from flows.demo.scenario import build_scenario, now_for_demo
from flows.metrics import RunFigures, publish
from tasks.core.config import Config, parse_config
from tasks.core.errors import ConfigError
from tasks.registry.retry import RequestCounts
from tests.flows.failing import apply_failing_at_the_ledger
from tests.servers.prometheus import Prometheus, Pushgateway
from tests.test_monitoring import dashboard_queries

NO_GIT = {"kubernetes": {"enabled": False}, "cleanup": {"disableGitHistoryBasedPolicy": True}}
BOUNDED_LABELS = {
    "registry",
    "repository",
    "action",
    "reason",
    "outcome",
    "stage",
    "state",
    "api",
    "method",
    "status",
}
SUMMARY = [
    {"repository": "team/app", "kept": 4, "deleted": 3, "untagged": 1, "bytes_reclaimable": 2048},
    {"repository": "team/web", "kept": 2, "deleted": 0, "untagged": 0, "bytes_reclaimable": 0},
]


@pytest.fixture(scope="module")
def monitoring(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Pushgateway, Prometheus]]:
    root = tmp_path_factory.mktemp("monitoring")
    gateway = Pushgateway(root / "pushgateway")
    with gateway, Prometheus(root / "prometheus", {"pushgateway": gateway.url[7:]}) as prometheus:
        assert "regsweep_" not in gateway.metrics()  # nothing from an earlier run lives on
        yield gateway, prometheus


def settings(**metrics: str) -> Config:
    return parse_config(
        {"registry": {"url": "http://127.0.0.1:5000"}, **NO_GIT, "metrics": metrics}
    )


def figures(success: bool, finished: float) -> RunFigures:
    return RunFigures(
        success=success,
        apply=True,
        finished=finished,
        stage_seconds={"registry": 1.5, "plan": 0.25, "total": 2.0},
        summary=SUMMARY,
        reasons=[{"action": "keep", "reason": "git-policy", "digests": 6}],
        outcomes={"deleted": 3} if success else {"deleted": 1, "failed": 2},
        dangling={"found": 1, "repaired": 1},
        requests=RequestCounts(
            Counter({("registry", "GET", "200"): 40, ("registry", "GET", "503"): 2}),
            Counter({("registry", "GET"): 2}),
        ),
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    found = [
        v
        for (n, ls), v in samples(text).items()
        if n == name and labels.items() <= dict(ls).items()
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_the_textfile_passes_promtool_and_a_failed_run_keeps_the_last_success(
    tmp_path: Path,
) -> None:
    path = tmp_path / "textfile" / "regsweep.prom"
    config = settings(textfile=str(path))
    assert publish(config, figures(True, 1000.0)) == []
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=path.read_bytes(), capture_output=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert publish(config, figures(False, 2000.0)) == []
    text = path.read_text()
    assert value(text, "regsweep_last_success_timestamp_seconds", registry="127.0.0.1:5000") == 1000
    assert value(text, "regsweep_last_completion_timestamp_seconds") == 2000
    assert value(text, "regsweep_last_run_success") == 0
    assert value(text, "regsweep_last_run_outcomes", outcome="failed") == 2
    assert value(text, "regsweep_plan_images", repository="team/app", action="delete") == 3
    assert value(text, "regsweep_plan_reclaimable_bytes", repository="team/app") == 2048
    assert value(text, "regsweep_last_run_duration_seconds", stage="registry") == 1.5
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=path.read_bytes(), capture_output=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert value(text, "regsweep_last_run_http_requests", api="registry", status="503") == 2
    assert value(text, "regsweep_last_run_http_retries", method="GET") == 2
    assert value(text, "regsweep_last_run_dangling_tags", state="found") == 1
    for (name, labels), _ in samples(text).items():  # bounded label values only
        assert {k for k, _ in labels} <= BOUNDED_LABELS, name


def test_a_push_or_write_that_fails_is_a_warning_not_a_failed_run(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    warnings = publish(settings(pushgateway=nowhere), figures(True, 1000.0))
    assert len(warnings) == 1 and warnings[0].startswith(f"metrics not pushed to {nowhere}")
    mangled = tmp_path / "regsweep.prom"
    mangled.write_text("regsweep_last_success_timestamp_seconds{registry= oops\n")
    warnings = publish(settings(textfile=str(mangled)), figures(False, 1000.0))
    assert len(warnings) == 1 and warnings[0].startswith(f"metrics not written to {mangled}")
    blocked = tmp_path / "a-file" / "regsweep.prom"
    (tmp_path / "a-file").write_text("")
    warnings = publish(settings(textfile=str(blocked)), figures(True, 1000.0))
    assert len(warnings) == 1 and warnings[0].startswith(f"metrics not written to {blocked}")


def test_bad_metrics_settings_name_their_field() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.textfile: 'x\.txt' must end in \.prom"):
        settings(textfile="x.txt")
    with pytest.raises(ConfigError, match=r"metrics\.pushgateway"):
        settings(pushgateway="ftp://gateway")


def test_a_real_apply_pushes_and_prometheus_reads_what_it_did(
    prefect_harness: None,
    registry: LocalRegistry,
    kube: KubeAPIFixture,
    tmp_path: Path,
    monitoring: tuple[Pushgateway, Prometheus],
) -> None:
    gateway, prometheus = monitoring
    scenario = build_scenario(tmp_path / "scenario", registry.url, kube, now_for_demo())
    kube.write_kubeconfig(tmp_path / "scenario" / "kubeconfig")
    document = yaml.safe_load(scenario.config_path.read_text())
    textfile = tmp_path / "node-exporter" / "regsweep.prom"
    document["metrics"] = {"pushgateway": gateway.url, "textfile": str(textfile)}
    scenario.config_path.write_text(yaml.safe_dump(document))
    host = registry.url.split("://", 1)[1]

    before = time.time()
    applied = cleanup(
        config_path=str(scenario.config_path), apply=True, now=scenario.now.isoformat()
    )
    after = time.time()
    deleted = len(scenario.expect_deleted)
    assert applied.outcomes == {"deleted": deleted}
    found = prometheus.wait_for(
        f'regsweep_last_run_outcomes{{outcome="deleted",registry="{host}"}}'
    )
    assert [(r["metric"]["job"], float(r["value"][1])) for r in found] == [("regsweep", deleted)]
    success = prometheus.query(f'regsweep_last_success_timestamp_seconds{{registry="{host}"}}')
    last_success = float(success[0]["value"][1])
    assert before <= last_success <= after
    kept = sum(row["kept"] for row in applied.summary)
    answer = prometheus.query(f'sum(regsweep_plan_images{{action="keep",registry="{host}"}})')
    assert float(answer[0]["value"][1]) == kept
    # Distribution answers a manifest DELETE with 202: one per deleted digest
    deletes = prometheus.query(
        f'regsweep_last_run_http_requests{{method="DELETE",registry="{host}"}}'
    )
    assert [(r["metric"]["status"], float(r["value"][1])) for r in deletes] == [("202", deleted)]
    gets = prometheus.query(f'sum(regsweep_last_run_http_requests{{registry="{host}"}})')
    assert float(gets[0]["value"][1]) > deleted
    dangling = prometheus.query(f'regsweep_last_run_dangling_tags{{registry="{host}"}}')
    assert {r["metric"]["state"]: float(r["value"][1]) for r in dangling} == {
        "found": 0,
        "repaired": 0,
    }
    stages = prometheus.query(f'regsweep_last_run_duration_seconds{{registry="{host}"}}')
    assert {r["metric"]["stage"] for r in stages} >= {
        "registry",
        "git",
        "cluster",
        "plan",
        "delete",
        "verify",
        "total",
    }

    # A run that fails: the last success stays, the completion and the failure show.
    apply_failing_at_the_ledger(scenario, tmp_path)
    pushed = gateway.metrics()
    assert value(pushed, "regsweep_last_success_timestamp_seconds", registry=host) == last_success
    assert value(pushed, "regsweep_last_run_success", registry=host) == 0
    failed = prometheus.wait_for(f'regsweep_last_run_success{{registry="{host}"}} == 0')
    assert failed, "Prometheus did not see the failed run"
    success = prometheus.query(f'regsweep_last_success_timestamp_seconds{{registry="{host}"}}')
    assert float(success[0]["value"][1]) == last_success
    assert (
        value(textfile.read_text(), "regsweep_last_success_timestamp_seconds", registry=host)
        == last_success
    )


def test_every_dashboard_query_runs_on_prometheus(
    monitoring: tuple[Pushgateway, Prometheus],
) -> None:
    gateway, prometheus = monitoring
    config = parse_config(
        {
            "registry": {"url": "http://dashboard.test:5000"},
            **NO_GIT,
            "metrics": {"pushgateway": gateway.url},
        }
    )
    assert publish(config, figures(True, time.time())) == []
    assert prometheus.wait_for('regsweep_last_run_success{registry="dashboard.test:5000"}')
    for query in dashboard_queries():
        answer = prometheus.query(query)  # Prometheus parses it: a bad query fails here
        if "regsweep_pulls_" not in query:  # the receiver is not scraped here
            assert answer, f"no data for {query}"
