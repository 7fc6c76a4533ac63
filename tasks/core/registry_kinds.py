"""The registry kinds regsweep knows (`registry.kind`), each mapped to the class that
speaks for it: the one table a new backend adds a line to.

A class is named by its dotted path, not imported: the configuration (this floor)
validates `registry.kind` against the table's keys without loading any backend, and the
registry stage imports only the configured one (boto3 only for ECR). The order is the order
of detection from the registry's host (`tasks.registry.vendors.registry_kind`).
"""

from __future__ import annotations

REGISTRY_KINDS: dict[str, str] = {
    "github": "tasks.registry.vendors.github:GitHub",
    "gitlab": "tasks.registry.vendors.gitlab:GitLab",
    "dockerhub": "tasks.registry.vendors.dockerhub:DockerHub",
    "ecr": "tasks.registry.vendors.ecr:Ecr",
    "acr": "tasks.registry.vendors.acr:Acr",
    "harbor": "tasks.registry.vendors.harbor:Harbor",
    "distribution": "tasks.registry.vendors.base:Vendor",
}
"""kind -> "module:Class"; the class's `name` is its kind."""
