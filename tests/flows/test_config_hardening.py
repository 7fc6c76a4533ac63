"""Every configuration problem is exit 2 naming the field, before any I/O (issue #14, items
6 and 7): no traceback, nothing created under $REGSWEEP_HOME, no request sent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.core.config import load_config
from tasks.core.errors import ConfigError
from tests.cli import run_cli

VALID: dict[str, Any] = {
    "registry": {"url": "http://127.0.0.1:9", "repositories": ["team/*"], "aliases": []},
    "git": {"path": "."},
    "kubernetes": {"enabled": False},
    "link": {"label": "org.opencontainers.image.revision"},
    "cleanup": {
        "keepPolicies": [
            {
                "references": {"branch": "/.*/", "limit": {"last": 10, "in": "168h"}},
                "imagesPerReference": {"last": 2, "in": "168h", "operator": "And"},
            }
        ],
        "keepImagesBuiltWithinLastNHours": 2,
        "keepTags": ["/^v\\d+$/"],
        "unlinked": "keep",
    },
    "safety": {"maxDeleteFraction": 0.8},
}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("registry: {url: 'https://user:pw@reg.example.com'}\n", "registry.url"),
        ("registry: {url: 'http://[::1'}\n", "registry.url"),
        ("registry: {url: 'http://reg.example.com:99999'}\n", "registry.url"),
        ("registry: {url: x, requestsPerSecond: 1.0e-300}\n", "registry.requestsPerSecond"),
        ("registry: {url: x}\ncleanup: {keepTags: [123]}\n", "cleanup.keepTags[0]"),
        (
            "registry: {url: x}\ncleanup: {keepPolicies: [{references: {branch: 5}}]}\n",
            "cleanup.keepPolicies[0].references.branch",
        ),
        ("registry: {url: [a, b]}\n", "registry.url"),
        (
            "registry: {url: x}\ncleanup: {keepImagesBuiltWithinLastNHours: .inf}\n",
            "cleanup.keepImagesBuiltWithinLastNHours",
        ),
        (
            "registry: {url: x}\ncleanup: {keepImagesBuiltWithinLastNHours: 1.0e+12}\n",
            "cleanup.keepImagesBuiltWithinLastNHours",
        ),
        (
            "registry: {url: x}\ncleanup: {keepPolicies: [{references: {branch: main,"
            " limit: {in: 99999999999999999h}}}]}\n",
            "cleanup.keepPolicies[0].references.limit.in",
        ),
        (
            "registry: {url: x}\nsafety: {maxDeleteFraction: 0.5}\n"
            "safety: {maxDeleteFraction: 1}\n",
            "duplicate key 'safety'",
        ),
        (
            "git: {url: 'https://bot:token@git.example.com/app.git'}\nregistry: {url: x}\n",
            "git.url",
        ),
    ],
    ids=[
        "userinfo",
        "bad-ipv6",
        "port",
        "tiny-rate",
        "int-tag",
        "int-branch",
        "list-url",
        "inf-hours",
        "huge-hours",
        "huge-duration",
        "duplicate-key",
        "git-userinfo",
    ],
)
def test_bad_configuration_exits_2_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    home = tmp_path / "home"
    config = tmp_path / "regsweep.yaml"
    config.write_text(text)
    env = dict(os.environ, REGSWEEP_HOME=str(home))
    done = run_cli("plan", "--config", str(config), env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert field in done.stderr.replace("\n", "")
    assert not home.exists()  # nothing created before the configuration was valid
    assert "pw" not in done.stderr and "token@" not in done.stderr  # nor echoed


def test_a_file_that_is_not_utf8_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_bytes(b"registry: {url: '\xff\xfe http://x'}\n")
    done = run_cli("plan", "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert "not UTF-8" in done.stderr and "Traceback" not in done.stderr


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_config_fuzz_is_either_valid_or_a_config_error(tmp_path: Path, data: st.DataObject) -> None:
    """Any leaf of a valid document replaced by anything: the loader answers with a
    configuration or a `ConfigError` naming a field, never another exception."""
    import copy

    document = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        leaf = data.draw(st.sampled_from(_leaves(document)))
        _set(document, leaf, data.draw(JUNK))
    path = tmp_path / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc)
