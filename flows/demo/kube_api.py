"""A local Kubernetes API fixture: serves real list JSON for the endpoints regsweep reads.

No kube-apiserver can be installed here, so tests and the demo talk to this server through
the official `kubernetes` client and a kubeconfig file, exactly as to a real cluster; and
kubectl accepts it too (tests/cluster/test_kubectl.py). It serves https with a fresh
self-signed certificate (the kubeconfig carries it; kubectl sends a bearer token over https
only), `limit`/`continue` pagination, equality label and field selectors, `/version`, `/api`,
`/apis` and per-group-version discovery, `Table` answers when asked (`as=Table`),
SelfSubjectAccessReview, bearer-token auth, namespace-scoped RBAC, and injected faults (any
status, a delay, an expired continue token).
"""

from __future__ import annotations

import base64
import gzip
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from flows.demo.loopback import LoopbackServer, QuietHandler, loopback_tls

# plural -> (group/version prefix, List kind)
RESOURCES: dict[str, tuple[str, str]] = {
    "pods": ("/api/v1", "PodList"),
    "replicationcontrollers": ("/api/v1", "ReplicationControllerList"),
    "secrets": ("/api/v1", "SecretList"),
    "configmaps": ("/api/v1", "ConfigMapList"),
    "deployments": ("/apis/apps/v1", "DeploymentList"),
    "replicasets": ("/apis/apps/v1", "ReplicaSetList"),
    "statefulsets": ("/apis/apps/v1", "StatefulSetList"),
    "daemonsets": ("/apis/apps/v1", "DaemonSetList"),
    "jobs": ("/apis/batch/v1", "JobList"),
    "cronjobs": ("/apis/batch/v1", "CronJobList"),
}
SHORT_NAMES = {
    "pods": ["po"],
    "replicationcontrollers": ["rc"],
    "configmaps": ["cm"],
    "deployments": ["deploy"],
    "replicasets": ["rs"],
    "statefulsets": ["sts"],
    "daemonsets": ["ds"],
    "cronjobs": ["cj"],
}


def _resource_list(prefix: str) -> dict[str, Any]:
    """The discovery document of one group version (`/api/v1`, `/apis/apps/v1`...), as
    kubectl reads it to map `kubectl get pods` to a URL."""
    group_version = prefix.removeprefix("/api/").removeprefix("/apis/")
    resources = [
        {
            "name": plural,
            "singularName": list_kind.removesuffix("List").lower(),
            "namespaced": True,
            "kind": list_kind.removesuffix("List"),
            "verbs": ["get", "list"],
            "shortNames": SHORT_NAMES.get(plural, []),
        }
        for plural, (at, list_kind) in RESOURCES.items()
        if at == prefix
    ]
    return {"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}


def _table(items: list[dict[str, Any]], listed: dict[str, Any]) -> dict[str, Any]:
    """A list as the meta.k8s.io/v1 Table kubectl asks for (`Accept: ...;as=Table`)."""
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": listed["metadata"],
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}
        ],
        "rows": [
            {
                "cells": [item["metadata"]["name"]],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                },
            }
            for item in items
        ],
    }


SELF_SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@dataclass
class Fault:
    """Answer requests whose path starts with `path` with `status` (after `delay` s)."""

    path: str
    status: int
    delay: float = 0.0
    times: int = -1  # -1 = always


@dataclass
class KubeAPIFixture(LoopbackServer):
    """One fake cluster. Add objects with `add`, then `start()`; `url` is its server."""

    token: str = "fixture-token"
    allowed_namespaces: list[str] | None = None  # None = cluster-wide RBAC
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    expire_continue: int = 0  # answer the next N continue tokens with 410 Gone
    denied_resources: set[str] = field(default_factory=set)  # SelfSubjectAccessReview says no
    tls: bool = True  # https, as kubectl sends a bearer token over https only
    _tls: tuple[ssl.SSLContext, bytes] | None = field(default=None, repr=False)

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        if self._tls is None:
            self._tls = loopback_tls()
        return self._tls[0]

    @property
    def ca_pem(self) -> bytes | None:
        """The certificate a client must trust (None over plain http)."""
        return self._tls[1] if self.tls_context() is not None and self._tls else None

    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, plural: str, obj: dict[str, Any]) -> None:
        """Store an object of resource `plural` (e.g. `pods`), as the API would return it."""
        if plural not in RESOURCES:
            raise ValueError(f"unknown resource {plural}")
        self.objects.setdefault(plural, []).append(obj)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fixture = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.0"  # the fixture answered HTTP/1.0 from the start

            def do_GET(self) -> None:
                status, body = fixture._answer(
                    self.path,
                    self.headers.get("Authorization", ""),
                    self.headers.get("Accept", ""),
                )
                self.reply_json(status, body)

            def do_POST(self) -> None:
                request = json.loads(self.read_body() or b"{}")
                status, body = fixture._review(
                    self.path, self.headers.get("Authorization", ""), request
                )
                self.reply_json(status, body)

        return Handler

    # -- serving -----------------------------------------------------------------------

    def _review(
        self, raw_path: str, authorization: str, request: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """SelfSubjectAccessReview: may the token `list` this resource here? The same RBAC
        as the list endpoints (`allowed_namespaces`) plus `denied_resources`."""
        if self.token and authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized")
        if urlsplit(raw_path).path.rstrip("/") != SELF_SUBJECT_ACCESS_REVIEWS:
            return 404, _status(404, f"the server could not find the requested resource {raw_path}")
        attributes = (request.get("spec") or {}).get("resourceAttributes") or {}
        namespace = attributes.get("namespace") or None
        allowed = attributes.get("resource") not in self.denied_resources and (
            self.allowed_namespaces is None or namespace in self.allowed_namespaces
        )
        return 201, {**request, "status": {"allowed": allowed}}

    def _answer(
        self, raw_path: str, authorization: str, accept: str = ""
    ) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(raw_path)
            fault = next((f for f in self.faults if path.startswith(f.path) and f.times), None)
            if fault is not None and fault.times > 0:
                fault.times -= 1
        if fault is not None:
            time.sleep(fault.delay)
            return fault.status, _status(fault.status, "injected fault")
        if self.token and authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized")
        if path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-regsweep-fixture"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            groups = [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                }
                for g in ("apps", "batch")
            ]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if path in ("/api/v1", "/apis/apps/v1", "/apis/batch/v1"):
            return 200, _resource_list(path)
        status, listed = self._list(path, query)
        if status == 200 and "as=Table" in accept:
            return status, _table(listed["items"], listed)
        return status, listed

    def _list(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        for plural, (prefix, list_kind) in RESOURCES.items():
            namespace: str | None
            if path == f"{prefix}/{plural}":
                namespace = None
            elif path.startswith(f"{prefix}/namespaces/") and path.endswith(f"/{plural}"):
                namespace = path[len(f"{prefix}/namespaces/") : -len(f"/{plural}")]
            else:
                continue
            if self.allowed_namespaces is not None and namespace not in self.allowed_namespaces:
                scope = f"namespace {namespace}" if namespace else "the cluster scope"
                return 403, _status(403, f"{plural} is forbidden at {scope}")
            items = [
                o
                for o in self.objects.get(plural, [])
                if (namespace is None or o["metadata"].get("namespace") == namespace)
                and _selected(o, query.get("labelSelector", ""), query.get("fieldSelector", ""))
            ]
            return self._page(items, list_kind, query)
        return 404, _status(404, f"the server could not find the requested resource {path}")

    def _page(
        self, items: list[dict[str, Any]], list_kind: str, query: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        start = 0
        if query.get("continue"):
            with self._lock:
                expire = self.expire_continue > 0
                if expire:
                    self.expire_continue -= 1
            if expire:
                return 410, _status(410, "The provided continue parameter is too old")
            start = int(base64.urlsafe_b64decode(query["continue"]).decode())
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start : start + limit]
        metadata: dict[str, Any] = {"resourceVersion": "1000"}
        if start + limit < len(items):
            metadata["continue"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            metadata["remainingItemCount"] = len(items) - start - limit
        return 200, {"kind": list_kind, "apiVersion": "v1", "metadata": metadata, "items": page}

    def write_kubeconfig(self, path: Path, context: str = "fixture") -> Path:
        """Write a kubeconfig with one context pointing at this fixture; return `path`."""
        return write_kubeconfig(path, {context: self})


def write_kubeconfig(path: Path, clusters: dict[str, KubeAPIFixture]) -> Path:
    """Write a kubeconfig with a context (and cluster and user) per fixture."""
    names = list(clusters)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": names[0],
        "clusters": [{"name": n, "cluster": _cluster(f)} for n, f in clusters.items()],
        "users": [{"name": n, "user": {"token": f.token}} for n, f in clusters.items()],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in names],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _cluster(fixture: KubeAPIFixture) -> dict[str, Any]:
    entry: dict[str, Any] = {"server": fixture.url}
    if fixture.ca_pem is not None:
        entry["certificate-authority-data"] = base64.b64encode(fixture.ca_pem).decode()
    return entry


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }


def _selected(obj: dict[str, Any], labels: str, fields: str) -> bool:
    own = obj["metadata"].get("labels") or {}
    for term in filter(None, labels.split(",")):
        key, _, value = term.partition("=")
        if own.get(key) != value:
            return False
    for term in filter(None, fields.split(",")):
        key, _, value = term.partition("=")
        node: Any = obj
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != value:
            return False
    return True


# -- real-shaped objects -------------------------------------------------------------------


def _meta(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "labels": labels or {},
    }


def pod(
    name: str,
    namespace: str,
    images: list[str],
    *,
    init_images: list[str] | None = None,
    ephemeral_images: list[str] | None = None,
    image_ids: list[str] | None = None,
    phase: str = "Running",
    owner_job: str | None = None,
) -> dict[str, Any]:
    """A Pod; `image_ids` become status.containerStatuses[].imageID; `owner_job` owns it."""
    containers = [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]
    statuses = [
        {"name": f"c{i}", "image": images[i], "imageID": iid, "ready": True, "restartCount": 0}
        for i, iid in enumerate(image_ids or [])
    ]
    spec: dict[str, Any] = {"containers": containers}
    if init_images:
        spec["initContainers"] = [
            {"name": f"i{i}", "image": im} for i, im in enumerate(init_images)
        ]
    if ephemeral_images:
        spec["ephemeralContainers"] = [
            {"name": f"e{i}", "image": im} for i, im in enumerate(ephemeral_images)
        ]
    metadata = _meta(name, namespace)
    if owner_job:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": owner_job, "controller": True}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": phase, "containerStatuses": statuses},
    }


def workload(
    kind: str, name: str, namespace: str, images: list[str], job_condition: str = ""
) -> dict[str, Any]:
    """A Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob or ReplicationController.

    `job_condition` (``Complete`` or ``Failed``) marks a Job as finished.
    """
    pod_spec = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}
    template = {"metadata": {"labels": {"app": name}}, "spec": pod_spec}
    if kind == "CronJob":
        spec: dict[str, Any] = {
            "schedule": "0 * * * *",
            "jobTemplate": {"spec": {"template": template}},
        }
    else:
        spec = {"template": template, "selector": {"matchLabels": {"app": name}}}
    api = {"Job": "batch/v1", "CronJob": "batch/v1", "ReplicationController": "v1"}
    obj: dict[str, Any] = {
        "apiVersion": api.get(kind, "apps/v1"),
        "kind": kind,
        "metadata": _meta(name, namespace),
        "spec": spec,
    }
    if job_condition:
        obj["status"] = {"conditions": [{"type": job_condition, "status": "True"}]}
    return obj


def helm_release_secret(
    release: str, namespace: str, revision: int, images: list[str], status: str = "superseded"
) -> dict[str, Any]:
    """A Helm 3 release Secret (type helm.sh/release.v1) with real encoding."""
    release_field = _helm_release_field(release, namespace, revision, images, status)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": _helm_meta(release, namespace, revision, status),
        # Secret data is base64 on the wire; Helm's payload is itself base64(gzip(json)).
        "data": {"release": base64.b64encode(release_field.encode()).decode()},
    }


def helm_release_configmap(
    release: str, namespace: str, revision: int, images: list[str], status: str = "superseded"
) -> dict[str, Any]:
    """A Helm 3 release stored by the ConfigMap driver (HELM_DRIVER=configmap)."""
    release_field = _helm_release_field(release, namespace, revision, images, status)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _helm_meta(release, namespace, revision, status),
        "data": {"release": release_field},
    }


def _helm_meta(release: str, namespace: str, revision: int, status: str) -> dict[str, Any]:
    return _meta(
        f"sh.helm.release.v1.{release}.v{revision}",
        namespace,
        {"owner": "helm", "name": release, "version": str(revision), "status": status},
    )


def _helm_release_field(
    release: str, namespace: str, revision: int, images: list[str], status: str
) -> str:
    """Helm's stored release: base64(gzip(JSON)) with the rendered manifest inside."""
    manifest = yaml.safe_dump_all(
        [workload("Deployment", f"{release}-{i}", namespace, [im]) for i, im in enumerate(images)]
    )
    body = {
        "name": release,
        "namespace": namespace,
        "version": revision,
        "info": {"status": status},
        "manifest": manifest,
    }
    return base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()
