"""`regsweep config schema` and `regsweep config init` (issue #34): the JSON Schema editors
validate regsweep.yaml with, generated from the configuration model and published as
docs/regsweep.schema.json (it cannot drift); every example configuration in the README, the
manual and every file `config init` writes passes both the schema and regsweep's own loading; a
misspelt key is caught by both."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from flows.cli.config import schema_text
from tasks.core.config import config_schema, parse_config
from tasks.core.errors import ConfigError
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "regsweep.schema.json"
MODELINE = "# yaml-language-server: $schema=regsweep.schema.json\n"  # what editors read


def validator() -> Draft202012Validator:
    schema = config_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def example_configurations() -> list[dict[str, object]]:
    """The regsweep.yaml examples of the README and the manual: their YAML blocks whose
    keys are regsweep's (a fragment stands on a registry and a Git clone, as it would in a
    whole file)."""
    keys = set(config_schema()["properties"])
    found = []
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = "".join(page.read_text() for page in pages)
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and set(document) <= keys:
            assert block.startswith(MODELINE), f"no schema modeline on an example:\n{block}"
            base = {"registry": {"url": "https://registry.example.com"}, "git": {"path": "."}}
            found.append({**base, **document})
    return found


def test_the_published_schema_is_the_one_the_model_gives() -> None:
    assert PUBLISHED.read_text() == schema_text(), "regenerate: regsweep config schema --out"


@pytest.mark.parametrize("index", range(len(example_configurations())))
def test_every_example_configuration_passes_the_schema_and_loads(index: int) -> None:
    document = example_configurations()[index]
    assert [e.message for e in validator().iter_errors(document)] == []
    parse_config(document)  # raises ConfigError naming the field when it does not load


def test_every_key_has_a_meaning_in_the_schema() -> None:
    """Each key's docstring reaches the schema (what editors show on hover) and the manual's
    reference: a field added without one fails here."""
    schema = config_schema()
    missing = []

    def walk(node: dict[str, object], prefix: str) -> None:
        for name, value in node.get("properties", {}).items():  # type: ignore[attr-defined]
            key = f"{prefix}.{name}" if prefix else name
            if not value.get("description"):
                missing.append(key)
            for variant in value.get("anyOf", [value]):
                target = variant.get("items", variant)
                ref = target.get("$ref")
                if ref:
                    walk(schema["$defs"][ref.rsplit("/", 1)[1]], key)

    walk(schema, "")
    assert missing == []


@pytest.mark.parametrize(
    ("document", "loads"),
    [
        ({"registry": {"url": "https://r.example"}}, False),
        ({"registry": {"url": "https://r.example"}, "git": None}, False),
        ({"registry": {"url": "https://r.example"}, "git": {"path": "."}}, True),
        (
            {
                "registry": {"url": "https://r.example"},
                "cleanup": {"disableGitHistoryBasedPolicy": True},
            },
            True,
        ),
        (
            {
                "registry": {"url": "https://r.example"},
                "cleanup": {"disableGitHistoryBasedPolicy": False},
            },
            False,
        ),
    ],
)
def test_the_schema_requires_git_exactly_where_the_model_does(
    document: dict[str, object], loads: bool
) -> None:
    assert validator().is_valid(document) is loads
    if loads:
        parse_config(document)
    else:
        with pytest.raises(ConfigError, match="git"):
            parse_config(document)


def test_a_misspelt_key_is_caught_by_the_schema_and_by_check(tmp_path: Path) -> None:
    document = {
        "registry": {"url": "http://127.0.0.1:9"},
        "git": {"path": "."},
        "cleanup": {"keepTgas": []},
    }
    errors = [(list(e.absolute_path), e.message) for e in validator().iter_errors(document)]
    assert errors == [
        (["cleanup"], "Additional properties are not allowed ('keepTgas' was unexpected)")
    ]
    config = tmp_path / "regsweep.yaml"
    config.write_text(yaml.safe_dump(document))
    done = run_cli("check", "-c", str(config))
    assert done.returncode == 2
    assert "cleanup.keepTgas: unknown key; did you mean keepTags?" in " ".join(done.stderr.split())


def test_durations_in_the_schema_are_regsweep_durations() -> None:
    base = {"registry": {"url": "http://r.test"}}
    off = {"disableGitHistoryBasedPolicy": True}
    good = {**base, "cleanup": {**off, "keepImagesPulledWithin": "168h"}}
    bad = {**base, "cleanup": {**off, "keepImagesPulledWithin": "7days"}}
    assert not list(validator().iter_errors(good))
    assert list(validator().iter_errors(bad))
    parse_config(good)


def init(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | env
    environment["PYTHONPATH"] = str(ROOT)
    environment.setdefault("HOME", str(tmp_path / "home"))
    done = run_cli("config", "init", *args, env=environment, cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


def test_init_writes_a_configuration_both_judges_take_and_finds_git_and_the_cluster(
    tmp_path: Path,
) -> None:
    (tmp_path / ".git").mkdir()  # this directory is a clone
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"current-context": "prod-eu", "contexts": []}))
    code, out, err = init(tmp_path, "--registry", "https://reg.test", KUBECONFIG=str(kubeconfig))
    assert code == 0, err
    text = (tmp_path / "regsweep.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=regsweep.schema.json\n")
    assert json.loads((tmp_path / "regsweep.schema.json").read_text()) == config_schema()
    document = yaml.safe_load(text)
    assert document["git"] == {"path": "."} and document["kubernetes"] == {"contexts": ["prod-eu"]}
    assert not list(validator().iter_errors(document))
    assert parse_config(document).registry.url == "https://reg.test"
    assert "next: regsweep check, then regsweep plan" in out


def test_init_without_git_or_a_cluster_switches_them_off_and_says_how(tmp_path: Path) -> None:
    code, _, err = init(tmp_path, "--registry", "http://127.0.0.1:5000")
    assert code == 0, err
    document = yaml.safe_load((tmp_path / "regsweep.yaml").read_text())
    assert document["kubernetes"] == {"enabled": False}
    assert document["cleanup"]["disableGitHistoryBasedPolicy"] is True
    assert not list(validator().iter_errors(document))
    parse_config(document)


def test_init_changes_nothing_it_should_not(tmp_path: Path) -> None:
    mine = tmp_path / "regsweep.yaml"
    mine.write_text("registry: {url: 'http://mine.test'}\n")
    code, _, err = init(tmp_path, "--registry", "https://reg.test")
    assert code == 2 and "--out" in err and "--force" in err
    assert mine.read_text() == "registry: {url: 'http://mine.test'}\n"
    code, _, err = init(tmp_path, "--out", "other.yaml")  # no terminal to ask on
    assert code == 2 and "--registry" in err and not (tmp_path / "other.yaml").exists()
    code, _, err = init(tmp_path, "--registry", "ftp://reg.test", "--out", "bad.yaml")
    assert code == 2 and "registry.url" in err
    assert not (tmp_path / "bad.yaml").exists()  # a file plan would refuse is not left behind
