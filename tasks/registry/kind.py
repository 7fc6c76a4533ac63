"""Which registry this is, and so which API lists and deletes (`registry.kind`).

Reads (manifests, configs, referrers) are the OCI distribution API's everywhere. Deletion
goes through the vendor's API where the OCI one does not serve or is much slower: GitHub
Packages (ghcr.io) answers DELETE of a manifest with 405, its REST API deletes package
versions (`tasks.registry.github`); GitLab deletes a tag in a fraction of a second through
its API where the registry API took minutes (`tasks.registry.gitlab`), lists repositories
where GitLab.com serves no catalog, and says which tags are protected; ECR deletes through
`BatchDeleteImage` and keeps images in its archive storage class (`tasks.registry.ecr`).
ACR deletes through the OCI API, and its locked manifests and tags (`deleteEnabled:
false`, read from its `/acr/v1` metadata API on the registry's own host) are kept
(`tasks.registry.acr`). Harbor (configured: its host says nothing) deletes through the
OCI API and its immutable tags are kept (`tasks.registry.harbor`). Docker Hub lists
namespaces, keeps its immutable tags and deletes tags through its Hub API, and its scans
spare manifest GETs, which its pull rate limit counts (`tasks.registry.dockerhub`).
`tasks.registry.stage.vendor_for` turns the kind into the code that does all that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.core.config import Config
from tasks.core.reference import registry_host

DEFAULT_API = {"github": "https://api.github.com", "dockerhub": "https://hub.docker.com"}
GITLAB_COM_API = "https://gitlab.com/api/v4"  # registry.gitlab.com; self-managed: registry.api
VENDOR_APIS = ("github", "gitlab", "ecr", "dockerhub")  # kinds with an API besides the OCI one
_DETECT = (
    ("github", re.compile(r"^ghcr\.io(:443)?$")),
    ("gitlab", re.compile(r"(^registry\.gitlab\.com$|gitlab)")),
    ("dockerhub", re.compile(r"(^|\.)docker\.io(:443)?$")),
    ("ecr", re.compile(r"^\d+\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(:443)?$")),
    ("acr", re.compile(r"\.azurecr\.(io|cn|us)(:443)?$")),
)


@dataclass(frozen=True)
class RegistryKind:
    """The kind the configuration names or the host implies, and which API deletes."""

    name: str  # distribution | github | gitlab | dockerhub | ecr | acr | harbor
    how: str  # "configured" or "detected from <host>"
    api: str  # the vendor API's URL, empty where the OCI API deletes

    @property
    def lists_through(self) -> str:
        """Where the repositories come from (tags and manifests: the OCI API everywhere)."""
        if self.name == "gitlab" and self.api:
            return f"GitLab's registry API, by group ({self.api})"
        if self.name == "ecr":
            return "ECR's DescribeRepositories"
        if self.name == "dockerhub":
            return f"Docker Hub's Hub API, by namespace ({self.api})"
        return "the OCI API"

    @property
    def deletes_through(self) -> str:
        if self.name == "github":
            return f"GitHub's packages REST API ({self.api})"
        if self.name == "ecr":
            return "ECR's BatchDeleteImage (boto3; AWS credentials the AWS way)"
        if self.name == "dockerhub":
            return (
                f"Docker Hub's Hub API ({self.api}): each image's tags; the untagged manifest "
                "is left to Docker Hub"
            )
        if self.name == "gitlab" and self.api:
            return (
                f"GitLab's registry API for the tags ({self.api}), then the OCI API for the "
                "untagged manifest"
            )
        return "the OCI distribution API (DELETE /v2/<name>/manifests/<digest>)"

    def describe(self) -> str:
        text = f"registry kind {self.name} ({self.how}): deletes through {self.deletes_through}"
        if self.name == "gitlab" and not self.api:
            text += "; set registry.api (https://<gitlab>/api/v4) to use GitLab's API"
        return text


def registry_kind(config: Config) -> RegistryKind:
    """The registry's kind: `registry.kind`, else detected from its host."""
    host = registry_host(config.registry.url)
    name: str = config.registry.kind or ""
    how = "configured"
    if not name:
        name, how = "distribution", "the default"
        for kind, pattern in _DETECT:
            if pattern.search(host):
                name, how = kind, f"detected from {host}"
                break
    api = config.registry.api or DEFAULT_API.get(name, "")
    if name == "gitlab" and not api and host == "registry.gitlab.com":
        api = GITLAB_COM_API
    return RegistryKind(name, how, api.rstrip("/") if name in VENDOR_APIS else "")
