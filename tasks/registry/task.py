"""Registry extraction for a configuration, plain and as a cached Prefect task."""

from __future__ import annotations

import asyncio

from prefect import task

from tasks.caching import EXTRACTION_TASK_OPTIONS
from tasks.policy.config import Config
from tasks.registry.client import RegistryClient, registry_host
from tasks.registry.credentials import load_credentials
from tasks.registry.extract import Progress, RegistryExtraction, scan_registry


def make_client(config: Config) -> RegistryClient:
    """Return a client for the configured registry with its credentials and limits."""
    host = registry_host(config.registry.url)
    return RegistryClient(
        config.registry.url,
        credentials=load_credentials(host),
        concurrency=config.registry.concurrency,
    )


def read_registry(config: Config, progress: Progress | None = None) -> RegistryExtraction:
    """Scan the configured repositories (see `scan_registry`)."""

    async def scan() -> RegistryExtraction:
        async with make_client(config) as client:
            return await scan_registry(
                client, config.registry.repositories, progress, config.registry.exclude
            )

    return asyncio.run(scan())


@task(name="extract_registry", **EXTRACTION_TASK_OPTIONS)
def extract_registry(config: Config, snapshot: str) -> RegistryExtraction:
    """Prefect task: `read_registry`; `snapshot` (the run's "now") keys the cache."""
    return read_registry(config)
