"""GitHub Packages (registry.kind: github) against a loopback fake of its REST API
(tests/servers/github_packages.py, from GitHub's published description) over the real
registry: plan -> apply -> restore, pagination, the secondary rate limit, a refused token,
the last tagged version, and the kind detection. Not tested against github.com itself."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from tasks.core.config import Config, load_config, parse_config
from tasks.core.errors import ConfigError
from tasks.delete.ledger import read_ledger
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tasks.registry.errors import AuthenticationFailed
from tasks.registry.retry import RetryPolicy
from tasks.registry.vendors import github, registry_kind
from tasks.registry.vendors.github import GitHubPackages, trusted_api
from tests.cli import run_cli
from tests.registry.vendors import push, serving, vendor_config
from tests.servers.github_packages import LAST_TAGGED, GitHubPackagesFake, version_id
from tests.servers.http_proxy import RegistryProxy
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

TOKEN = "ghp_fake-token-for-the-loopback-fake"
OLD = datetime.now(UTC) - timedelta(days=30)
NO_GIT = {"kubernetes": {"enabled": False}, "cleanup": {"disableGitHistoryBasedPolicy": True}}


@pytest.fixture
def ghcr(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GitHubPackagesFake, RegistryProxy]]:
    """The fake's REST side and its OCI side (ghcr.io: no OCI deletes); the token set."""
    monkeypatch.setenv("REGSWEEP_GITHUB_TOKEN", TOKEN)
    with serving(
        GitHubPackagesFake(registry, TOKEN, {"acme": "orgs", "octo": "users"}).start()
    ) as served:
        yield served


def write_config(root: Path, oci: RegistryProxy, fake: GitHubPackagesFake) -> Path:
    return vendor_config(root, oci, "github", fake.url, ["acme/app", "octo/tool"], "/v.*/")


def plan_and_apply(config: Config, ledger: Path, untag: str = "api") -> pd.DataFrame:
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    request = DeleteRequest(apply=True, ledger_path=str(ledger), force=True, untag=untag)
    return run_deletion(config, planned.plan.table, planned.registry, request)


def test_plan_apply_restore_round_trip_through_the_packages_api(
    registry: LocalRegistry,
    ghcr: tuple[GitHubPackagesFake, RegistryProxy],
    tmp_path: Path,
) -> None:
    fake, oci = ghcr
    digests = push(
        registry.url,
        {
            "acme/app:1": ["v1.0.0"],
            "acme/app:2": ["pr-41"],
            "acme/app:3": ["pr-42"],
            "octo/tool:1": ["v2.0.0"],
            "octo/tool:2": ["nightly-7"],
        },
    )
    config = load_config(write_config(tmp_path, oci, fake))
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    table = planned.plan.table
    assert set(table.loc[table["action"] == "delete", "tag"]) == {"pr-41", "pr-42", "nightly-7"}
    ledger = tmp_path / "ledger.jsonl"
    request = DeleteRequest(apply=True, ledger_path=str(ledger), force=True)
    results = run_deletion(config, table, planned.registry, request)
    assert sorted(results["outcome"]) == ["deleted"] * 3
    # ghcr.io refuses DELETE of a manifest: none went to the OCI side, three to the API
    assert oci.count("DELETE") == 0
    deletes = [path for method, path in fake.requests if method == "DELETE"]
    assert sorted(deletes) == sorted(
        [
            f"/orgs/acme/packages/container/app/versions/{version_id(digests['acme/app:2'])}",
            f"/orgs/acme/packages/container/app/versions/{version_id(digests['acme/app:3'])}",
            f"/users/octo/packages/container/tool/versions/{version_id(digests['octo/tool:2'])}",
        ]
    )
    assert assert_every_tag_pulls(registry.url, ["acme/app", "octo/tool"]) == {
        "acme/app": ["v1.0.0"],
        "octo/tool": ["v2.0.0"],
    }
    records = [r for r in read_ledger(ledger) if r.state == "pending"]
    assert {(r.vendor, r.vendor_api, r.vendor_id) for r in records} == {
        ("github", fake.url, str(version_id(digests[n])))
        for n in ("acme/app:2", "acme/app:3", "octo/tool:2")
    }

    # the ledger alone (and the token, sent only to an API the environment trusts)
    env = {"REGSWEEP_GITHUB_TOKEN": TOKEN, "REGSWEEP_GITHUB_API": fake.url}
    restored = run_cli("restore", "--ledger", str(ledger), env=_environ(env))
    assert restored.returncode == 0, restored.stderr
    assert "tag pr-41: restored" in restored.stdout
    restores = [path for method, path in fake.requests if method == "POST"]
    assert len(restores) == 3 and all(p.endswith("/restore") for p in restores)
    assert skopeo_tags(registry.url, "acme/app") == ["pr-41", "pr-42", "v1.0.0"]
    assert skopeo_tags(registry.url, "octo/tool") == ["nightly-7", "v2.0.0"]
    print("\nGitHub API requests:", *(f"{m} {p}" for m, p in fake.requests), sep="\n  ")


def _environ(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def test_every_page_is_read_and_the_secondary_rate_limit_is_waited_out(
    registry: LocalRegistry,
    ghcr: tuple[GitHubPackagesFake, RegistryProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, _ = ghcr
    monkeypatch.setattr(github, "PER_PAGE", 3)
    pushed = push(registry.url, {f"acme/app:{i}": [f"t{i}"] for i in range(8)})
    fake.limit_every = 2  # every other request: 403, retry-after: 1

    async def go() -> list[github.PackageVersion]:
        packages = GitHubPackages(fake.url, token=TOKEN, retry=RetryPolicy(scale=0.01))
        try:
            return await packages.list_versions("acme/app")
        finally:
            await packages.aclose()

    versions = asyncio.run(go())
    assert {v.digest for v in versions} == set(pushed.values())
    assert {v.tags for v in versions} == {(f"t{i}",) for i in range(8)}
    pages = [p for m, p in fake.requests if m == "GET"]
    assert len(pages) >= 2 * 3  # 3 pages (and the scope probe), each refused once


def test_a_refused_token_says_which_variable_to_set(
    ghcr: tuple[GitHubPackagesFake, RegistryProxy], registry: LocalRegistry
) -> None:
    fake, _ = ghcr
    push(registry.url, {"acme/app:1": ["v1"]})

    async def go() -> None:
        packages = GitHubPackages(fake.url, token="wrong", retry=RetryPolicy(scale=0.01))
        try:
            await packages.list_versions("acme/app")
        finally:
            await packages.aclose()

    with pytest.raises(AuthenticationFailed, match="REGSWEEP_GITHUB_TOKEN"):
        asyncio.run(go())


def test_the_last_tagged_version_is_refused_and_reported_failed(
    registry: LocalRegistry,
    ghcr: tuple[GitHubPackagesFake, RegistryProxy],
    tmp_path: Path,
) -> None:
    fake, oci = ghcr
    push(registry.url, {"octo/tool:1": ["pr-1"]})
    document = yaml.safe_load(write_config(tmp_path, oci, fake).read_text())
    document["registry"]["repositories"] = ["octo/tool"]
    config = parse_config(document)
    results = plan_and_apply(config, tmp_path / "l.jsonl")
    assert results["outcome"].tolist() == ["failed"]
    assert LAST_TAGGED in results["detail"].iloc[0]
    assert skopeo_tags(registry.url, "octo/tool") == ["pr-1"]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://ghcr.io", "github"),
        ("https://registry.gitlab.com", "gitlab"),
        ("https://gitlab.example.com:5050", "gitlab"),
        ("https://registry-1.docker.io", "dockerhub"),
        ("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr"),
        ("https://registry.example.com", "distribution"),
    ],
)
def test_the_kind_is_detected_from_the_host_and_named(url: str, kind: str) -> None:
    found = registry_kind(parse_config({"registry": {"url": url}, **NO_GIT}))
    assert found.name == kind
    assert found.how == ("the default" if kind == "distribution" else f"detected from {url[8:]}")
    if kind == "github":
        assert found.api == "https://api.github.com"
        assert "GitHub's packages REST API" in found.describe()


def test_an_unknown_kind_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"registry\.kind"):
        parse_config({"registry": {"url": "https://quay.io", "kind": "quay"}, **NO_GIT})
    hub = parse_config(
        {"registry": {"url": "https://registry-1.docker.io", "kind": "dockerhub"}, **NO_GIT}
    )
    assert registry_kind(hub).api == "https://hub.docker.com"
    assert "Docker Hub's Hub API (https://hub.docker.com)" in registry_kind(hub).describe()


def test_a_ledger_cannot_send_the_token_to_an_api_nobody_trusted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REGSWEEP_GITHUB_API", raising=False)
    assert trusted_api("https://api.github.com/") == "https://api.github.com"
    with pytest.raises(ConfigError, match=re.escape("REGSWEEP_GITHUB_API=https://evil.example")):
        trusted_api("https://evil.example")
    monkeypatch.setenv("REGSWEEP_GITHUB_API", "https://github.corp.example/api/v3")
    assert trusted_api("https://github.corp.example/api/v3")


def test_check_says_deletes_go_through_the_api_and_the_plan_names_the_kind(
    registry: LocalRegistry, ghcr: tuple[GitHubPackagesFake, RegistryProxy], tmp_path: Path
) -> None:
    fake, oci = ghcr
    push(registry.url, {"acme/app:1": ["v1.0.0"], "octo/tool:1": ["v1"]})
    config = write_config(tmp_path, oci, fake)
    checked = run_cli("check", "-c", str(config), env=_environ({"REGSWEEP_GITHUB_TOKEN": TOKEN}))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok   deletes: through GitHub's packages API ({fake.url}): token accepted" in (
        checked.stdout
    )
    refused = run_cli("check", "-c", str(config), env=_environ({"REGSWEEP_GITHUB_TOKEN": "no"}))
    assert refused.returncode == 3 and "FAIL deletes: GitHub packages API" in refused.stdout
    planned = run_cli("plan", "-c", str(config), env=_environ({"REGSWEEP_GITHUB_TOKEN": TOKEN}))
    assert "registry kind github (configured): deletes through GitHub's packages REST API" in (
        planned.stderr
    )


def test_untag_by_overwrite_deletes_the_placeholder_version(
    registry: LocalRegistry,
    ghcr: tuple[GitHubPackagesFake, RegistryProxy],
    tmp_path: Path,
) -> None:
    fake, oci = ghcr
    digests = push(registry.url, {"acme/app:1": ["v1.0.0", "latest"], "octo/tool:1": ["v1"]})
    document = yaml.safe_load(write_config(tmp_path, oci, fake).read_text())
    document["cleanup"]["untag"] = "overwrite"
    config = parse_config(document)
    results = plan_and_apply(config, tmp_path / "l.jsonl", untag="overwrite")
    assert results[["tags", "outcome"]].to_dict(orient="records") == [
        {"tags": ["latest"], "outcome": "untagged"}
    ]
    assert assert_every_tag_pulls(registry.url, ["acme/app"]) == {"acme/app": ["v1.0.0"]}
    [deleted] = [p for m, p in fake.requests if m == "DELETE"]  # the placeholder's version
    assert deleted.startswith("/orgs/acme/packages/container/app/versions/")
    assert (
        deleted != f"/orgs/acme/packages/container/app/versions/{version_id(digests['acme/app:1'])}"
    )


def test_a_placeholder_version_is_found_on_the_first_page(
    registry: LocalRegistry,
    ghcr: tuple[GitHubPackagesFake, RegistryProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each untag by overwrite deletes a placeholder pushed a moment before: a version the
    listing has not seen. GitHub lists newest first, so the first page has it; listing
    every page again for each was O(untags x pages) on a large package."""
    from tasks.delete import untag

    fake, oci = ghcr
    monkeypatch.setattr(github, "PER_PAGE", 2)
    monkeypatch.setattr(untag, "UNTAG_WORKERS", 1)  # one placeholder at a time
    push(registry.url, {f"acme/app:{i}": [f"pr-{i}"] for i in range(9)})
    shared = [f"copy-{i}" for i in range(6)]
    push(registry.url, {"acme/app:release": ["v1.0.0", *shared]})  # 10 versions: 5 pages
    document = yaml.safe_load(write_config(tmp_path, oci, fake).read_text())
    document["registry"]["repositories"] = ["acme/app"]
    document["cleanup"]["keepTags"] = ["/v.*/", "/pr-.*/"]
    config = parse_config(document)
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    listed = len([p for m, p in fake.requests if m == "GET" and p.endswith("/versions")])
    request = DeleteRequest(
        apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True, untag="overwrite"
    )
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    assert set(results["outcome"]) == {"untagged"} and len(results) == 6
    pages = len([p for m, p in fake.requests if m == "GET" and p.endswith("/versions")]) - listed
    # the deletes probe lists every page once (5, or 6 with a placeholder); then one page
    # per placeholder
    assert pages <= 6 + len(shared), pages
    assert skopeo_tags(registry.url, "acme/app") == sorted(
        ["v1.0.0", *(f"pr-{i}" for i in range(9))]
    )
