"""The Kubernetes deployment files: the RBAC grants exactly what the cluster stage asks the
API for, and the job template renders, through prefect-kubernetes' own worker configuration,
into a Job the Kubernetes client accepts."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient
from prefect.client.schemas.objects import FlowRun
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

from flows.demo.kube_api import KubeAPIFixture
from tasks.cluster.extract import extract_cluster

DEPLOYMENTS = Path(__file__).resolve().parents[2] / "deployments"


def granted() -> set[tuple[str, str, str]]:
    documents = list(yaml.safe_load_all((DEPLOYMENTS / "kubernetes" / "rbac.yaml").read_text()))
    role = next(d for d in documents if d["kind"] == "ClusterRole")
    binding = next(d for d in documents if d["kind"] == "ClusterRoleBinding")
    account = next(d for d in documents if d["kind"] == "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def requested(paths: list[str]) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of each request the cluster stage sent (all are GETs of
    collections, i.e. `list`)."""
    out = set()
    for path in paths:
        path = path.split("?")[0]
        match = re.fullmatch(r"/api/v1(?:/namespaces/[^/]+)?/([a-z]+)", path) or re.fullmatch(
            r"/apis/([a-z.]+)/v1(?:/namespaces/[^/]+)?/([a-z]+)", path
        )
        if match is None:
            continue  # discovery (/version, /api, /apis) needs no grant
        group, resource = ("", match[1]) if path.startswith("/api/") else (match[1], match[2])
        out.add((group, resource, "list"))
    return out


def test_rbac_grants_exactly_what_the_cluster_stage_reads(
    kube: KubeAPIFixture, tmp_path: Path
) -> None:
    config = kube.write_kubeconfig(tmp_path / "kubeconfig")
    extract_cluster(str(config))
    extract_cluster(str(config), namespaces=["team"])
    assert requested(kube.requests) == granted()


def test_job_template_renders_a_valid_job_for_the_kubernetes_deployment() -> None:
    template = json.loads((DEPLOYMENTS / "kubernetes" / "job-template.json").read_text())
    deployments = yaml.safe_load((DEPLOYMENTS / "prefect.yaml").read_text())["deployments"]
    deployment = next(d for d in deployments if d["name"] == "nightly-cleanup-kubernetes")
    variables: dict[str, Any] = dict(deployment["work_pool"]["job_variables"])
    variables["image"] = "registry.example/regsweep:1.0"  # {{ $REGSWEEP_IMAGE }} at deploy
    variables["env"] = {"REGSWEEP_TASK_RUNNER": "dask=tcp://dask-scheduler.regsweep:8786"}

    configuration = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(template, variables)
    )
    flow_run = FlowRun(id=uuid.uuid4(), name="nightly", flow_id=uuid.uuid4())
    configuration.prepare_for_flow_run(flow_run)
    manifest = configuration.job_manifest
    assert "{{" not in json.dumps(manifest), "a template variable was left unfilled"

    # Through the client's own models and back: a field Kubernetes does not know (a typo)
    # would be dropped and the two would differ. (The public deserialize() changed signature
    # across client versions; this private one has not.) prefect-kubernetes insists on
    # parallelism/completions in the pod spec, which Kubernetes ignores.
    api = ApiClient()
    job = api._ApiClient__deserialize(manifest, "V1Job")  # type: ignore[attr-defined]
    expected = json.loads(json.dumps(manifest))
    for field in ("parallelism", "completions"):
        del expected["spec"]["template"]["spec"][field]
    assert api.sanitize_for_serialization(job) == expected
    assert job.kind == "Job" and job.metadata.namespace == "regsweep"
    pod = job.spec.template.spec
    assert pod.service_account_name == "regsweep"  # the account rbac.yaml binds
    (container,) = pod.containers
    assert container.image == "registry.example/regsweep:1.0"
    env = {e.name: e.value for e in container.env}
    assert env["REGSWEEP_TASK_RUNNER"] == "dask=tcp://dask-scheduler.regsweep:8786"
    assert env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
    mounts = {m.name: m.mount_path for m in container.volume_mounts}
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["config"].config_map.name == "regsweep-config"
    assert volumes["home"].persistent_volume_claim.claim_name == "regsweep-home"
    assert mounts == {"config": "/etc/regsweep", "home": "/home/regsweep/.regsweep"}
    assert deployment["parameters"]["config_path"].startswith(mounts["config"])


def test_the_pulls_service_example_is_valid_and_only_the_registry_reaches_it() -> None:
    """deployments/pulls/kubernetes.yaml through the client's own models and back (a field
    Kubernetes does not know would be dropped and the two would differ), and the
    NetworkPolicy the README relies on: a stray POST to /events ends the records' uptime,
    so only the registry's pods may reach the service's port."""
    text = (DEPLOYMENTS / "pulls" / "kubernetes.yaml").read_text()
    documents = list(yaml.safe_load_all(text.replace("${REGSWEEP_IMAGE}", "reg.example/rs:1")))
    api = ApiClient()
    models = {}
    for document in documents:
        model = api._ApiClient__deserialize(document, f"V1{document['kind']}")  # type: ignore[attr-defined]
        assert api.sanitize_for_serialization(model) == document
        models[document["kind"]] = model
    assert set(models) == {"Secret", "Deployment", "Service", "NetworkPolicy"}
    pods = models["Deployment"].spec.template.metadata.labels
    (container,) = models["Deployment"].spec.template.spec.containers
    (port,) = container.ports
    assert models["Service"].spec.selector == pods
    policy = models["NetworkPolicy"].spec
    assert policy.pod_selector.match_labels == pods and policy.policy_types == ["Ingress"]
    (rule,) = policy.ingress
    assert [p.port for p in rule.ports] == [port.container_port]
    assert [peer.pod_selector.match_labels for peer in rule._from] == [{"app": "registry"}]
