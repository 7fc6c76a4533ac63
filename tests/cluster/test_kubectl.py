"""A real client is the judge of the Kubernetes API fixture: kubectl (Debian's
`kubernetes-client`, installed by `make test`) lists every kind the cluster stage reads from
it, over https with the kubeconfig's bearer token, as it would from a real cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from flows.demo.kube_api import KubeAPIFixture, helm_release_secret, pod, workload
from tasks.cluster.extract import extract_cluster
from tasks.cluster.kinds import KINDS

KIND_RESOURCES = {kind.name: kind.plural.replace("_", "") + "s" for kind in KINDS}


def kubectl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which(os.environ.get("KUBECTL", "kubectl"))  # KUBECTL: another build
    assert binary is not None, "kubectl is missing: `make system-packages` installs it"
    return subprocess.run(
        [binary, "--kubeconfig", str(config), *args], capture_output=True, text=True, timeout=60
    )


def test_kubectl_lists_every_kind_the_cluster_stage_reads(tmp_path: Path) -> None:
    kube = KubeAPIFixture()
    for kind, resource in KIND_RESOURCES.items():
        if kind == "Pod":
            kube.add(resource, pod("one-pod", "prod", ["reg.test/app:1"]))
        else:
            kube.add(resource, workload(kind, f"one-{resource}", "prod", ["reg.test/app:2"]))
    kube.add("secrets", helm_release_secret("web", "prod", 1, ["reg.test/app:3"]))
    with kube:
        config = kube.write_kubeconfig(tmp_path / "kubeconfig")
        assert kube.url.startswith("https://")
        for kind, resource in KIND_RESOURCES.items():
            done = kubectl(config, "get", resource, "--all-namespaces", "-o", "name")
            assert done.returncode == 0, (kind, done.stderr)
            expected = "one-pod" if kind == "Pod" else f"one-{resource}"
            listed = done.stdout.split()  # e.g. deployment.apps/one-deployments
            assert len(listed) == 1 and listed[0].endswith(f"/{expected}"), (kind, listed)
        table = kubectl(config, "get", "pods", "-A")
        assert table.returncode == 0 and "prod" in table.stdout and "one-pod" in table.stdout
        secrets = kubectl(config, "get", "secrets", "-n", "prod", "-o", "name")
        assert secrets.stdout.strip() == "secret/sh.helm.release.v1.web.v1"
        # and our own client reads the same fixture, over the same https, the same objects
        rows = extract_cluster(str(config), [], [], helm_revisions=5)
        assert set(rows["image"]) == {"reg.test/app:1", "reg.test/app:2", "reg.test/app:3"}


def test_kubectl_is_refused_without_the_token(tmp_path: Path) -> None:
    with KubeAPIFixture(token="the-right-one") as kube:
        config = kube.write_kubeconfig(tmp_path / "kubeconfig")
        config.write_text(config.read_text().replace("the-right-one", "a-wrong-one"))
        done = kubectl(config, "get", "pods", "-A")
        assert done.returncode != 0
        assert "Unauthorized" in done.stderr or "must be logged in" in done.stderr
