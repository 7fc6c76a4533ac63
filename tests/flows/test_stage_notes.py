"""The report says which stages the configuration switched off."""

from __future__ import annotations

import pytest

from flows.report import stage_notes
from tasks.core.config import parse_config

REGISTRY = {"url": "http://127.0.0.1:5000", "repositories": ["a"]}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"kubernetes": {"enabled": False}}, ["Kubernetes stage skipped"]),
        ({"cleanup": {"disableKubernetesBasedPolicy": True}}, ["Kubernetes stage skipped"]),
        ({"cleanup": {"disableGitHistoryBasedPolicy": True}}, ["Git-history policy disabled"]),
        ({"git": {"path": "."}}, []),
    ],
    ids=["kubernetes-disabled", "kubernetes-policy-disabled", "git-disabled", "all-on"],
)
def test_stage_notes(extra: dict[str, object], expected: list[str]) -> None:
    config = parse_config({"registry": REGISTRY, "git": {"path": "."}} | extra)
    notes = stage_notes(config)
    assert [n for n in notes if any(n.startswith(e) for e in expected)] == notes
    assert len(notes) == len(expected)
