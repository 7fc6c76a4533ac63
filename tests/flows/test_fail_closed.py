"""The flow fails loud and closed, and reads the cluster with fresh eyes (issue #13, items 4,
6 and 7): real registry, Kubernetes API fixture, Prefect; skopeo pulls what must survive."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.cleanup import cleanup
from flows.demo.images import push_image
from flows.demo.kube_api import KubeAPIFixture, pod
from flows.demo.registry_server import LocalRegistry
from flows.result import RunDeletionsFailed, RunIncomplete
from tasks.registry.client import RegistryClient
from tests.cli import run_cli
from tests.delete.helpers import OLD
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

NOW = datetime.now(UTC).isoformat()


def write_config(
    tmp_path: Path, url: str, kube: KubeAPIFixture | None, aliases: list[str] | None = None
) -> Path:
    kubernetes = "{enabled: false}"
    if kube is not None:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        kubernetes = f"{{kubeconfig: '{kubeconfig}'}}"
    path = tmp_path / "regsweep.yaml"
    path.write_text(
        f"registry: {{url: '{url}', aliases: {aliases or []!r}}}\n"
        f"kubernetes: {kubernetes}\n"
        "cleanup: {disableGitHistoryBasedPolicy: true, unlinked: delete,"
        " keepImagesBuiltWithinLastNHours: 1}\n"
        "safety: {maxDeleteFraction: 1}\n"
    )
    return path


def push(url: str, images: dict[str, list[str]]) -> None:
    async def go() -> None:
        async with RegistryClient(url) as client:
            for repository, tags in images.items():
                for tag in tags:
                    await push_image(client, repository, [tag], created=OLD, seed=tag)

    asyncio.run(go())


def flow_state(flow_run_id: str) -> str:
    with get_client(sync_client=True) as client:
        return str(client.read_flow_run(flow_run_id).state_name)


def test_a_repository_whose_listing_fails_mid_scan_fails_the_run_with_exit_3(
    prefect_harness: None, tmp_path: Path, registry: LocalRegistry
) -> None:
    """Item 4: `broken`'s tag list answers 500 on every try. Nothing is deleted there,
    `fine` is cleaned, the flow run ends Failed, and the error names the scope."""
    push(registry.url, {"broken": ["old"], "fine": ["old"]})

    def fail_tags(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if path.startswith("/v2/broken/tags/list"):
            return 500, {"Content-Type": "text/plain"}, b"backend down"
        return None

    with RegistryProxy(registry.url) as proxy:
        proxy.intercept = fail_tags
        config = write_config(tmp_path, proxy.url, None)
        with pytest.raises(RunIncomplete, match="nothing deleted in: broken") as failed:
            cleanup(config_path=str(config), apply=True, now=NOW)
    result = failed.value.result
    assert failed.value.exit_code == 3
    assert result.outcomes == {"deleted": 1}  # broken's tags were never listed: no plan rows
    assert {row["repository"]: row["deleted_in_run"] for row in result.summary} == {"fine": 1}
    assert flow_state(result.flow_run_id) == "Failed"
    assert skopeo_tags(registry.url, "broken") == ["old"]
    assert skopeo_tags(registry.url, "fine") == []


def test_a_pod_started_between_dry_run_and_apply_keeps_its_image(
    prefect_harness: None, tmp_path: Path, registry: LocalRegistry, kube: KubeAPIFixture
) -> None:
    """Item 7: the README's workflow - dry run, then --apply with the same --now. The
    extraction is cached for that snapshot, but the delete step reads the cluster again."""
    push(registry.url, {"app": ["running", "old1", "old2"]})
    kube.add("pods", pod("web", "prod", [f"{registry.host}/app:running"]))
    config = write_config(tmp_path, registry.url, kube)

    dry = cleanup(config_path=str(config), now=NOW)
    assert dry.outcomes == {"would-delete": 2}
    kube.add("pods", pod("debug", "prod", [f"{registry.host}/app:old1"]))  # meanwhile
    applied = cleanup(config_path=str(config), apply=True, now=NOW)
    assert applied.outcomes == {"deleted": 1, "skipped-in-use": 1}
    assert assert_every_tag_pulls(registry.url, ["app"]) == {"app": ["old1", "running"]}


def test_a_cluster_naming_no_scanned_registry_refuses_every_deletion(
    prefect_harness: None, tmp_path: Path, registry: LocalRegistry, kube: KubeAPIFixture
) -> None:
    """Item 6: the kubeconfig points at a cluster that uses nothing from this registry (or
    pulls it through a name we do not know): exit 4 naming the guard; --force overrides."""
    push(registry.url, {"app": ["v1", "v2"]})
    kube.add("pods", pod("web", "prod", ["other.example.com/app:v1"]))
    config = write_config(tmp_path, registry.url, kube)
    with pytest.raises(RunDeletionsFailed, match="no image in the cluster names this registry"):
        cleanup(config_path=str(config), apply=True, now=NOW)
    assert skopeo_tags(registry.url, "app") == ["v1", "v2"]
    forced = cleanup(config_path=str(config), apply=True, now=NOW, force=True)
    assert forced.outcomes == {"deleted": 2}
    assert any("other.example.com (1)" in note for note in forced.notes)


@pytest.mark.parametrize(
    ("spelling", "aliases"),
    [
        ("{loopback}", []),
        ("Mirror.Internal:5000", ["mirror.internal:5000"]),
    ],
    ids=["localhost-for-127.0.0.1", "alias"],
)
def test_cluster_images_naming_the_registry_differently_are_protected(
    prefect_harness: None,
    tmp_path: Path,
    registry: LocalRegistry,
    kube: KubeAPIFixture,
    spelling: str,
    aliases: list[str],
) -> None:
    """Item 6: `localhost:PORT` for `127.0.0.1:PORT` and a mirror named in registry.aliases
    protect the image they name (`host:443` = `host`: tests/registry/test_reference.py)."""
    push(registry.url, {"app": ["used", "old"]})
    name = spelling.format(loopback=registry.host.replace("127.0.0.1", "localhost"))
    kube.add("pods", pod("web", "prod", [f"{name}/app:used"]))
    config = write_config(tmp_path, registry.url, kube, aliases)
    applied = cleanup(config_path=str(config), apply=True, now=NOW)
    assert applied.outcomes == {"deleted": 1}
    assert assert_every_tag_pulls(registry.url, ["app"]) == {"app": ["used"]}


def test_a_refused_run_from_the_cli_prints_its_report_and_exits_4(
    prefect_env: dict[str, str], tmp_path: Path, registry: LocalRegistry, kube: KubeAPIFixture
) -> None:
    """As a user's nightly job sees it: stdout piped, the report, then one line naming why,
    exit 4, no traceback; the registry untouched."""
    push(registry.url, {"app": ["v1"]})
    kube.add("pods", pod("web", "prod", ["other.example.com/app:v1"]))
    config = write_config(tmp_path, registry.url, kube)
    done = run_cli(
        "run", "--config", str(config), "--apply", "--now", NOW, env=prefect_env, timeout=240
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "outcomes: refused 1" in done.stdout
    assert "note: cluster images on other registries" in done.stdout
    error = [line for line in done.stderr.splitlines() if line.startswith("regsweep: deletion:")]
    assert len(error) == 1 and "no image in the cluster names this registry" in error[0]
    assert skopeo_tags(registry.url, "app") == ["v1"]
