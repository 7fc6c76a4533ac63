"""Deleting 5,000 digests: our delete step vs the registry's raw DELETE ceiling, one run.

Two identical registries are seeded by writing the storage layout (same seed). The
reference sends bare `DELETE /v2/<name>/manifests/<digest>` from keep-alive clients on all
cores; ours runs the whole delete step (re-check of every tag, manifest read for the
ledger, ledger records made durable before each DELETE, the DELETE). Target >= 0.7x.

It also prints the re-check window: per repository, the longest time from the start of a
batch's re-check of every tag to the last DELETE sent before the next re-check - how long a
tag pushed by CI can go unseen before a DELETE that it should have cancelled.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import Results, peak_rss_mib, raw_ceiling

from flows.demo.registry_server import LocalRegistry
from tasks.core.frames import column_rows
from tasks.delete import loader
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.registry.cache import ContentCache
from tasks.registry.client import RegistryClient
from tasks.registry.extract import RegistryExtraction, scan_registry
from tests.servers.storage_seed import seed_storage

DIGESTS = 5_000
TAGS = 5_600  # some tags share a digest; about 5,000 distinct tagged digests
REPOSITORIES = 10
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
    """Times of re-checks and DELETEs per repository, from wrappers around the two calls."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str]] = []  # (time, repository, recheck|delete)
        recheck, delete = loader.current_tags, loader.delete_manifest

        async def timed_recheck(client: RegistryClient, repository: str) -> dict[str, str]:
            self.events.append((time.perf_counter(), repository, "recheck"))
            return await recheck(client, repository)

        async def timed_delete(client: RegistryClient, repository: str, digest: str) -> bool:
            done = await delete(client, repository, digest)
            self.events.append((time.perf_counter(), repository, "delete"))
            return done

        loader.current_tags, loader.delete_manifest = timed_recheck, timed_delete  # type: ignore[assignment]

    def longest(self) -> tuple[float, int]:
        """The longest window in seconds, and how many re-checks were made."""
        start: dict[str, float] = {}
        last: dict[str, float] = {}
        longest, rechecks = 0.0, 0
        for moment, repository, kind in sorted(self.events):
            if kind == "recheck":
                rechecks += 1
                if repository in last:
                    longest = max(longest, last.pop(repository) - start[repository])
                start[repository] = moment
            else:
                last[repository] = moment
        for repository, moment in last.items():
            longest = max(longest, moment - start[repository])
        return longest, rechecks


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
        longest, rechecks = window.longest()
        print(
            f"re-check window: at most {longest:.1f} s between a re-check of every tag and a "
            f"DELETE ({rechecks} re-checks of {REPOSITORIES} repositories)"
        )
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    results.add("delete_vs_raw_delete_ceiling", ours / raw_rate, ">=", 0.7)
    results.exit()


async def _scan(url: str) -> RegistryExtraction:
    async with RegistryClient(url, cache=CACHE) as client:
        return await scan_registry(client, ["bench/*"])


if __name__ == "__main__":
    main()
