"""Cluster extraction against the Kubernetes API fixture through the official client."""

from __future__ import annotations

from pathlib import Path

import pytest

import tasks.cluster.extract as extract_module
from flows.demo.kube_api import (
    Fault,
    KubeAPIFixture,
    helm_release_configmap,
    helm_release_secret,
    pod,
    workload,
    write_kubeconfig,
)
from tasks.cluster.errors import ClusterConfigError, ListFailed
from tasks.cluster.extract import IMAGE_COLUMNS, extract_cluster

DIGEST = "sha256:" + "a" * 64
PLURALS = {
    "Deployment": "deployments",
    "ReplicaSet": "replicasets",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "ReplicationController": "replicationcontrollers",
}


def test_every_kind_and_container_list(kube: KubeAPIFixture, tmp_path: Path) -> None:
    kube.add(
        "pods",
        pod(
            "p",
            "ns",
            ["reg.test/app:1"],
            init_images=["reg.test/init:1"],
            ephemeral_images=["busybox"],
            image_ids=[f"docker-pullable://reg.test/app@{DIGEST}"],
        ),
    )
    for kind, plural in PLURALS.items():
        kube.add(plural, workload(kind, kind.lower(), "ns", [f"reg.test/{kind.lower()}:1"]))
    config = kube.write_kubeconfig(tmp_path / "kubeconfig")
    df = extract_cluster(str(config))
    assert list(df.columns) == list(IMAGE_COLUMNS)
    assert set(df["kind"]) == {"Pod", *PLURALS}
    pod_rows = df[df["kind"] == "Pod"]
    assert set(pod_rows["image"]) == {
        "reg.test/app:1",
        "reg.test/init:1",
        "busybox",
        f"docker-pullable://reg.test/app@{DIGEST}",
    }
    status = pod_rows[pod_rows["source"] == "status"].iloc[0]
    assert (status["repository"], status["digest"]) == ("app", DIGEST)
    assert df.loc[df["image"] == "busybox", "repository"].item() == "library/busybox"


def test_helm_history_keeps_last_n_revisions(kube: KubeAPIFixture, tmp_path: Path) -> None:
    for revision in range(1, 8):
        kube.add(
            "secrets", helm_release_secret("web", "ns", revision, [f"reg.test/web:r{revision}"])
        )
    df = extract_cluster(str(kube.write_kubeconfig(tmp_path / "kc")), helm_revisions=3)
    helm = df[df["source"] == "helm"]
    assert sorted(helm["tag"]) == ["r5", "r6", "r7"]


def test_helm_configmap_driver_and_any_release_status(kube: KubeAPIFixture, tmp_path: Path) -> None:
    kube.add("configmaps", helm_release_configmap("api", "ns", 1, ["reg.test/api:r1"], "failed"))
    kube.add("configmaps", helm_release_configmap("api", "ns", 2, ["reg.test/api:r2"], "deployed"))
    kube.add("configmaps", {"metadata": {"name": "unrelated", "namespace": "ns"}, "data": {}})
    df = extract_cluster(str(kube.write_kubeconfig(tmp_path / "kc")), helm_revisions=5)
    helm = df[df["source"] == "helm"]
    assert sorted(helm["tag"]) == ["r1", "r2"]
    assert set(helm["object"]) == {"api@1/api-0", "api@2/api-0"}


def test_status_image_id_plain_and_docker_pullable_forms(
    kube: KubeAPIFixture, tmp_path: Path
) -> None:
    other = "sha256:" + "b" * 64
    kube.add(
        "pods",
        pod(
            "p",
            "ns",
            ["reg.test/app:1", "reg.test/side:2"],
            image_ids=[f"docker-pullable://reg.test/app@{DIGEST}", f"reg.test/side@{other}"],
        ),
    )
    # A bare image ID (no repository) names a local image, not a manifest: not a row.
    kube.add("pods", pod("q", "ns", ["reg.test/app:1"], image_ids=[other]))
    df = extract_cluster(str(kube.write_kubeconfig(tmp_path / "kc")))
    status = df[df["source"] == "status"]
    assert set(zip(status["repository"], status["digest"], strict=True)) == {
        ("app", DIGEST),
        ("side", other),
    }


@pytest.mark.parametrize("keep", [True, False], ids=["keep-default", "ignore"])
def test_finished_jobs(kube: KubeAPIFixture, tmp_path: Path, keep: bool) -> None:
    kube.add("jobs", workload("Job", "done", "ns", ["reg.test/done:1"], job_condition="Complete"))
    kube.add("jobs", workload("Job", "broke", "ns", ["reg.test/broke:1"], job_condition="Failed"))
    kube.add("jobs", workload("Job", "busy", "ns", ["reg.test/busy:1"]))
    kube.add("pods", pod("done-x", "ns", ["reg.test/done:1"], phase="Succeeded", owner_job="done"))
    kube.add("pods", pod("busy-x", "ns", ["reg.test/busy:1"], owner_job="busy"))
    kube.add("pods", pod("lone", "ns", ["reg.test/lone:1"], phase="Succeeded"))
    df = extract_cluster(str(kube.write_kubeconfig(tmp_path / "kc")), keep_finished_jobs=keep)
    used = set(df["repository"])
    assert {"busy", "lone"} <= used
    assert ({"done", "broke"} <= used) is keep
    assert not ({"done", "broke"} & used) or keep


def test_pagination_and_expired_continue_restart(
    kube: KubeAPIFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract_module, "PAGE_SIZE", 2)
    for i in range(7):
        kube.add("pods", pod(f"p{i}", "ns", [f"reg.test/app:{i}"]))
    kube.expire_continue = 1
    df = extract_cluster(str(kube.write_kubeconfig(tmp_path / "kc")))
    assert sorted(df.loc[df["kind"] == "Pod", "tag"]) == [str(i) for i in range(7)]
    assert any("continue=" in r for r in kube.requests)


def test_multiple_contexts_and_namespace_rbac(tmp_path: Path) -> None:
    with KubeAPIFixture() as a, KubeAPIFixture(allowed_namespaces=["team"]) as b:
        a.add("pods", pod("p", "team", ["reg.test/a:1"]))
        a.add("pods", pod("q", "elsewhere", ["reg.test/c:1"]))
        b.add("deployments", workload("Deployment", "d", "team", ["reg.test/b:1"]))
        config = write_kubeconfig(tmp_path / "kc", {"a": a, "b": b})
        both = extract_cluster(str(config), contexts=["a", "b"], namespaces=["team"])
        assert set(zip(both["context"], both["repository"], strict=True)) == {
            ("a", "a"),
            ("b", "b"),
        }
        with pytest.raises(ListFailed, match="context b, all namespaces"):
            extract_cluster(str(config), contexts=["b"])


@pytest.mark.parametrize("status", [401, 403, 500], ids=["401", "403", "500"])
def test_failures_fail_closed_naming_where(
    kube: KubeAPIFixture, tmp_path: Path, status: int
) -> None:
    kube.faults.append(Fault("/apis/apps/v1/statefulsets", status))
    with pytest.raises(ListFailed, match="kind StatefulSet") as info:
        extract_cluster(str(kube.write_kubeconfig(tmp_path / "kc", context="prod")))
    assert "context prod" in str(info.value)
    assert str(status) in str(info.value)


def test_timeout_fails_closed(
    kube: KubeAPIFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract_module, "REQUEST_TIMEOUT", (2, 0.5))
    kube.faults.append(Fault("/api/v1/pods", 200, delay=2))
    with pytest.raises(ListFailed, match="kind Pod"):
        extract_cluster(str(kube.write_kubeconfig(tmp_path / "kc")))


def test_unknown_context_is_a_config_error(kube: KubeAPIFixture, tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="nope"):
        extract_cluster(str(kube.write_kubeconfig(tmp_path / "kc")), contexts=["nope"])
