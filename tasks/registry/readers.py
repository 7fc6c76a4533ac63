"""Reading one repository: its tags, manifests (index children and referrers too) and
config blobs, each with a fixed number of workers, and what was read turned into the
registry frames (`tasks.registry.frames`). `tasks.registry.extract` runs it per repository.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tasks.core import preload
from tasks.core.aio import for_each
from tasks.core.progress import ScanProgress
from tasks.registry.blob import get_blob
from tasks.registry.client import RegistryClient
from tasks.registry.errors import InvalidResponse, NotFound, RegistryError, UnreadableManifest
from tasks.registry.frames import (
    BLOB_COLUMNS,
    DANGLING_COLUMNS,
    EDGE_COLUMNS,
    IMAGE_COLUMNS,
    STATUS_COLUMNS,
    TAG_COLUMNS,
    RegistryExtraction,
)
from tasks.registry.manifest import (
    Manifest,
    get_manifest,
    list_referrers,
    manifest_by_digest,
    resolve_tag,
)
from tasks.registry.tag import list_tags

TAG_WORKERS = 256  # tags read at once per repository (the client's concurrency still limits)
MAX_REFERRER_DEPTH = 8  # signatures of attestations of SBOMs...: real chains are 2-3 deep
MAX_REFERRERS = 100_000  # referrer manifests per repository
CONFIG_WORKERS = 64  # config blobs read at once per repository


@dataclass
class RepositoryRead:
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, tuple[Manifest, str]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # digest -> (media type, why, platform) of manifests that exist but cannot be parsed
    unreadable: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    config_errors: dict[str, str] = field(default_factory=dict)  # config digest -> why
    error: str = ""
    reading: dict[str, asyncio.Future[Manifest]] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)  # listed tags whose manifest 404'd
    dangling: list[str] = field(default_factory=list)  # ...and still listed after the reads

    async def read_once(self, client: RegistryClient, digest: str) -> Manifest:
        """The manifest `digest`, read once however many tags name it: the tags on one
        digest resolve at the same moment, and each would GET it (what a pull rate limit
        counts) before the first answer reached the cache. The first reader reads; the
        others wait on a bare future (no task per digest: a warm rescan reads thousands)."""
        if digest in self.manifests:
            return self.manifests[digest][0]
        waiting = self.reading.get(digest)
        if waiting is not None:
            return await waiting
        self.reading[digest] = waiting = asyncio.get_running_loop().create_future()
        try:
            manifest = await manifest_by_digest(client, self.name, digest)
        except asyncio.CancelledError:
            del self.reading[digest]
            waiting.cancel()
            raise
        except Exception as exc:  # kept: the digest's other tags fail alike, unasked
            waiting.set_exception(exc)
            waiting.exception()  # retrieved: no waiter is not an error
            raise
        # done: the content cache has it and so will `manifests`; its bytes are not held
        del self.reading[digest]
        waiting.set_result(manifest)
        return manifest

    async def fetch(
        self, client: RegistryClient, digest: str, platform: str = ""
    ) -> Manifest | None:
        """The manifest `digest` (cache first); None, recorded as unreadable, if it cannot
        be parsed."""
        try:
            return await manifest_by_digest(client, self.name, digest)
        except UnreadableManifest as exc:
            self.mark_unreadable(exc, platform)
            return None

    def mark_unreadable(self, exc: UnreadableManifest, platform: str = "") -> None:
        self.unreadable.setdefault(exc.digest, (exc.media_type, str(exc), platform))


class ConfigReader:
    """Reads a repository's config blobs as their manifests arrive, with a fixed number of
    workers: a queue of digests, not a task per config (a million images would be a million
    tasks). The first error stops the reading and is raised by `finish`."""

    def __init__(self, client: RegistryClient, repo: RepositoryRead) -> None:
        self.client = client
        self.repo = repo
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.seen: set[str] = set()
        self.workers: list[asyncio.Task[None]] = []
        self.error: Exception | None = None

    def want(self, manifest: Manifest) -> None:
        """Read the manifest's config blob unless already asked for."""
        config = manifest.body.get("config")
        digest = config.get("digest") if isinstance(config, dict) else None
        if manifest.is_index or not isinstance(digest, str) or digest in self.seen:
            return
        self.seen.add(digest)
        self.queue.put_nowait(digest)
        if len(self.workers) < CONFIG_WORKERS:
            self.workers.append(asyncio.create_task(self._work()))

    async def _work(self) -> None:
        while True:
            digest = await self.queue.get()
            try:
                if self.error is None:
                    await _read_config(self.client, self.repo, digest)
            except Exception as exc:  # raised by finish(), in the scan's own task
                self.error = self.error or exc
            finally:
                self.queue.task_done()

    async def finish(self) -> None:
        """Wait for every config asked for; raise the first error."""
        await self.queue.join()
        self.stop()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        for worker in self.workers:
            worker.cancel()


async def read_repository(
    client: RegistryClient, name: str, progress: ScanProgress | None, warm: bool
) -> RepositoryRead:
    repo = RepositoryRead(name)
    configs = ConfigReader(client, repo)
    try:
        tags = await list_tags(client, name)
        done = 0

        async def read_tag(tag: str) -> None:
            nonlocal done
            try:
                if warm:
                    digest = await resolve_tag(client, name, tag)
                    if digest is None:  # deleted since the listing, or dangling
                        repo.not_found.append(tag)
                        return
                    manifest = await repo.read_once(client, digest)
                else:
                    try:
                        manifest = await get_manifest(client, name, tag)
                    except NotFound:  # deleted since the listing, or dangling
                        repo.not_found.append(tag)
                        return
            except UnreadableManifest as exc:
                repo.tags[tag] = exc.digest
                repo.mark_unreadable(exc)
            else:
                repo.tags[tag] = sys.intern(manifest.digest)  # one string per image
                repo.manifests.setdefault(manifest.digest, (_slim(manifest), ""))
                configs.want(manifest)  # keeps requests flowing
            done += 1
            if progress is not None:
                progress(name, done, len(tags))

        await for_each(tags, read_tag, TAG_WORKERS)
        if repo.not_found:  # a tag deleted since the listing is not listed any more
            listed = set(await list_tags(client, name))
            repo.dangling = sorted(t for t in repo.not_found if t in listed)
        await _read_children(client, repo)
        await _read_referrers(client, repo)
        for manifest, _ in list(repo.manifests.values()):  # children and referrers
            configs.want(manifest)
        await configs.finish()
    except NotFound as exc:
        repo.error = f"not found: {exc}"
    except RegistryError as exc:
        repo.error = f"{type(exc).__name__}: {exc}"
    finally:
        configs.stop()
    return repo


async def _read_children(client: RegistryClient, repo: RepositoryRead) -> None:
    indexes = [m for m, _ in repo.manifests.values() if m.is_index]
    wanted: dict[str, str] = {}
    for index in indexes:
        for child in index.body.get("manifests") or []:
            digest = child.get("digest")
            if isinstance(digest, str) and digest not in repo.manifests:
                wanted.setdefault(digest, _platform(child.get("platform")))

    async def read(child: tuple[str, str]) -> None:
        digest, platform = child
        if (manifest := await repo.fetch(client, digest, platform)) is not None:
            repo.manifests[digest] = (_slim(manifest), platform)

    await for_each(list(wanted.items()), read, TAG_WORKERS)
    # An index's children inherit the platform it names even when tagged themselves.
    for index in indexes:
        for child in index.body.get("manifests") or []:
            digest = child.get("digest")
            if digest in repo.manifests and not repo.manifests[digest][1]:
                manifest, _ = repo.manifests[digest]
                repo.manifests[digest] = (manifest, _platform(child.get("platform")))


async def _read_referrers(client: RegistryClient, repo: RepositoryRead) -> None:
    """Add the untagged manifests the OCI 1.1 referrers API names (signatures, SBOMs...).

    One probe per repository: a registry without the API answers 404 (the spec forbids 404
    where it is supported), and then the `sha256-<hex>.sig` tag scheme and `subject` fields
    already read are all there is. Referrers of referrers are followed.
    """
    digests = list(repo.manifests)
    if not digests:
        return
    probe = await list_referrers(client, repo.name, digests[0])
    if probe is None:
        return
    seen = set(digests)
    answers: list[list[str] | None] = [probe]

    async def ask(digest: str) -> None:
        answers.append(await list_referrers(client, repo.name, digest))

    async def read(digest: str) -> None:
        if (manifest := await repo.fetch(client, digest)) is not None:
            repo.manifests[manifest.digest] = (_slim(manifest), "")

    pending = digests[1:]
    rounds = found_in_all = 0
    while answers or pending:
        rounds += 1
        if rounds > MAX_REFERRER_DEPTH:
            raise InvalidResponse(
                f"{repo.name}: referrers of referrers more than {MAX_REFERRER_DEPTH} deep"
            )
        await for_each(pending, ask, TAG_WORKERS)
        found = sorted({d for answer in answers for d in answer or [] if d not in seen})
        found_in_all += len(found)
        if found_in_all > MAX_REFERRERS:
            raise InvalidResponse(f"{repo.name}: more than {MAX_REFERRERS:,} referrers")
        seen.update(found)
        await for_each(found, read, TAG_WORKERS)
        answers.clear()
        pending = found


def _slim(manifest: Manifest) -> Manifest:
    """The manifest without its bytes (the cache keeps them; the frames need the body)."""
    return dataclasses.replace(manifest, raw=b"")


async def _read_config(client: RegistryClient, repo: RepositoryRead, digest: str) -> None:
    try:
        body = json.loads(await get_blob(client, repo.name, digest))
    except ValueError:
        body = None
    if isinstance(body, dict):
        # Only what the frames take: a whole config (history, rootfs...) is kilobytes, and
        # 100,000 of them must fit in memory at once.
        inner = body.get("config")
        labels = inner.get("Labels") if isinstance(inner, dict) else None
        repo.configs[digest] = {"created": body.get("created"), "config": {"Labels": labels}}
    else:
        repo.config_errors[digest] = f"{repo.name}: config {digest} is not a JSON object"


def _platform(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    parts = [value.get("os", ""), value.get("architecture", ""), value.get("variant", "")]
    return "/".join(str(p) for p in parts if p)


def to_frames(repos: list[RepositoryRead], gets: dict[str, int]) -> RegistryExtraction:
    preload.wait()  # pandas may be importing on another thread (tasks.core.preload)
    import pandas as pd

    from tasks.core.frames import typed_frame

    images: list[dict[str, Any]] = []
    tags: dict[str, list[str]] = {name: [] for name in TAG_COLUMNS}
    edges: list[dict[str, Any]] = []
    # The largest tables (a row per tag, a row per image and blob) are built as columns:
    # 10^5 images have 10^5..10^6 blobs, and a dict per row was a tenth of the scan's peak
    # memory; a repository may have a million tags.
    blobs: dict[str, list[Any]] = {name: [] for name in BLOB_COLUMNS}
    status: list[dict[str, Any]] = []
    dangling = [{"repository": repo.name, "tag": tag} for repo in repos for tag in repo.dangling]
    for repo in repos:
        status.append(
            {
                "repository": repo.name,
                "complete": not repo.error,
                "tags": len(repo.tags),
                "error": repo.error,
                "manifest_gets": gets.get(repo.name, 0),
            }
        )
        tags["repository"] += [repo.name] * len(repo.tags)
        tags["tag"] += repo.tags.keys()
        tags["digest"] += repo.tags.values()
        for digest, (media_type, why, platform) in repo.unreadable.items():
            images.append(
                {
                    **_UNREADABLE,
                    "repository": repo.name,
                    "digest": digest,
                    "media_type": media_type,
                    "platform": platform,
                    "error": why,
                }
            )
        for digest, (manifest, platform) in repo.manifests.items():
            body = manifest.body
            config: dict[str, Any] = {}
            parts: dict[str, int] = {}
            error = ""
            if manifest.is_index:
                edges.extend(
                    {"repository": repo.name, "parent": digest, "child": str(c["digest"])}
                    for c in body.get("manifests") or []
                    if isinstance(c, dict) and "digest" in c
                )
            else:
                for desc in [body.get("config"), *(body.get("layers") or [])]:
                    if isinstance(desc, dict) and "digest" in desc:
                        parts[str(desc["digest"])] = int(desc.get("size") or 0)
                config_digest = str((body.get("config") or {}).get("digest"))
                config = repo.configs.get(config_digest, {})
                error = repo.config_errors.get(config_digest, "")
            for blob, size in parts.items():
                blobs["repository"].append(repo.name)
                blobs["digest"].append(digest)
                blobs["blob"].append(blob)
                blobs["size"].append(size)
            subject = body.get("subject")
            images.append(
                {
                    "repository": repo.name,
                    "digest": digest,
                    "media_type": manifest.media_type,
                    "created": _created(config),
                    "size": sum(parts.values()),
                    "labels": dict((config.get("config") or {}).get("Labels") or {}),
                    "annotations": dict(body.get("annotations") or {}),
                    "platform": platform,
                    "subject": str(subject.get("digest", "")) if isinstance(subject, dict) else "",
                    "error": error,
                }
            )
        repo.tags.clear()  # free what is in the rows now, repository by repository
        repo.manifests.clear()
        repo.configs.clear()
    return RegistryExtraction(
        images=typed_frame(images, IMAGE_COLUMNS),
        tags=pd.DataFrame(tags).astype(TAG_COLUMNS),
        index_edges=typed_frame(edges, EDGE_COLUMNS),
        blobs=pd.DataFrame(blobs).astype(BLOB_COLUMNS),
        status=typed_frame(status, STATUS_COLUMNS),
        dangling=typed_frame(dangling, DANGLING_COLUMNS),
    )


_UNREADABLE: dict[str, Any] = {
    "created": None,
    "size": 0,
    "labels": {},
    "annotations": {},
    "subject": "",
}


def _created(config: dict[str, Any]) -> str | None:
    value = config.get("created")
    if not isinstance(value, str):
        return None
    try:  # the common RFC 3339 forms, fast; pandas for the rest of ISO 8601
        datetime.fromisoformat(value)
    except ValueError:
        import pandas as pd

        try:
            pd.Timestamp(value)
        except ValueError:
            return None
    return value
