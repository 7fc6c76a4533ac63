"""Bad configuration and arguments exit 2 and name the field; nothing is touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli import run_cli

BASE = "registry: {url: 'http://127.0.0.1:9'}\ngit: {path: .}\n"


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ("regsitry: {url: 'http://a.test'}\n", "regsitry: unknown key; did you mean registry?"),
        (
            BASE + "cleanup: {keepTgas: []}\n",
            "cleanup.keepTgas: unknown key; did you mean keepTags?",
        ),
        (
            BASE + "cleanup: {keepPolicies: [{references: {branch: main},"
            " imagesPerReference: {lats: 2}}]}\n",
            "cleanup.keepPolicies[0].imagesPerReference.lats: unknown key; did you mean last?",
        ),
        (BASE + "colour: blue\n", "colour: unknown key"),
        (
            BASE + "cleanup: {keepList: ['team/app:v1']}\n",
            "cleanup.keepList: a path to a file of image references (one a line",
        ),
    ],
    ids=[
        "top-level-typo-before-missing-registry",
        "nested",
        "in-a-list",
        "nothing-close",
        "keep-list-as-a-list",
    ],
)
def test_a_misspelt_key_is_named_with_the_key_it_was_close_to(
    tmp_path: Path, document: str, said: str
) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text(document)
    done = run_cli("check", "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert said in " ".join(done.stderr.split())
    if "did you mean" not in said:
        assert "did you mean" not in done.stderr


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (
            "cleanup: {keepPolicies: [{references: {branch: main},"
            " imagesPerReference: {last: -3}}]}",
            "cleanup.keepPolicies[0].imagesPerReference.last",
        ),
        (
            "cleanup: {keepPolicies: [{references: {branch: main, limit: {in: 7days}}}]}",
            "cleanup.keepPolicies[0].references.limit.in",
        ),
        ("cleanup: {keepTgas: []}", "cleanup.keepTgas"),
        ("cleanup: {keepTags: ['/[/']}", "cleanup.keepTags[0]"),
        ("safety: {maxDeleteFraction: 2}", "safety.maxDeleteFraction"),
        ("link: {tagPattern: 'main-.*'}", "link.tagPattern"),
    ],
    ids=["negative-last", "bad-duration", "unknown-key", "bad-regex", "fraction", "no-group"],
)
def test_bad_config_exits_2_naming_the_field(tmp_path: Path, extra: str, field: str) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text(BASE + extra + "\n")
    for command in (["plan"], ["run", "--apply"]):
        done = run_cli(*command, "--config", str(config))
        assert done.returncode == 2, done.stderr
        assert field in done.stderr.replace("\n", "")


def test_bad_now_and_out_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text(BASE)
    for args, field in ((["--now", "yesterday"], "--now"), (["--out", "plan.xlsx"], "--out")):
        done = run_cli("plan", "--config", str(config), *args)
        assert done.returncode == 2
        assert field in done.stderr


def test_unreachable_registry_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        "registry: {url: 'http://127.0.0.1:9', repositories: ['a/*']}\n"
        "kubernetes: {enabled: false}\n"
        "cleanup: {disableGitHistoryBasedPolicy: true}\n"
    )
    done = run_cli("plan", "--config", str(config), timeout=300)
    assert done.returncode == 3, done.stderr


def test_the_configuration_is_found_without_config(tmp_path: Path) -> None:
    """./regsweep.yaml, else $REGSWEEP_CONFIG: `-c` is no longer needed on every command."""
    here = tmp_path / "project"
    here.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "REGSWEEP_CONFIG"}
    pythonpath = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pythonpath
    done = run_cli("plan", env=env, cwd=here)
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "--config (default ./regsweep.yaml): regsweep.yaml does not exist" in said
    (here / "regsweep.yaml").write_text("registry: {url: 'http://127.0.0.1:9'}\ncolour: x\n")
    done = run_cli("plan", env=env, cwd=here)
    assert done.returncode == 2 and "colour: unknown key" in done.stderr  # it was read
    elsewhere = tmp_path / "other.yaml"
    elsewhere.write_text("registry: {url: 'http://127.0.0.1:9'}\nflavour: x\n")
    done = run_cli("plan", env={**env, "REGSWEEP_CONFIG": str(elsewhere)}, cwd=here)
    assert done.returncode == 2 and "flavour: unknown key" in done.stderr  # the variable wins
