"""Errors of the cluster stage; `kubernetes.ApiException` and urllib3 errors are translated
where the client is called (`extract.py`), nowhere else::

    ClusterError             the cluster stage is incomplete: no deletion may happen
    ├── ClusterConfigError   kubeconfig missing, unreadable, or a context that does not exist
    └── ListFailed           a list call failed (401/403/5xx/timeout); names context,
                             namespace and kind
"""

from __future__ import annotations


class ClusterError(Exception):
    """Base class: the set of images in use is unknown, so nothing may be deleted."""


class ClusterConfigError(ClusterError):
    """The kubeconfig (or in-cluster configuration) cannot be used."""


class ListFailed(ClusterError):
    """Listing one kind failed."""

    def __init__(self, context: str, namespace: str, kind: str, reason: str) -> None:
        self.context = context
        self.namespace = namespace
        self.kind = kind
        where = f"namespace {namespace}" if namespace else "all namespaces"
        super().__init__(f"context {context}, {where}, kind {kind}: {reason}")
