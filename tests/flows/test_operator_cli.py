"""The CLI as a user meets it (issue #16): the real binary with stdout piped, real registry,
Kubernetes API fixture and Git. No wrapped digests, no traceback on an expected failure, JSON
that parses with the documented keys, hints that say what to change, `check` on every part."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from flows.demo.scenario import Scenario, build_scenario
from tests.cli import run_cli

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DIGEST = re.compile(r"sha256:[0-9a-f]+")
PLAN_KEYS = {"registry", "now", "summary", "notes", "refusals", "plan"}
ROW_KEYS = {
    "repository",
    "digest",
    "tag",
    "media_type",
    "created",
    "commits",
    "action",
    "reason",
    "reasons",
}
EXPLAIN_KEYS = {
    "repository",
    "digest",
    "tags",
    "commits",
    "action",
    "reason",
    "reasons",
    "evidence",
}


@dataclass
class Parts:
    registry: LocalRegistry
    kube: KubeAPIFixture
    scenario: Scenario


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parts]:
    root = tmp_path_factory.mktemp("operator")
    registry = LocalRegistry(root / "registry").start()
    kube = KubeAPIFixture()
    try:
        scenario = build_scenario(root / "scenario", registry.url, kube, NOW)
        kube.start().write_kubeconfig(root / "scenario" / "kubeconfig")
        yield Parts(registry, kube, scenario)
    finally:
        kube.stop()
        registry.stop()


def cli(*args: str, **env: str) -> tuple[int, str, str]:
    """The real binary, stdout a pipe, COLUMNS unset (as in cron or a CI log)."""
    environment = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | env
    done = run_cli(*args, env=environment, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_version_and_help_answer_at_once() -> None:
    code, out, _ = cli("--version")
    assert code == 0 and re.fullmatch(r"regsweep \d+\.\d+\.\d+\n", out)
    code, out, _ = cli("--help")
    assert code == 0 and "check" in out and "--quiet" in out
    # flags take no value: no `<bool>` beside them; every option says what it does
    code, out, _ = cli("run", "--help", COLUMNS="200")
    assert code == 0 and "<bool>" not in out and "<path>" in out
    assert re.search(r"--force\s+override the guards: safety.maxDeleteFraction, the cluster", out)
    assert "the Git guard" in out
    code, out, _ = cli("restore", "--help", COLUMNS="200")
    for option in ("--repository", "--digest", "--since"):
        line = next(line for line in out.splitlines() if option in line)
        assert re.search(rf"{option}\s+<str>\s+\S", line), line  # a help text follows


def test_plan_json_has_the_documented_keys_and_every_digest_whole(parts: Parts) -> None:
    config = str(parts.scenario.config_path)
    code, out, err = cli("plan", "-c", config, "--now", NOW.isoformat(), "-o", "json")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == PLAN_KEYS
    assert document["plan"] and all(set(row) == ROW_KEYS for row in document["plan"])
    digests = {row["digest"] for row in document["plan"]}
    assert all(len(d) == 71 for d in digests)
    # explain a kept and a deleted image, table and JSON: each digest on one line, whole
    shown = {row["action"]: row for row in reversed(document["plan"])}
    assert {"keep", "delete"} <= set(shown)
    for row in (shown["keep"], shown["delete"]):
        image = f"{row['repository']}@{row['digest']}"
        code, out, err = cli("explain", "-c", config, "--now", NOW.isoformat(), image)
        assert code == 0, err
        assert f"{row['repository']}@{row['digest']}" in out.splitlines()
        assert all(len(found) == 71 for found in DIGEST.findall(out))
        code, out, _ = cli("explain", "-c", config, "--now", NOW.isoformat(), image, "-o", "json")
        explained = json.loads(out)
        assert explained["image"] == image
        assert [set(d) for d in explained["digests"]] == [EXPLAIN_KEYS]
        assert explained["digests"][0]["action"] == row["action"]


def test_bad_output_format_exits_2_naming_the_option(parts: Parts) -> None:
    code, _, err = cli("plan", "-c", str(parts.scenario.config_path), "-o", "yaml")
    assert code == 2 and "--output" in err and "Traceback" not in err


def test_run_against_a_closed_port_is_one_line_exit_3_before_prefect_starts(
    tmp_path: Path,
) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        "registry: {url: 'http://127.0.0.1:9', repositories: [app]}\n"
        "kubernetes: {enabled: false}\ncleanup: {disableGitHistoryBasedPolicy: true}\n"
    )
    code, _, err = cli("run", "-c", str(config))
    assert code == 3, err
    assert "Traceback" not in err
    assert "nothing answers there" in err
    assert "temporary server" not in err  # failed before Prefect's server was started


def test_https_against_a_plain_http_registry_hints_http(parts: Parts, tmp_path: Path) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        f"registry: {{url: '127.0.0.1:{parts.registry.port}', repositories: [demo/app]}}\n"
        "kubernetes: {enabled: false}\ncleanup: {disableGitHistoryBasedPolicy: true}\n"
    )
    code, _, err = cli("plan", "-c", str(config))
    assert code == 3
    assert f"set registry.url to http://127.0.0.1:{parts.registry.port}" in err.replace("\n", "")
    assert "Traceback" not in err


def test_a_missing_kubeconfig_says_how_to_disable_the_stage(parts: Parts, tmp_path: Path) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        f"registry: {{url: '{parts.registry.url}', repositories: [demo/app]}}\n"
        f"kubernetes: {{kubeconfig: '{tmp_path / 'nothing-here'}'}}\n"
        "cleanup: {disableGitHistoryBasedPolicy: true}\n"
    )
    code, _, err = cli("plan", "-c", str(config))
    assert code == 3
    assert "set kubernetes.enabled: false" in err.replace("\n", "")


def test_check_passes_every_part_of_the_demo(parts: Parts) -> None:
    code, out, err = cli("check", "-c", str(parts.scenario.config_path))
    assert code == 0, out + err
    lines = out.splitlines()
    parts_checked = [line.split(":", 1)[0].split(None, 1)[1] for line in lines]
    assert parts_checked == [
        "kind",
        "registry",
        "listing",
        "deletes",
        "untag",
        "tags",
        "werf",
        "git",
        "kubernetes fixture",
        "guards",
    ]
    assert all(line.startswith("ok") for line in lines)
    assert "ok   kind: distribution (the default): reads and lists through the OCI API" in out
    # Distribution 2.8 under the default cleanup.untag: api: said, and not a failure
    assert "ok   untag: api: demo/app does not delete tags (400 or 405" in out
    assert "ok   tags: every tag names a manifest; no ledger record left open" in out
    assert "ok   guards: a run would refuse nothing (" in out


def wrong_git_repository(root: Path) -> Path:
    """A Git checkout the demo's images were not built from (a few commits of its own)."""
    path = root / "other-project"
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
    for i in range(3):
        (path / "README").write_text(f"other project, change {i}\n")
        subprocess.run(["git", "add", "README"], cwd=path, check=True)
        subprocess.run(
            ["git", "-c", "user.name=o", "-c", "user.email=o@x", "commit", "-qm", f"c{i}"],
            cwd=path,
            check=True,
        )
    # as a clone of it has it: the branch under refs/remotes/origin/
    subprocess.run(["git", "update-ref", "refs/remotes/origin/main", "HEAD"], cwd=path, check=True)
    return path


def test_plan_and_check_refuse_what_the_run_refuses(
    prefect_harness: None, parts: Parts, tmp_path: Path
) -> None:
    """git.path at the wrong repository (#31, tried as a new user): `plan` used to show the
    deletions with no warning and `check` said ok; only `run` refused. Now the three agree,
    by the same code (`flows.guards`), and nothing is deleted by any of them."""
    text = parts.scenario.config_path.read_text()
    config = tmp_path / "wrong-git.yaml"
    right = str(parts.scenario.config_path.parent / "git" / "checkout")
    assert right in text
    config.write_text(text.replace(right, str(wrong_git_repository(tmp_path))))
    git_guard = "name only commits the Git repository does not know"

    code, out, err = cli("plan", "-c", str(config), "--now", NOW.isoformat())
    assert code == 4, out + err
    assert "regsweep: a run would refuse deletions: " in err and git_guard in err
    assert "warning:" in err and "image link(s) name commits Git does not know" in err
    code, out, _ = cli("plan", "-c", str(config), "--now", NOW.isoformat(), "-o", "json")
    document = json.loads(out)
    assert code == 4 and len(document["refusals"]) == 1 and git_guard in document["refusals"][0]
    assert any("commits Git does not know" in note for note in document["notes"])

    # the run (its flow, in this process: the CLI's printing of it is tested elsewhere)
    from flows.cleanup import cleanup
    from flows.result import RunFailed

    with pytest.raises(RunFailed) as failed:
        cleanup(config_path=str(config), now=NOW.isoformat())
    assert failed.value.exit_code == 4
    assert [git_guard in why for why in failed.value.result.refusals] == [True]
    code, out, _ = cli("check", "-c", str(config), "--now", NOW.isoformat())
    assert code != 0 and "FAIL guards: a run would refuse deletions: " in out, out
    assert git_guard in out
    assert parts.scenario.present(parts.registry.url) >= parts.scenario.expect_deleted


def test_plan_exits_4_where_max_delete_fraction_would_refuse(parts: Parts, tmp_path: Path) -> None:
    text = parts.scenario.config_path.read_text()
    config = tmp_path / "tight.yaml"
    config.write_text(text + "safety:\n  maxDeleteFraction: 0.1\n")
    code, out, err = cli("plan", "-c", str(config), "--now", NOW.isoformat())
    assert code == 4, out + err
    assert "regsweep: a run would refuse deletions: the plan deletes 33% of demo/app, over " in err
    assert "safety.maxDeleteFraction=10%" in err
    code, _, err = cli("plan", "-c", str(config), "--now", NOW.isoformat(), "--force")
    assert code == 0 and "would refuse" not in err  # as `run --force` would go ahead


def test_check_fails_on_disabled_deletes_and_a_kind_it_may_not_list(
    parts: Parts, tmp_path: Path
) -> None:
    no_deletes = LocalRegistry(tmp_path / "registry", deletes=False).start()
    parts.kube.denied_resources.add("cronjobs")
    try:
        text = parts.scenario.config_path.read_text().replace(parts.registry.url, no_deletes.url)
        config = tmp_path / "regsweep.yaml"
        config.write_text(text)
        # an empty registry matches no repository: listing fails, and says so
        code, out, _ = cli("check", "-c", str(config))
        assert code == 3
        assert "FAIL listing" in out and "matches no repository" in out
        assert "FAIL kubernetes fixture: may not list: batch/cronjobs" in out
    finally:
        parts.kube.denied_resources.clear()
        no_deletes.stop()


def test_check_tells_a_registry_with_deletes_disabled(tmp_path: Path) -> None:
    import asyncio

    from flows.demo.images import push_image
    from tasks.registry.client import RegistryClient

    registry = LocalRegistry(tmp_path / "registry", deletes=False).start()
    try:

        async def push() -> None:
            async with RegistryClient(registry.url) as client:
                await push_image(client, "app", ["v1"], created=NOW)

        asyncio.run(push())
        config = tmp_path / "regsweep.yaml"
        config.write_text(
            f"registry: {{url: '{registry.url}', repositories: [app]}}\n"
            "kubernetes: {enabled: false}\ncleanup: {disableGitHistoryBasedPolicy: true}\n"
        )
        code, out, _ = cli("check", "-c", str(config))
        assert code == 3
        assert "FAIL deletes:" in out and "deletion disabled (405" in out
        assert "ok   listing: [app] matches 1 repositories" in out
    finally:
        registry.stop()


def test_quiet_prints_nothing_but_what_was_asked_for(parts: Parts) -> None:
    config = str(parts.scenario.config_path)
    code, out, err = cli("--quiet", "plan", "-c", config, "--now", NOW.isoformat())
    assert code == 0 and out == "", err
    code, out, _ = cli("--quiet", "plan", "-c", config, "--now", NOW.isoformat(), "-o", "json")
    assert code == 0 and set(json.loads(out)) == PLAN_KEYS


def test_plan_draws_scan_progress_on_a_terminal_and_not_into_a_pipe(parts: Parts) -> None:
    """The bars go to a terminal (stderr a pty here); piped, nothing of them is written."""
    config = str(parts.scenario.config_path)
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    child = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "plan", "-c", config, "--now", NOW.isoformat()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=environment | {"TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        drawn += chunk
    out, _ = child.communicate(timeout=300)
    os.close(controller)
    assert child.returncode == 0, drawn.decode(errors="replace")
    assert b"scan" in drawn and b"\x1b[" in drawn  # a bar, drawn with terminal controls
    assert b"delete" in out  # the summary still goes to stdout
    code, _, err = cli("plan", "-c", config, "--now", NOW.isoformat())
    assert code == 0 and "scan" not in err and "\x1b[" not in err


def test_debug_shows_the_traceback_of_an_expected_failure(parts: Parts, tmp_path: Path) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        f"registry: {{url: '{parts.registry.url}', repositories: [demo/app]}}\n"
        "kubernetes: {enabled: false}\n"
        f"cleanup: {{disableGitHistoryBasedPolicy: true, keepList: '{tmp_path / 'none'}'}}\n"
    )
    code, _, err = cli("plan", "-c", str(config), REGSWEEP_DEBUG="1")
    assert code == 2 and "Traceback" in err and "cleanup.keepList" in err
    code, _, err = cli("plan", "-c", str(config))
    assert code == 2 and "Traceback" not in err and "cleanup.keepList" in err


def test_run_from_a_bare_shell_starts_prefect_quietly(parts: Parts, tmp_path: Path) -> None:
    """A user's shell has none of the Makefile's Prefect settings: the CLI sets telemetry off
    and a long server start-up itself, and says where the run is recorded."""
    bare = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "COLUMNS",
            "PREFECT_API_URL",
            "PREFECT_SERVER_ANALYTICS_ENABLED",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
        )
    }
    bare |= {"PREFECT_HOME": str(tmp_path / "prefect"), "REGSWEEP_HOME": str(tmp_path / "home")}
    config = str(parts.scenario.config_path)
    done = run_cli("run", "-c", config, "--now", NOW.isoformat(), env=bare, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "telemetry" not in done.stderr and "Traceback" not in done.stderr
    assert "recording the run in a temporary Prefect server" in done.stderr
    assert "set PREFECT_API_URL to use a long-lived one" in done.stderr
    probe = run_cli_python(
        "import flows.cli, os; print(os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'], "
        "os.environ['PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS'])",
        env=bare,
    )
    assert probe.split() == ["false", "180"]


def run_cli_python(code: str, env: dict[str, str]) -> str:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
