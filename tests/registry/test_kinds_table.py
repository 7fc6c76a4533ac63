"""The table of registry kinds (`tasks.core.registry_kinds`): every line resolves to the
class that speaks for its kind, hosts are detected by the classes' own patterns, the
configuration accepts exactly the table's kinds, and a new backend is its class plus one
line in the table (shown with one defined here)."""

from __future__ import annotations

import asyncio
import re

import pytest

from tasks.core.config import Config, parse_config
from tasks.core.errors import ConfigError
from tasks.core.registry_kinds import REGISTRY_KINDS
from tasks.registry.stage import make_client
from tasks.registry.vendors import registry_kind, vendor_class
from tasks.registry.vendors.base import Vendor, vendor_of

NO_GIT = {"kubernetes": {"enabled": False}, "cleanup": {"disableGitHistoryBasedPolicy": True}}


def config_for(url: str, **registry: str) -> Config:
    return parse_config({"registry": {"url": url, **registry}, **NO_GIT})


def test_every_line_of_the_table_is_the_class_of_its_kind() -> None:
    assert "distribution" in REGISTRY_KINDS
    for kind in REGISTRY_KINDS:
        found = vendor_class(kind)
        assert issubclass(found, Vendor) and found.name == kind
    assert vendor_class("distribution") is Vendor


@pytest.mark.parametrize(
    ("url", "kind", "api"),
    [
        ("https://ghcr.io", "github", "https://api.github.com"),
        ("https://registry.gitlab.com", "gitlab", "https://gitlab.com/api/v4"),
        ("https://gitlab.corp.example:5050", "gitlab", ""),
        ("https://registry-1.docker.io", "dockerhub", "https://hub.docker.com"),
        ("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr", ""),
        ("https://acme.azurecr.io", "acr", ""),
        ("http://127.0.0.1:5000", "distribution", ""),
        ("https://harbor.corp.example", "distribution", ""),  # Harbor is configured
    ],
)
def test_hosts_are_detected_by_the_classes_patterns(url: str, kind: str, api: str) -> None:
    found = registry_kind(config_for(url))
    assert (found.name, found.api) == (kind, api)
    assert found.how == ("the default" if kind == "distribution" else f"detected from {url[8:]}")


def test_gitlab_without_its_api_is_spoken_to_as_oci() -> None:
    found = registry_kind(config_for("https://gitlab.corp.example:5050"))
    assert found.vendor is Vendor
    assert found.describe().endswith(
        "set registry.api (https://<gitlab>/api/v4) to use GitLab's API"
    )


def test_the_configuration_accepts_exactly_the_table_kinds() -> None:
    for kind in REGISTRY_KINDS:
        assert registry_kind(config_for("https://r.example", kind=kind)).name == kind
    with pytest.raises(
        ConfigError, match=re.escape("registry.kind: 'quay' is not a registry kind")
    ):
        config_for("https://r.example", kind="quay")


class Quay(Vendor):
    """A backend that is not in regsweep: its class, and one line in the table."""

    name = "quay"
    detect = re.compile(r"^quay\.io$")
    default_api = "https://quay.io/api/v1"
    has_api = True

    deletes = "Quay's API ({api})"


def test_a_new_backend_is_its_class_and_one_line_in_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = {"quay": f"{__name__}:Quay", **REGISTRY_KINDS}
    monkeypatch.setattr("tasks.core.registry_kinds.REGISTRY_KINDS", table)
    monkeypatch.setattr("tasks.core.config.REGISTRY_KINDS", table)
    monkeypatch.setattr("tasks.registry.vendors.REGISTRY_KINDS", table)
    detected = config_for("https://quay.io")
    kind = registry_kind(detected)
    assert (kind.name, kind.api, kind.how) == (
        "quay",
        "https://quay.io/api/v1",
        "detected from quay.io",
    )
    assert "deletes through Quay's API (https://quay.io/api/v1)" in kind.describe()
    client = make_client(config_for("https://r.example", kind="quay"))
    assert isinstance(vendor_of(client), Quay)
    asyncio.run(client.aclose())
