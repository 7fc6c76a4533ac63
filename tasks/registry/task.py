"""Registry extraction for a configuration, plain and as a cached Prefect task."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.aio import run_sync
from tasks.caching import EXTRACTION_TASK_OPTIONS
from tasks.home import regsweep_home
from tasks.policy.config import Config
from tasks.registry.cache import ContentCache
from tasks.registry.client import Credentials, RegistryClient, registry_host
from tasks.registry.credentials import load_credentials, secret_credentials
from tasks.registry.extract import Progress, RegistryExtraction, scan_registry


def make_client(config: Config) -> RegistryClient:
    """Return a client for the configured registry with its credentials, limits and cache."""
    registry = config.registry
    host = registry_host(registry.url)
    credentials: Credentials | None
    if registry.credentials_secret:
        credentials = secret_credentials(registry.credentials_secret)
    else:
        credentials = load_credentials(host)
    cache = None
    if registry.cache is not False:
        root = regsweep_home() / "cache" if registry.cache is True else Path(registry.cache)
        cache = ContentCache(root.expanduser())
    return RegistryClient(
        registry.url,
        credentials=credentials,
        concurrency=registry.concurrency,
        requests_per_second=registry.requests_per_second,
        cache=cache,
    )


def read_registry(config: Config, progress: Progress | None = None) -> RegistryExtraction:
    """Scan the configured repositories (see `scan_registry`)."""

    async def scan() -> RegistryExtraction:
        async with make_client(config) as client:
            return await scan_registry(
                client, config.registry.repositories, progress, config.registry.exclude
            )

    return run_sync(scan())


@task(name="extract_registry", **EXTRACTION_TASK_OPTIONS)
def extract_registry(config: Config, snapshot: str) -> RegistryExtraction:
    """Prefect task: `read_registry`; `snapshot` (the run's "now") keys the cache."""
    return read_registry(config)
