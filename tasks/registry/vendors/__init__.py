"""What a registry's vendor does its own way, one module per backend.

Reads (manifests, configs, referrers) are the OCI distribution API's everywhere. Listing,
protections, deletes and push times go through the vendor's API where the OCI one does not
serve or is much slower. `base.Vendor` is the OCI distribution API (Distribution); each
backend's class overrides only what its vendor does instead or in addition, and carries its
name, how its hosts are detected, its default API and the texts `check` and the report print:

- `github.GitHub`: deletes package versions (ghcr.io answers 405), restores them;
- `gitlab.GitLab`: lists groups, deletes tags fast, protected tags (with `registry.api`);
- `dockerhub.DockerHub`: namespaces, immutable tags, tags deleted through the Hub API, pull
  rate limits;
- `ecr.Ecr`: DescribeRepositories, BatchDeleteImage, the archive class;
- `acr.Acr`: locked manifests and tags;
- `harbor.Harbor`: immutable tags (configured: its host says nothing).

`tasks.core.registry_kinds.REGISTRY_KINDS` is the one table of kinds; a new backend is its
module here and one line there. `rest.VendorHttp` is the base of the vendors' REST clients.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks.core.config import Config
from tasks.core.registry_kinds import REGISTRY_KINDS
from tasks.registry.vendors.base import Vendor

if TYPE_CHECKING:
    from tasks.registry.client import RegistryClient


def vendor_class(kind: str) -> type[Vendor]:
    """The class that speaks for `kind` (its module imported only now)."""
    module, _, name = REGISTRY_KINDS[kind].partition(":")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, type) and issubclass(found, Vendor) and found.name == kind, kind
    return found


@dataclass(frozen=True)
class RegistryKind:
    """The kind the configuration names or the host implies, and which API deletes."""

    name: str  # a key of REGISTRY_KINDS
    how: str  # "configured", "the default" or "detected from <host>"
    api: str  # the vendor API's URL, empty where the OCI API serves

    @property
    def vendor(self) -> type[Vendor]:
        """The class that speaks for this registry (the OCI one where the kind cannot)."""
        named = vendor_class(self.name)
        return named if named.serves(self.api) else Vendor

    @property
    def lists_through(self) -> str:
        return self.vendor.lists_through(self.api)

    @property
    def deletes_through(self) -> str:
        return self.vendor.deletes_through(self.api)

    def describe(self) -> str:
        text = f"registry kind {self.name} ({self.how}): deletes through {self.deletes_through}"
        advice = vendor_class(self.name).advice(self.api)
        return f"{text}; {advice}" if advice else text

    def attach_to(self, client: RegistryClient) -> Vendor:
        """The vendor for `client`, made the one it uses."""
        vendor = self.vendor(client, self.api)
        client.vendor = vendor
        return vendor


def registry_kind(config: Config) -> RegistryKind:
    """The registry's kind: `registry.kind`, else detected from its host (in the table's
    order), else Distribution."""
    host = config.registry.host
    name, how = config.registry.kind or "", "configured"
    if not name:
        name, how = "distribution", "the default"
        for kind in REGISTRY_KINDS:
            pattern = vendor_class(kind).detect
            if pattern is not None and pattern.search(host):
                name, how = kind, f"detected from {host}"
                break
    return RegistryKind(name, how, vendor_class(name).api_for(config.registry.api or "", host))
