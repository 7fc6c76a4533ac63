"""Bad configuration and arguments exit 2 and name the field; nothing is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run_cli

BASE = "registry: {url: 'http://127.0.0.1:9'}\ngit: {path: .}\n"


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
