"""Read the configured registry: a client with its credentials, limits and cache, and the
scan in one process or shared over worker processes. No Prefect here: spawned scan workers
import this module, and Prefect alone takes a second and a half to import."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tasks.core.aio import run_sync
from tasks.core.config import Config
from tasks.core.home import regsweep_home
from tasks.core.progress import ScanProgress
from tasks.registry.cache import ContentCache
from tasks.registry.client import Credentials, RegistryClient
from tasks.registry.credentials import load_credentials, secret_credentials
from tasks.registry.extract import (
    cache_is_warm,
    resolve_repositories,
    scan_registry,
    scan_repositories,
)
from tasks.registry.frames import RegistryExtraction, merge_extractions
from tasks.registry.retry import DEFAULT_RETRY, ONE_RETRY, RetryPolicy
from tasks.registry.vendors import registry_kind


def make_client(config: Config, retry: RetryPolicy = DEFAULT_RETRY) -> RegistryClient:
    """Return a client for the configured registry with its credentials, limits and cache."""
    registry = config.registry
    host = registry.host
    credentials: Credentials | None
    if registry.credentials_secret:
        credentials = secret_credentials(registry.credentials_secret)
    else:
        credentials = load_credentials(host)
    cache = None
    if registry.cache is not False:
        root = regsweep_home() / "cache" if registry.cache is True else Path(registry.cache)
        cache = ContentCache(root.expanduser())
    client = RegistryClient(
        registry.url,
        credentials=credentials,
        concurrency=registry.concurrency,
        requests_per_second=registry.requests_per_second,
        cache=cache,
        retry=retry,
    )
    registry_kind(config).attach_to(client)
    return client


def probe_registry(config: Config) -> None:
    """`GET /v2/` once (one retry): raise `RegistryError` when the registry does not answer,
    does not speak the API, or refuses our credentials; the message says what to change."""

    async def go() -> None:
        async with make_client(config, ONE_RETRY) as client:
            await client.request("GET", "/v2/", scope="")

    run_sync(go())


def list_registry(config: Config) -> tuple[list[str], bool]:
    """Return the repositories to scan and whether the cache is warm (scan by HEAD)."""

    async def go() -> tuple[list[str], bool]:
        async with make_client(config) as client:
            names = await resolve_repositories(
                client, config.registry.repositories, config.registry.exclude
            )
            return names, cache_is_warm(client)

    return run_sync(go())


def share_rate(config: Config, parts: int) -> Config:
    """The configuration for one of `parts` scanners running at once: each takes its share of
    `requestsPerSecond`, which limits the whole scan."""
    rate = config.registry.requests_per_second
    if rate is None or parts <= 1:
        return config
    registry = config.registry.model_copy(update={"requests_per_second": rate / parts})
    return config.model_copy(update={"registry": registry})


ScanShares = Callable[[Config, list[list[str]], bool], Iterable[RegistryExtraction]]
"""Scans each share of repositories (config, shares, warm) wherever it runs them, yielding
each share's extraction as it finishes."""


def scan_in_shares(
    config: Config,
    names: list[str],
    warm: bool,
    *,
    shares: int,
    at_once: int,
    scan: ScanShares,
    progress: ScanProgress | None = None,
) -> RegistryExtraction:
    """The registry scan fanned out: the listed repositories `names` dealt into `shares`
    disjoint shares, scanned by `scan` (worker processes, Dask tasks) with `at_once` running
    at a time, each with its part of `requestsPerSecond`; merged, with progress reported as
    each share finishes."""
    count = max(1, shares)
    parts = [names[i::count] for i in range(count) if names[i::count]] or [[]]
    config = share_rate(config, min(at_once, len(parts)))
    done = []
    for part in scan(config, parts, warm):
        if progress is not None:
            part.report_finished(progress)
        done.append(part)
    return merge_extractions(done)


def read_registry(config: Config, progress: ScanProgress | None = None) -> RegistryExtraction:
    """Scan the configured repositories (see `scan_registry`).

    With `registry.processes` > 1 the repositories are shared out among that many worker
    processes, each with its own client: one Python process tops out well below what a
    registry serves (measured: ~750 HEAD/s against a 2,200/s ceiling on 2 cores).
    """
    processes = min(config.registry.processes, os.cpu_count() or 1)
    if processes <= 1:

        async def scan() -> RegistryExtraction:
            async with make_client(config) as client:
                return await scan_registry(
                    client,
                    config.registry.repositories,
                    progress,
                    config.registry.exclude,
                    config.cleanup.wants_push_times,
                )

        return run_sync(scan())
    context = multiprocessing.get_context("spawn")  # no fork of Prefect's threads
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        # Workers start (and import) while this process lists the repositories.
        for _ in range(processes):
            pool.submit(_started)
        names, warm = list_registry(config)

        def on_workers(
            config: Config, shares: list[list[str]], warm: bool
        ) -> Iterable[RegistryExtraction]:
            return pool.map(_scan_share, [(config, share, warm) for share in shares])

        return scan_in_shares(
            config,
            names,
            warm,
            shares=processes,
            at_once=processes,
            scan=on_workers,
            progress=progress,
        )


def scan_some(config: Config, names: list[str], warm: bool) -> RegistryExtraction:
    """Scan just the repositories `names` (no catalog)."""

    async def scan() -> RegistryExtraction:
        async with make_client(config) as client:
            return await scan_repositories(
                client, names, None, warm, pushed_for=config.cleanup.wants_push_times
            )

    return run_sync(scan())


def _started() -> None:
    """Nothing: submitted to start a worker process early."""


def _scan_share(job: tuple[Config, list[str], bool]) -> RegistryExtraction:
    """One worker process: scan its share of the repositories."""
    return scan_some(*job)
