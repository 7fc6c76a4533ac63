"""What the configured credentials may do in each context: `list` on every kind the cluster
stage reads (and Helm's release Secrets), asked with SelfSubjectAccessReview. Reads nothing
else and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import kubernetes
import urllib3

from tasks.cluster.errors import ListFailed
from tasks.cluster.extract import api_clients
from tasks.cluster.kinds import KINDS

_GROUPS = {"CoreV1Api": "", "AppsV1Api": "apps", "BatchV1Api": "batch"}
RESOURCES: tuple[tuple[str, str], ...] = (
    *((_GROUPS[k.api], k.plural.replace("_", "") + "s") for k in KINDS),
    ("", "secrets"),  # Helm release history
)
"""(API group, resource) of everything the cluster stage lists."""


@dataclass(frozen=True)
class ContextAccess:
    """One context: the resources (`group/resource in namespace`) it may not list."""

    context: str
    denied: list[str]


def list_access(
    kubeconfig: str | None, contexts: list[str], namespaces: list[str]
) -> list[ContextAccess]:
    """Ask every context whether it may list every resource (in each of `namespaces`, or
    cluster-wide when empty). Raises a `ClusterError` when a context does not answer."""
    out = []
    for context, api_client in api_clients(kubeconfig, contexts):
        api = kubernetes.client.AuthorizationV1Api(api_client)
        denied = []
        for namespace in namespaces or [""]:
            for group, resource in RESOURCES:
                body = kubernetes.client.V1SelfSubjectAccessReview(
                    spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
                        resource_attributes=kubernetes.client.V1ResourceAttributes(
                            verb="list", group=group, resource=resource, namespace=namespace
                        )
                    )
                )
                try:
                    review = api.create_self_subject_access_review(body, _request_timeout=30)
                except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as exc:
                    reason = getattr(exc, "reason", None) or type(exc).__name__
                    raise ListFailed(context, namespace, "SelfSubjectAccessReview", reason) from exc
                if review.status is None or not review.status.allowed:
                    where = f" in {namespace}" if namespace else ""
                    denied.append(f"{group + '/' if group else ''}{resource}{where}")
        out.append(ContextAccess(context, denied))
    return out
