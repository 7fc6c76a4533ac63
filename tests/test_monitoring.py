"""deployments/monitoring/: the alert rules pass `promtool check rules`, each alert's unit
test (series that must and must not fire) passes `promtool test rules`, and every metric a
rule names is one a run (`flows.metrics`) or the pull receiver (`tasks.pulls.service`)
exports: a rename cannot orphan an alert."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from flows.history import FLOW_NAME
from flows.metrics import RunFigures, run_metrics
from tasks.pulls.service import Receiver, ReceiverMetrics
from tasks.pulls.store import PullStore

MONITORING = Path(__file__).resolve().parent.parent / "deployments" / "monitoring"
RULES = MONITORING / "regsweep-alerts.yaml"
DASHBOARD = MONITORING / "regsweep-dashboard.json"


def promtool(*args: str) -> str:
    done = subprocess.run(["promtool", *args], cwd=MONITORING, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    assert "SUCCESS: 7 rules found" in promtool("check", "rules", RULES.name)
    assert "SUCCESS" in promtool("test", "rules", "regsweep-alerts.test.yaml")


def test_every_alert_has_a_unit_test() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load((MONITORING / "regsweep-alerts.test.yaml").read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t["alert_rule_test"]}
    assert alerts == tested


def exported(tmp_path: Path) -> set[str]:
    """Every metric name a run and the pull receiver export (counters with `_total`)."""
    figures = RunFigures(
        success=True,
        apply=True,
        finished=1.0,
        stage_seconds={"total": 1.0},
        summary=[{"repository": "r", "kept": 1, "deleted": 1, "bytes_reclaimable": 1}],
        reasons=[{"action": "keep", "reason": "git-policy", "digests": 1}],
        outcomes={"failed": 1},
    )
    receiver = Receiver(PullStore(f"sqlite:///{tmp_path / 'pulls.db'}"), "token", [])
    families = [*run_metrics(figures, {}).collect(), *ReceiverMetrics(receiver).collect()]
    return {m.name + ("_total" if m.type == "counter" else "") for m in families}


def test_every_metric_the_rules_name_is_exported(tmp_path: Path) -> None:
    named = set(re.findall(r"\bregsweep_[a-z_]+", RULES.read_text()))
    assert named and named <= exported(tmp_path), named - exported(tmp_path)


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_the_dashboard_reads_only_exported_metrics(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(p["targets"] for p in dashboard["panels"])
    named = {n for q in dashboard_queries() for n in re.findall(r"\bregsweep_[a-z_]+", q)}
    assert named and named <= exported(tmp_path), named - exported(tmp_path)


def test_the_prefect_automation_is_one_prefect_accepts() -> None:
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    document = yaml.safe_load((MONITORING / "prefect-automation.yaml").read_text())
    automation = AutomationCore.model_validate(document)
    assert isinstance(automation.trigger, EventTrigger)
    assert automation.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    related = automation.trigger.match_related
    assert not isinstance(related, list)
    assert dict(related.items()) == {
        "prefect.resource.role": ["flow"],
        "prefect.resource.name": [FLOW_NAME],  # the flow's own name: a rename breaks this test
    }
