"""The table of kinds regsweep reads: one row per kind, one loop reads them all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """How to list one kind and where its pod spec lives."""

    name: str
    api: str  # attribute of kubernetes.client: CoreV1Api, AppsV1Api, BatchV1Api
    plural: str  # list_<plural>_for_all_namespaces / list_namespaced_<plural>
    pod_spec: tuple[str, ...]


KINDS: tuple[Kind, ...] = (
    Kind("Pod", "CoreV1Api", "pod", ("spec",)),
    Kind(
        "ReplicationController", "CoreV1Api", "replication_controller", ("spec", "template", "spec")
    ),
    Kind("Deployment", "AppsV1Api", "deployment", ("spec", "template", "spec")),
    Kind("ReplicaSet", "AppsV1Api", "replica_set", ("spec", "template", "spec")),
    Kind("StatefulSet", "AppsV1Api", "stateful_set", ("spec", "template", "spec")),
    Kind("DaemonSet", "AppsV1Api", "daemon_set", ("spec", "template", "spec")),
    Kind("Job", "BatchV1Api", "job", ("spec", "template", "spec")),
    Kind("CronJob", "BatchV1Api", "cron_job", ("spec", "jobTemplate", "spec", "template", "spec")),
)

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
STATUS_LISTS = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
