"""Cluster extraction: every image a cluster runs, may restart, or may roll back to.

``images`` — one row per container image reference found
    context     str   kubeconfig context (``in-cluster`` inside a pod)
    namespace   str
    kind        str   Pod, Deployment, ..., or the kind inside a Helm release manifest
    object      str   object name (Helm: ``<release>@<revision>/<object>``)
    container   str   container name
    image       str   the reference as written (spec) or reported (status imageID)
    registry    str   normalised registry host of `image` (``docker.io`` for Docker Hub)
    repository  str   normalised repository, e.g. ``library/nginx``
    tag         str   tag, empty when the reference has only a digest
    digest      str   digest when known (``name@digest`` or a status imageID), else empty
    source      str   ``spec``, ``status`` or ``helm``
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pandas as pd
import urllib3

from tasks.cluster.errors import ClusterConfigError, ListFailed
from tasks.cluster.helm import decode_release, manifest_images
from tasks.cluster.kinds import CONTAINER_LISTS, KINDS, STATUS_LISTS, Kind
from tasks.core.frames import typed_frame
from tasks.core.reference import parse_reference

log = logging.getLogger(__name__)

IMAGE_COLUMNS = {
    name: "str"
    for name in (
        "context",
        "namespace",
        "kind",
        "object",
        "container",
        "image",
        "registry",
        "repository",
        "tag",
        "digest",
        "source",
    )
}
PAGE_SIZE = 500
RESTARTS_ON_410 = 3
REQUEST_TIMEOUT = (10, 60)

Lister = Callable[..., Any]


def extract_cluster(
    kubeconfig: str | None = None,
    contexts: list[str] | None = None,
    namespaces: list[str] | None = None,
    helm_revisions: int = 5,
    keep_finished_jobs: bool = True,
) -> pd.DataFrame:
    """Return every image in use in the selected contexts and namespaces (schema above).

    With `keep_finished_jobs` false, a Job that has finished (condition Complete or Failed) and
    the finished Pods it owns are not counted as uses; a CronJob still counts for its template.

    Raises `ClusterConfigError` when the kubeconfig cannot be used and `ListFailed` when any
    list call fails: a partial answer would let regsweep delete an image in use.
    """
    rows: list[dict[str, str]] = []
    for context, api_client in api_clients(kubeconfig, contexts or []):
        with api_client:
            for kind in KINDS:
                for namespace, item in _list_all(api_client, context, kind, namespaces or []):
                    if keep_finished_jobs or not _finished_job_object(kind, item):
                        rows.extend(_object_rows(context, namespace, kind, item))
            rows.extend(_helm_rows(api_client, context, namespaces or [], helm_revisions))
    return typed_frame(rows, IMAGE_COLUMNS)


def api_clients(
    kubeconfig: str | None, contexts: list[str]
) -> Iterator[tuple[str, kubernetes.client.ApiClient]]:
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException as exc:
            raise ClusterConfigError(f"in-cluster configuration: {exc}") from exc
        yield "in-cluster", kubernetes.client.ApiClient(configuration)
        return
    path = str(Path(path or "~/.kube/config").expanduser())
    try:
        available, _active = kubernetes.config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, OSError) as exc:
        hint = (
            "; without a cluster, set kubernetes.enabled: false (images in use are then "
            "not checked)"
        )
        raise ClusterConfigError(f"kubernetes.kubeconfig {path}: {exc}{hint}") from exc
    names = [c["name"] for c in available]
    missing = [c for c in contexts if c not in names]
    if missing:
        raise ClusterConfigError(
            f"kubernetes.contexts: {', '.join(missing)} not in {path} (has: {', '.join(names)})"
        )
    for name in contexts or names:
        try:
            client = kubernetes.config.new_client_from_config(config_file=path, context=name)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException as exc:
            raise ClusterConfigError(f"context {name} in {path}: {exc}") from exc
        yield name, client


def _list_all(
    api_client: kubernetes.client.ApiClient,
    context: str,
    kind: Kind,
    namespaces: list[str],
    label_selector: str = "",
    field_selector: str = "",
) -> Iterator[tuple[str, dict[str, Any]]]:
    api = getattr(kubernetes.client, kind.api)(api_client)
    scopes: list[str] = namespaces or [""]
    for namespace in scopes:
        if namespace:
            lister: Lister = getattr(api, f"list_namespaced_{kind.plural}")
            call: Lister = lambda lst=lister, ns=namespace, **kw: lst(ns, **kw)  # noqa: E731
        else:
            call = getattr(api, f"list_{kind.plural}_for_all_namespaces")
        for item in _paginate(call, context, namespace, kind.name, label_selector, field_selector):
            yield str(item.get("metadata", {}).get("namespace", namespace)), item


def _paginate(
    call: Lister,
    context: str,
    namespace: str,
    kind: str,
    label_selector: str,
    field_selector: str,
) -> Iterator[dict[str, Any]]:
    restarts = 0
    while True:
        items: list[dict[str, Any]] = []
        token = ""
        try:
            while True:
                kwargs: dict[str, Any] = {
                    "limit": PAGE_SIZE,
                    "_preload_content": False,
                    "_request_timeout": REQUEST_TIMEOUT,
                }
                if token:
                    kwargs["_continue"] = token
                if label_selector:
                    kwargs["label_selector"] = label_selector
                if field_selector:
                    kwargs["field_selector"] = field_selector
                response = call(**kwargs)
                body = json.loads(response.data)
                items.extend(body.get("items") or [])
                token = (body.get("metadata") or {}).get("continue") or ""
                if not token:
                    yield from items
                    return
        except kubernetes.client.ApiException as exc:
            if exc.status == 410 and restarts < RESTARTS_ON_410:
                # The continue token expired: the list must restart from the beginning.
                restarts += 1
                log.info("context %s kind %s: continue token expired, restarting", context, kind)
                continue
            raise ListFailed(context, namespace, kind, f"HTTP {exc.status} {exc.reason}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ListFailed(context, namespace, kind, f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise ListFailed(context, namespace, kind, f"answer is not JSON: {exc}") from exc


def _finished_job_object(kind: Kind, item: dict[str, Any]) -> bool:
    """A Job that completed or failed, or a finished Pod owned by a Job."""
    status = item.get("status") or {}
    if kind.name == "Job":
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
    if kind.name == "Pod":
        owners = (item.get("metadata") or {}).get("ownerReferences") or []
        owned_by_job = any(o.get("kind") == "Job" for o in owners)
        return owned_by_job and status.get("phase") in ("Succeeded", "Failed")
    return False


def _row(
    context: str, namespace: str, kind: str, obj: str, container: str, image: str, source: str
) -> dict[str, str] | None:
    try:
        ref = parse_reference(image)
    except ValueError:
        log.warning(
            "context %s %s/%s %s: unparseable image %r", context, namespace, kind, obj, image
        )
        return None
    return {
        "context": context,
        "namespace": namespace,
        "kind": kind,
        "object": obj,
        "container": container,
        "image": image,
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": ref.tag if source != "status" else "",
        "digest": ref.digest,
        "source": source,
    }


def _object_rows(
    context: str, namespace: str, kind: Kind, item: dict[str, Any]
) -> Iterator[dict[str, str]]:
    name = str(item.get("metadata", {}).get("name", ""))
    spec: Any = item
    for key in kind.pod_spec:
        spec = spec.get(key) if isinstance(spec, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    status = (item.get("status") or {}) if kind.name == "Pod" else {}
    for container, image, source in _container_images(spec, status):
        row = _row(context, namespace, kind.name, name, container, image, source)
        if row is not None:
            yield row


def _container_images(
    spec: dict[str, Any], status: dict[str, Any]
) -> Iterator[tuple[str, str, str]]:
    """Yield (container, image, source) from a pod spec and, for a Pod, its status."""
    for list_name in CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            image = container.get("image")
            if isinstance(image, str) and image:
                yield str(container.get("name", "")), image, "spec"
    for list_name in STATUS_LISTS:
        for container in status.get(list_name) or []:
            image_id = container.get("imageID") or ""
            # Only `name@digest` identifies a manifest; a bare `sha256:...` is a local image ID.
            if "@" in image_id:
                yield str(container.get("name", "")), image_id, "status"


def _helm_rows(
    api_client: kubernetes.client.ApiClient, context: str, namespaces: list[str], revisions: int
) -> list[dict[str, str]]:
    if revisions <= 0:
        return []
    releases: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    secrets = Kind("Secret", "CoreV1Api", "secret", ())
    config_maps = Kind("ConfigMap", "CoreV1Api", "config_map", ())
    sources = [
        (secrets, "type=helm.sh/release.v1", True),
        (config_maps, "", False),
    ]
    for kind, field_selector, double_encoded in sources:
        for namespace, item in _list_all(
            api_client, context, kind, namespaces, "owner=helm", field_selector
        ):
            payload = (item.get("data") or {}).get("release")
            if not isinstance(payload, str):
                continue
            try:
                if double_encoded:
                    payload = base64.b64decode(payload).decode()
                release = decode_release(payload)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ListFailed(
                    context,
                    namespace,
                    kind.name,
                    f"{item['metadata'].get('name')}: undecodable release: {exc}",
                ) from exc
            key = (namespace, str(release.get("name", "")))
            releases.setdefault(key, []).append((int(release.get("version", 0)), release))
    rows: list[dict[str, str]] = []
    for (namespace, name), versions in releases.items():
        for version, release in sorted(versions, key=lambda v: v[0], reverse=True)[:revisions]:
            for kind_name, obj, container, image in manifest_images(release.get("manifest", "")):
                row = _row(
                    context,
                    namespace,
                    kind_name,
                    f"{name}@{version}/{obj}",
                    container,
                    image,
                    "helm",
                )
                if row is not None:
                    rows.append(row)
    return rows
