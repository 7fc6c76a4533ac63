"""Cluster extraction at scale vs a raw JSON listing of the same objects, in one run.

10,000 Pods, 2,000 workloads (all seven workload kinds) and 500 Helm release revisions are
served by the Kubernetes API fixture. The reference lists exactly the endpoints our
extraction lists (same page size, same selectors) with urllib3 — the HTTP library under the
official client — and only decodes the JSON, over the same https with the fixture's CA
(the fixture moved to https and the reference, still on http, crashed for a wave). Target:
ours <= 2x the raw listing. REGSWEEP_BENCH_SMOKE=1: a few hundred objects.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import urllib3
from _common import SMOKE, Results, peak_rss_mib, timed

from flows.demo.kube_api import KubeAPIFixture, helm_release_secret, pod, workload
from tasks.cluster import extract as extract_module
from tasks.cluster.extract import extract_cluster
from tasks.cluster.kinds import KINDS

PODS = 200 if SMOKE else 10_000
WORKLOADS = 50 if SMOKE else 2_000
RELEASES, REVISIONS = (5, 5) if SMOKE else (100, 5)
NAMESPACES = 20
WORKLOAD_KINDS = (
    ("Deployment", "deployments"),
    ("ReplicaSet", "replicasets"),
    ("StatefulSet", "statefulsets"),
    ("DaemonSet", "daemonsets"),
    ("Job", "jobs"),
    ("CronJob", "cronjobs"),
    ("ReplicationController", "replicationcontrollers"),
)
DIGEST = "sha256:" + "c" * 64


def seed(kube: KubeAPIFixture) -> None:
    for i in range(PODS):
        ns = f"ns{i % NAMESPACES}"
        images = [f"reg.example/team/app{i % 300}:b{i}", f"reg.example/team/sidecar:{i % 7}"]
        ids = [f"docker-pullable://reg.example/team/app{i % 300}@{DIGEST}"]
        kube.add("pods", pod(f"p{i}", ns, images, init_images=["busybox:1"], image_ids=ids))
    for i in range(WORKLOADS):
        kind, plural = WORKLOAD_KINDS[i % len(WORKLOAD_KINDS)]
        image = f"reg.example/team/app{i % 300}:w{i}"
        kube.add(plural, workload(kind, f"w{i}", f"ns{i % NAMESPACES}", [image]))
    for r in range(RELEASES):
        for v in range(1, REVISIONS + 1):
            images = [f"reg.example/team/app{r}:h{v}", f"reg.example/team/db{r}:h{v}"]
            kube.add("secrets", helm_release_secret(f"rel{r}", f"ns{r % NAMESPACES}", v, images))


def raw_listing(kube: KubeAPIFixture) -> int:
    """GET every list endpoint our extraction reads, page by page; decode JSON only."""
    ca = kube.ca_pem
    http = urllib3.PoolManager(
        maxsize=1,
        cert_reqs="CERT_REQUIRED" if ca else "CERT_NONE",
        ca_cert_data=ca.decode() if ca else None,
    )
    headers = {"Authorization": f"Bearer {kube.token}"}
    prefixes = {
        "CoreV1Api": "/api/v1",
        "AppsV1Api": "/apis/apps/v1",
        "BatchV1Api": "/apis/batch/v1",
    }
    endpoints = [(f"{prefixes[k.api]}/{k.plural.replace('_', '')}s", {}) for k in KINDS]
    endpoints += [
        (
            "/api/v1/secrets",
            {"labelSelector": "owner=helm", "fieldSelector": "type=helm.sh/release.v1"},
        ),
        ("/api/v1/configmaps", {"labelSelector": "owner=helm"}),
    ]
    items = 0
    for path, selectors in endpoints:
        token = ""
        while True:
            fields = {"limit": str(extract_module.PAGE_SIZE), **selectors}
            if token:
                fields["continue"] = token
            response = http.request("GET", kube.url + path, fields=fields, headers=headers)
            body = json.loads(response.data)
            items += len(body["items"])
            token = body["metadata"].get("continue", "")
            if not token:
                break
    return items


def main() -> None:
    results = Results()
    seconds: dict[str, float] = {}
    with KubeAPIFixture() as kube, tempfile.TemporaryDirectory() as tmp:
        seed(kube)
        kubeconfig = str(kube.write_kubeconfig(Path(tmp) / "kubeconfig"))
        raw_listing(kube)  # warm both paths once (imports, connection setup)
        extract_cluster(kubeconfig)
        with timed("raw JSON listing", seconds):
            items = raw_listing(kube)
        with timed("regsweep extract_cluster", seconds):
            frame = extract_cluster(kubeconfig)
    print(f"objects listed: {items}; image rows extracted: {len(frame)}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    ratio = seconds["regsweep extract_cluster"] / seconds["raw JSON listing"]
    results.add("cluster_scan_vs_raw_listing", ratio, "<=", 2.0)
    results.exit()


if __name__ == "__main__":
    main()
