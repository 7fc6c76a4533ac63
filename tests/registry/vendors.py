"""Shared by the vendor backend tests: images pushed straight to the real registry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
import yaml

from flows.demo.images import push_image
from tasks.registry.client import RegistryClient
from tests.servers.http_proxy import RegistryProxy

OLD = datetime.now(UTC) - timedelta(days=30)


def push(
    url: str,
    images: dict[str, list[str]],
    *,
    created: datetime = OLD,
    labels: dict[str, dict[str, str]] | None = None,
) -> dict[str, str]:
    """Push one image per `repository:name` key, with the tags given (and the config labels
    `labels` gives that key); name -> digest."""

    async def go() -> dict[str, str]:
        async with RegistryClient(url) as client:
            return {
                name: await push_image(
                    client,
                    name.rsplit(":", 1)[0],
                    tags,
                    created=created,
                    labels=(labels or {}).get(name),
                    seed=name,
                )
                for name, tags in images.items()
            }

    return asyncio.run(go())


class _Fake(Protocol):
    def oci(self) -> RegistryProxy: ...
    def stop(self) -> None: ...


F = TypeVar("F", bound=_Fake)


@contextmanager
def serving(fake: F) -> Iterator[tuple[F, RegistryProxy]]:
    """A started fake (its REST side) and its OCI side in front of the real registry."""
    oci = fake.oci().start()
    try:
        yield fake, oci
    finally:
        oci.stop()
        fake.stop()


def vendor_config(
    root: Path, oci: RegistryProxy, kind: str, api: str, repositories: list[str], keep_tags: str
) -> Path:
    """A configuration for `kind` at `api` (none: the registry's own host), the registry
    through `oci`: unlinked images go unless a tag matches `keep_tags`."""
    config = root / "regsweep.yaml"
    document = {
        "registry": {
            "url": oci.url,
            "kind": kind,
            **({"api": api} if api else {}),
            "repositories": repositories,
            "cache": str(root / "cache"),
        },
        "kubernetes": {"enabled": False},
        "cleanup": {
            "disableGitHistoryBasedPolicy": True,
            "unlinked": "delete",
            "keepTags": [keep_tags],
        },
        # whole repositories go in these tests: the guard would refuse them (and `check` say so)
        "safety": {"maxDeleteFraction": 1.0},
    }
    config.write_text(yaml.safe_dump(document))
    return config


def aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and a region for boto3 against the loopback ECR fake (never AWS)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIAFAKEFORTHELOOPBACK",
        "AWS_SECRET_ACCESS_KEY": "fake-secret",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
