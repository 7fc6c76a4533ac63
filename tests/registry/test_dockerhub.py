"""Docker Hub (registry.kind: dockerhub) against a loopback fake of its Hub API and of its
registry's pull rate limit (tests/servers/dockerhub_api.py, from Docker's Hub API
description and hub-tool's tag delete) over the real registry: repositories listed by
namespace (no catalog), immutable tags kept (`protected`), images deleted by their tags
through the Hub API, manifest GETs spared and counted, plan -> apply -> restore. Not tested
against Docker Hub."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.demo.images import push_image, push_index
from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from flows.report import stage_notes
from tasks.core.config import load_config
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tasks.registry.client import RegistryClient
from tasks.registry.errors import AuthenticationFailed
from tasks.registry.retry import RetryPolicy
from tasks.registry.vendors.dockerhub import HubApi, ImmutableTags
from tests.cli import run_cli
from tests.registry.vendors import OLD, serving, vendor_config
from tests.servers.dockerhub_api import DockerHubFake
from tests.servers.http_proxy import RegistryProxy
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

USER, SECRET = "acme-bot", "dckr_pat_fake-token-for-the-loopback-fake"
IMMUTABLE = {"acme/web": {"enabled": True, "rules": [r"v\d+\.\d+\.\d+"]}}


@pytest.fixture
def hub(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[DockerHubFake, RegistryProxy]]:
    monkeypatch.setenv("REGSWEEP_DOCKERHUB_USERNAME", USER)
    monkeypatch.setenv("REGSWEEP_DOCKERHUB_TOKEN", SECRET)
    with serving(DockerHubFake(registry, USER, SECRET, dict(IMMUTABLE)).start()) as served:
        yield served


def write_config(root: Path, oci: RegistryProxy, fake: DockerHubFake) -> Path:
    return vendor_config(root, oci, "dockerhub", fake.url, ["acme/*"], "/release-.*/")


def push_images(url: str) -> dict[str, str]:
    """acme/web: a release (immutable v1.0.0, and latest beside it), a PR image, a PR
    index over two platform images; acme/tools: one PR image."""

    async def go() -> dict[str, str]:
        async with RegistryClient(url) as client:
            web = "acme/web"
            release = await push_image(client, web, ["v1.0.0", "latest"], created=OLD, seed="r")
            pr = await push_image(client, web, ["pr-1"], created=OLD, seed="p")
            amd = await push_image(client, web, [], created=OLD, seed="a", oci=True)
            arm = await push_image(
                client, web, [], created=OLD, seed="b", oci=True, platform=("linux", "arm64")
            )
            index = await push_index(
                client, web, ["pr-2"], [(amd, ("linux", "amd64")), (arm, ("linux", "arm64"))]
            )
            tool = await push_image(client, "acme/tools", ["pr-3"], created=OLD, seed="t")
            return {"release": release, "pr": pr, "amd": amd, "arm": arm, "index": index,
                    "tool": tool}  # fmt: skip

    return asyncio.run(go())


def test_plan_apply_restore_through_the_hub_api(
    registry: LocalRegistry, hub: tuple[DockerHubFake, RegistryProxy], tmp_path: Path
) -> None:
    fake, oci = hub
    digests = push_images(registry.url)
    config = load_config(write_config(tmp_path, oci, fake))
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    table = planned.plan.table.set_index(["repository", "tag"])
    assert table.loc[("acme/web", "v1.0.0"), ["action", "reason"]].tolist() == [
        "keep",
        "protected",
    ]
    [why] = planned.plan.evidence[("acme/web", digests["release"])]
    assert why == r"protected: tag v1.0.0: Docker Hub immutable tag rule /v\d+\.\d+\.\d+/"
    assert table.loc[("acme/web", "latest"), "action"] == "untag"
    assert table.loc[("acme/web", "pr-1"), "action"] == "delete"
    assert table.loc[("acme/web", "pr-2"), "action"] == "delete"
    assert table.loc[("acme/tools", "pr-3"), "action"] == "delete"
    # pull rate limit: every tag by HEAD, each distinct manifest GET once (5 tags, 6
    # manifests with the index's two children), though the cache was empty
    assert fake.heads == 5 and fake.pulls == 6
    assert f"the scan sent {fake.pulls} manifest GET(s) for 5 tag(s)" in " ".join(
        stage_notes(config, planned.registry)
    )

    ledger = tmp_path / "ledger.jsonl"
    request = DeleteRequest(apply=True, ledger_path=str(ledger), force=True)
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    outcomes = dict(zip(results["digest"], results["outcome"], strict=True))
    assert outcomes == {
        digests["release"]: "untagged",
        digests["pr"]: "deleted",
        digests["index"]: "deleted",
        digests["amd"]: "skipped-unsupported",  # untagged: left to Docker Hub
        digests["arm"]: "skipped-unsupported",
        digests["tool"]: "deleted",
    }
    assert not set(results["outcome"]) & {"failed", "not-attempted", "refused"}
    deletes = sorted(p for m, p in fake.requests if m == "DELETE")
    assert deletes == [
        "/v2/repositories/acme/tools/tags/pr-3/",
        "/v2/repositories/acme/web/tags/latest/",
        "/v2/repositories/acme/web/tags/pr-1/",
        "/v2/repositories/acme/web/tags/pr-2/",
    ]
    assert oci.count("DELETE") == 0  # never the registry's DELETE, which Docker Hub refuses
    # one sign-in served the scan and the delete step (each makes its own client)
    assert [p for m, p in fake.requests if m == "POST"] == ["/v2/auth/token"]
    assert not any(e.path.startswith("/v2/_catalog") and e.status == 200 for e in oci.exchanges)
    assert assert_every_tag_pulls(registry.url, ["acme/web"]) == {"acme/web": ["v1.0.0"]}
    assert skopeo_tags(registry.url, "acme/tools") == []

    pulls = fake.pulls
    compute_plan(config, datetime.now(UTC), local_stages())  # warm: the cache has them
    assert fake.pulls == pulls

    restored = run_cli("restore", "--ledger", str(ledger), env=dict(os.environ))
    assert restored.returncode == 0, restored.stderr
    assert skopeo_tags(registry.url, "acme/web") == ["latest", "pr-1", "pr-2", "v1.0.0"]
    assert assert_every_tag_pulls(registry.url, ["acme/tools"]) == {"acme/tools": ["pr-3"]}
    print("\nHub API requests:", *(f"{m} {p}" for m, p in fake.requests), sep="\n  ")


def test_the_pull_rate_limit_stops_the_scan_there_without_retries(
    registry: LocalRegistry, hub: tuple[DockerHubFake, RegistryProxy], tmp_path: Path
) -> None:
    """Past the pull limit a GET gets 429 TOOMANYREQUESTS: retrying within seconds cannot
    help (the window is hours), so the repository is incomplete at once and nothing is
    deleted there; the other repository, read within the limit, is cleaned."""
    fake, oci = hub
    push_images(registry.url)
    tools = vendor_config(tmp_path, oci, "dockerhub", fake.url, ["acme/tools"], "/none/")
    compute_plan(load_config(tools), datetime.now(UTC), local_stages())  # into the cache
    fake.pull_limit = fake.pulls  # no pulls left: acme/tools is read from the cache
    config = load_config(write_config(tmp_path, oci, fake))
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    status = planned.registry.status.set_index("repository")
    assert not status.loc["acme/web", "complete"]
    assert "pull rate limit is reached" in status.loc["acme/web", "error"]
    assert planned.registry.incomplete() == ["acme/web"]
    limited = oci.count("GET", 429)
    assert 1 <= limited <= 5  # each refused GET once: no retry storm
    request = DeleteRequest(apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True)
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    by_repository = results.groupby("repository")["outcome"].agg(set).to_dict()
    assert by_repository == {"acme/tools": {"deleted"}}  # acme/web: nothing sent
    assert skopeo_tags(registry.url, "acme/web") == ["latest", "pr-1", "pr-2", "v1.0.0"]


def test_sign_in_again_when_the_token_expires_and_wait_out_the_api_rate_limit(
    registry: LocalRegistry, hub: tuple[DockerHubFake, RegistryProxy]
) -> None:
    fake, _ = hub
    push_images(registry.url)
    fake.token_uses, fake.limit_every = 2, 4

    async def go(secret: str) -> list[object]:
        api = HubApi(fake.url, USER, secret, retry=RetryPolicy(scale=0.01))
        try:
            return [
                await api.repositories("acme"),
                await api.immutable_tags("acme/web"),
                await api.immutable_tags("acme/tools"),
                await api.repositories("acme"),
            ]
        finally:
            await api.aclose()

    listed, web, tools, again = asyncio.run(go(SECRET))
    assert listed == again == ["acme/tools", "acme/web"]
    assert web == ImmutableTags(True, (r"v\d+\.\d+\.\d+",)) and tools == ImmutableTags(False, ())
    sign_ins = [p for m, p in fake.requests if m == "POST"]
    assert len(sign_ins) >= 2  # the first token expired after two requests
    with pytest.raises(AuthenticationFailed, match="REGSWEEP_DOCKERHUB_USERNAME"):
        asyncio.run(go("wrong"))


def test_check_says_deletes_go_through_the_hub_api(
    registry: LocalRegistry, hub: tuple[DockerHubFake, RegistryProxy], tmp_path: Path
) -> None:
    fake, oci = hub
    push_images(registry.url)
    config = write_config(tmp_path, oci, fake)
    checked = run_cli("check", "-c", str(config), env=dict(os.environ))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (
        "ok   kind: dockerhub (configured): reads through the OCI API, lists repositories "
        f"through Docker Hub's Hub API, by namespace ({fake.url})"
    ) in checked.stdout
    assert "ok   untag: api: tags are deleted one by one through Docker Hub's Hub API" in (
        checked.stdout
    )
    assert f"ok   deletes: through Docker Hub's Hub API ({fake.url}): signed in" in checked.stdout
    refused = run_cli(
        "check", "-c", str(config), env={**os.environ, "REGSWEEP_DOCKERHUB_TOKEN": "nope"}
    )
    assert refused.returncode == 3  # the listing goes through the Hub API: it fails first
    assert "FAIL listing" in refused.stdout and "REGSWEEP_DOCKERHUB_TOKEN" in refused.stdout


@pytest.mark.parametrize(
    ("settings", "tag", "immutable"),
    [
        (ImmutableTags(False, ("v.*",)), "v1", False),
        (ImmutableTags(True, ("v.*", ".*-RELEASE")), "v1", True),
        (ImmutableTags(True, ("v.*", ".*-RELEASE")), "1.0-RELEASE", True),
        (ImmutableTags(True, ("v.*",)), "dev-v1", False),  # the whole name must match
        (ImmutableTags(True, ()), "anything", True),  # "all tags are immutable"
        (ImmutableTags(True, ("(unclosed",)), "anything", True),  # unreadable: fail closed
    ],
)
def test_immutable_tag_rules(settings: ImmutableTags, tag: str, immutable: bool) -> None:
    assert bool(settings.why(tag)) is immutable


def test_untag_by_overwrite_uses_the_hub_api_instead(
    registry: LocalRegistry, hub: tuple[DockerHubFake, RegistryProxy], tmp_path: Path
) -> None:
    """cleanup.untag: overwrite is for registries with no tag delete; Docker Hub has one
    (and cannot delete a placeholder): the tag goes through the Hub API, nothing is PUT."""
    fake, oci = hub
    digests = push_images(registry.url)
    config = load_config(write_config(tmp_path, oci, fake))
    planned = compute_plan(config, datetime.now(UTC), local_stages())
    puts = oci.count("PUT")
    request = DeleteRequest(
        apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True, untag="overwrite"
    )
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    outcomes = dict(zip(results["digest"], results["outcome"], strict=True))
    assert outcomes[digests["release"]] == "untagged"
    assert ("DELETE", "/v2/repositories/acme/web/tags/latest/") in fake.requests
    assert oci.count("PUT") == puts
    assert skopeo_tags(registry.url, "acme/web") == ["v1.0.0"]


def test_a_glob_namespace_is_refused_naming_the_field(
    hub: tuple[DockerHubFake, RegistryProxy], tmp_path: Path
) -> None:
    """Docker Hub has no catalog: a glob must name its namespace. Refused before any
    listing, naming registry.repositories (exit 2, nothing read)."""
    fake, oci = hub
    config = vendor_config(tmp_path, oci, "dockerhub", fake.url, ["*/web"], "/none/")
    planned = run_cli("plan", "-c", str(config), env=dict(os.environ))
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "registry.repositories" in planned.stderr and "'*'" in planned.stderr
    assert not [p for m, p in fake.requests if p.startswith("/v2/namespaces")]


def test_an_empty_namespace_and_an_all_immutable_repository_delete_nothing(
    registry: LocalRegistry, hub: tuple[DockerHubFake, RegistryProxy], tmp_path: Path
) -> None:
    """Degenerate inputs: a namespace with no repository scans nothing (said, exit 0); a
    repository whose every tag is immutable ("all tags are immutable": enabled, no rules)
    keeps everything and sends no DELETE."""
    fake, oci = hub
    push_images(registry.url)
    empty = vendor_config(tmp_path, oci, "dockerhub", fake.url, ["nobody/*"], "/none/")
    planned = run_cli("plan", "-c", str(empty), env=dict(os.environ))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "matched no repository" in planned.stderr
    fake.immutable["acme/web"] = {"enabled": True, "rules": []}
    config = load_config(write_config(tmp_path, oci, fake))
    plan = compute_plan(config, datetime.now(UTC), local_stages())
    web = plan.plan.table[plan.plan.table["repository"] == "acme/web"]
    assert set(web["action"]) == {"keep"}
    request = DeleteRequest(apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True)
    results = run_deletion(config, plan.plan.table, plan.registry, request)
    assert set(results["repository"]) == {"acme/tools"}
    assert not [p for m, p in fake.requests if m == "DELETE" and "/acme/web/" in p]
    assert skopeo_tags(registry.url, "acme/web") == ["latest", "pr-1", "pr-2", "v1.0.0"]
