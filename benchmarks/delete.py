"""Deleting 5,000 digests: our delete step vs the registry's raw DELETE ceiling, one run.

Two identical registries are seeded by writing the storage layout (same seed). The
reference sends bare `DELETE /v2/<name>/manifests/<digest>` from keep-alive clients on all
cores; ours runs the whole delete step (re-check of every tag per batch, a listing right
before each level's DELETE, manifest read for the ledger, ledger records made durable
before each DELETE, the DELETE). Target >= 0.7x; where it conflicts with a tight window,
the window wins (issue #29).

It prints the two windows a push can fall in, per DELETE, the longest and the 99th
percentile (judged: <= 1.5 s for a new tag; the longest is the tail of DELETEs queued behind
other repositories' full re-checks):
- a new tag: from the start of the tag listing that served the DELETE's level (its last
  look at new tag names) to the DELETE's answer;
- a moved tag (without push records, only a full re-check sees it): from the start of the
  batch's re-check of every tag to the DELETE's answer.

REGSWEEP_BENCH_SMOKE=1 runs it at a size of seconds (what `make test` does: the figures
printed, the target not judged).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import SMOKE, Results, peak_rss_mib, raw_ceiling

from flows.demo.registry_server import LocalRegistry
from tasks.core.frames import column_rows
from tasks.delete import loader, pushes
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.registry.cache import ContentCache
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tasks.registry.frames import RegistryExtraction
from tasks.registry.vendors.base import Vendor
from tests.servers.storage_seed import seed_storage

TAGS = 220 if SMOKE else 5_600  # some tags share a digest: about 5,000 distinct digests
REPOSITORIES = 2 if SMOKE else 10
CACHE = ContentCache(Path(tempfile.mkdtemp(prefix="regsweep-cache-")))  # as a scheduled run has


def seeded(root: Path) -> LocalRegistry:
    seed_storage(root / "data", repositories=REPOSITORIES, tags=TAGS, seed=11)
    return LocalRegistry(root)


def delete_everything_plan(tags: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    media = {(r, d): m for r, d, m in column_rows(images, "repository", "digest", "media_type")}
    plan = tags.copy()
    plan["media_type"] = [media[key] for key in column_rows(plan, "repository", "digest")]
    plan["action"] = "delete"
    plan["reason"] = "no-policy"
    return plan


class Window:
    """Times of full re-checks, level listings and DELETEs per repository, from wrappers
    around the three calls."""

    def __init__(self) -> None:
        self.rechecks: dict[str, list[float]] = {}  # repository -> starts
        self.listings: dict[str, list[tuple[float, float]]] = {}  # repository -> (start, end)
        self.deletes: list[tuple[str, float, float]] = []  # (repository, sent, answered)
        recheck, listing, delete = loader.current_tags, pushes.list_tags, Vendor.delete_image

        async def timed_recheck(client: RegistryClient, repository: str) -> dict[str, str]:
            self.rechecks.setdefault(repository, []).append(time.perf_counter())
            return await recheck(client, repository)

        async def timed_listing(client: RegistryClient, repository: str) -> list[str]:
            began = time.perf_counter()
            names = await listing(client, repository)
            self.listings.setdefault(repository, []).append((began, time.perf_counter()))
            return names

        async def timed_delete(
            vendor: Vendor, repository: str, digest: str, tags: tuple[str, ...]
        ) -> bool:
            sent = time.perf_counter()
            done = await delete(vendor, repository, digest, tags)
            self.deletes.append((repository, sent, time.perf_counter()))
            return done

        loader.current_tags = timed_recheck  # type: ignore[assignment]
        pushes.list_tags = timed_listing  # type: ignore[assignment]
        Vendor.delete_image = timed_delete  # type: ignore[method-assign]

    def windows(self) -> tuple[list[float], list[float]]:
        """Per DELETE: the new-tag window and the moved-tag window, in seconds."""
        new, moved = [], []
        for repository, sent, answered in self.deletes:
            served = [b for b, e in self.listings.get(repository, []) if e <= sent]
            checks = [b for b in self.rechecks.get(repository, []) if b <= sent]
            new.append(answered - max(served))
            moved.append(answered - max(checks))
        return new, moved


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _spread(values: list[float]) -> str:
    return f"longest {max(values):.3f} s, 99th percentile {_p99(values):.3f} s"


def main() -> None:
    results = Results()
    window = Window()
    with tempfile.TemporaryDirectory() as tmp:
        with seeded(Path(tmp) / "raw") as raw_registry:
            scan = asyncio.run(_scan(raw_registry.url))
            targets = scan.tags.drop_duplicates(["repository", "digest"])
            paths = [
                f"/v2/{r}/manifests/{d}"
                for r, d in zip(targets["repository"], targets["digest"], strict=True)
            ]
            raw_rate = raw_ceiling(raw_registry.url, "DELETE", paths)
        print(f"raw DELETE ceiling: {raw_rate:.0f}/s over {len(paths)} digests")

        with seeded(Path(tmp) / "ours") as registry:
            scan = asyncio.run(_scan(registry.url))
            plan = delete_everything_plan(scan.tags, scan.images)

            async def delete() -> tuple[pd.DataFrame, float]:
                async with RegistryClient(registry.url, cache=CACHE) as client:
                    start = time.perf_counter()
                    out = await execute_plan(
                        client,
                        plan,
                        scan,
                        DeleteRequest(
                            apply=True,
                            ledger_path=str(Path(tmp) / "ledger.jsonl"),
                            max_delete_fraction=1.0,
                            force=True,
                        ),
                    )
                    return out, time.perf_counter() - start

            outcome, seconds = asyncio.run(delete())
        deleted = int((outcome["outcome"] == "deleted").sum())
        if deleted != len(paths):
            counts = outcome["outcome"].value_counts().to_dict()
            raise RuntimeError(f"deleted {deleted} of {len(paths)}: {counts}")
        ours = deleted / seconds
        print(f"regsweep delete step: {ours:.0f}/s ({deleted} digests in {seconds:.1f} s)")
        new, moved = window.windows()
        listings = sum(len(v) for v in window.listings.values())
        rechecks = sum(len(v) for v in window.rechecks.values())
        print(f"window for a new tag (listing -> DELETE answered): {_spread(new)}")
        print(f"window for a moved tag (full re-check -> DELETE answered): {_spread(moved)}")
        print(
            f"reads: {rechecks} full re-checks and {listings} level listings for "
            f"{deleted} DELETEs in {REPOSITORIES} repositories"
        )
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    results.add("delete_vs_raw_delete_ceiling", ours / raw_rate, ">=", 0.7)
    results.add("new_tag_window_p99_seconds", _p99(new), "<=", 1.5)
    results.exit()


async def _scan(url: str) -> RegistryExtraction:
    async with RegistryClient(url, cache=CACHE) as client:
        return await scan_registry(client, ["bench/*"])


if __name__ == "__main__":
    main()
