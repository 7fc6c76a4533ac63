"""Registry extraction: every tag, manifest and config of the selected repositories.

Output DataFrames (one row per ...):

``images`` — per repository x manifest digest (tagged manifests and index children)
    repository   str                  repository name, e.g. ``team/app``
    digest       str                  manifest digest ``sha256:...``
    media_type   str                  manifest media type
    created      datetime64[us, UTC]  config ``created`` (NaT for an index or when absent)
    size         int64                config + layer bytes, each blob once per image
    labels       object (dict)        config labels
    annotations  object (dict)        manifest annotations
    platform     str                  ``os/arch[/variant]`` for an index child, else empty
    subject      str                  digest of the manifest's OCI ``subject``, else empty
    error        str                  why the manifest or its config could not be parsed
                                      (not JSON, unknown media type), else empty; such an
                                      image is kept (reason ``unreadable``)

``tags`` — per repository x tag
    repository, tag, digest (str)

``index_edges`` — per index x child
    repository, parent, child (str)

``blobs`` — per repository x image digest x blob (config and layers), for reclaimable bytes
    repository, digest, blob (str); size (int64)

``status`` — per repository
    repository (str); complete (bool): every tag and manifest was read;
    tags (int64); error (str): why it is incomplete, else empty

``protected`` — per vendor protection: repository, tag, digest, why (str)

``dangling`` — per listed tag that names nothing: repository, tag (str). The tag list has it
    (twice: listed, its manifest not found, and listed again after), but its manifest is
    gone: what a DELETE cut short leaves on Distribution, which removes a manifest's revision
    before its tags. Such a tag is damage, never an image to keep or delete
    (`tasks.delete.reconcile` finishes what our ledgers explain).

``pushed`` — per image of a repository whose push times were asked for (`pushed_for`) and
    that the vendor reports (`Vendor.push_times`); absent otherwise
    repository, digest (str); pushed (datetime64[us, UTC]): the vendor's push time, NaT
    where its listing has none for that image; source (str): the vendor's field
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from tasks.core import preload
from tasks.core.progress import ScanProgress
from tasks.registry.blob import get_blob
from tasks.registry.client import RegistryClient
from tasks.registry.errors import InvalidResponse, NotFound, RegistryError, UnreadableManifest
from tasks.registry.manifest import (
    Manifest,
    get_manifest,
    list_referrers,
    manifest_by_digest,
    resolve_tag,
)
from tasks.registry.repositories import is_glob, select_repositories
from tasks.registry.tag import list_tags
from tasks.registry.vendors.base import vendor_of

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

IMAGE_COLUMNS = {
    "repository": "str",
    "digest": "str",
    "media_type": "str",
    "created": "datetime64[us, UTC]",
    "size": "int64",
    "labels": "object",
    "annotations": "object",
    "platform": "str",
    "subject": "str",
    "error": "str",
}
TAG_COLUMNS = {"repository": "str", "tag": "str", "digest": "str"}
EDGE_COLUMNS = {"repository": "str", "parent": "str", "child": "str"}
BLOB_COLUMNS = {"repository": "str", "digest": "str", "blob": "str", "size": "int64"}
# manifest_gets: the manifest GETs the scan sent there (pull rate limits count them, not HEAD)
STATUS_COLUMNS = {
    "repository": "str",
    "complete": "bool",
    "tags": "int64",
    "error": "str",
    "manifest_gets": "int64",
}
# What a vendor protects (GitLab's protected tags, ECR's archived images, ACR's locks): a
# tag, or a digest (tag empty), never deleted: the plan's `protected`.
PROTECTED_COLUMNS = {"repository": "str", "tag": "str", "digest": "str", "why": "str"}
DANGLING_COLUMNS = {"repository": "str", "tag": "str"}
PUSHED_COLUMNS = {
    "repository": "str",
    "digest": "str",
    "pushed": "datetime64[us, UTC]",
    "source": "str",
}


# Bounds on what one repository may make us do (a hostile or broken registry must not keep a
# scan busy forever); past one, the repository is incomplete and the message says which.
TAG_WORKERS = 256  # tags read at once per repository (the client's concurrency still limits)
MAX_REFERRER_DEPTH = 8  # signatures of attestations of SBOMs...: real chains are 2-3 deep
MAX_REFERRERS = 100_000  # referrer manifests per repository
CONFIG_WORKERS = 64  # config blobs read at once per repository
REPOSITORY_WORKERS = 32  # repositories scanned at once (each keeps the client busy alone)


async def for_each(items: list[T], work: Callable[[T], Awaitable[None]], workers: int) -> None:
    """Run `work` on every item with at most `workers` running at once: a fixed number of
    tasks however long the list (a task per tag up front took 3 GiB at 1,000,000 tags)."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(min(workers, len(items)))))


@dataclass
class RegistryExtraction:
    """The registry as read at one moment."""

    images: pd.DataFrame
    tags: pd.DataFrame
    index_edges: pd.DataFrame
    blobs: pd.DataFrame
    status: pd.DataFrame
    protected: pd.DataFrame = field(default_factory=lambda: _frame([], PROTECTED_COLUMNS))
    pushed: pd.DataFrame = field(default_factory=lambda: _frame([], PUSHED_COLUMNS))
    dangling: pd.DataFrame = field(default_factory=lambda: _frame([], DANGLING_COLUMNS))

    def report_finished(self, progress: ScanProgress) -> None:
        """Tell `progress` every repository of this extraction is done (for scans whose
        parts finish elsewhere: worker processes, Dask tasks)."""
        for repository, count in zip(self.status["repository"], self.status["tags"], strict=True):
            progress(str(repository), int(count), int(count))

    def incomplete(self) -> list[str]:
        """Repositories whose listing is incomplete: the delete stage must not touch them."""
        return sorted(self.status.loc[~self.status["complete"], "repository"])


@dataclass
class _Repository:
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


class _ConfigReader:
    """Reads a repository's config blobs as their manifests arrive, with a fixed number of
    workers: a queue of digests, not a task per config (a million images would be a million
    tasks). The first error stops the reading and is raised by `finish`."""

    def __init__(self, client: RegistryClient, repo: _Repository) -> None:
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


async def resolve_repositories(
    client: RegistryClient, patterns: list[str], exclude: list[str] | None = None
) -> list[str]:
    """Return the repositories named or matched by `patterns` and by no `exclude` glob.

    Only globs need the catalog; an explicit name is taken as it is.
    """
    names = [p for p in patterns if not is_glob(p)]
    globs = [p for p in patterns if is_glob(p)]
    if globs:  # the catalog, or the vendor's listing (GitLab's groups, ECR's API)
        names += await vendor_of(client).repositories(globs)
    return select_repositories(names, patterns, exclude)


async def scan_registry(
    client: RegistryClient,
    patterns: list[str],
    progress: ScanProgress | None = None,
    exclude: list[str] | None = None,
    pushed_for: Callable[[str], bool] | None = None,
) -> RegistryExtraction:
    """Read every tag, manifest and config of the repositories matching `patterns` and no
    `exclude` glob; the vendor's push times too in the repositories `pushed_for` accepts.

    A repository that cannot be read completely is reported in ``status`` (complete=False)
    instead of raising, so the other repositories can still be cleaned. Raises
    `RegistryError` only when the repository list itself cannot be read.
    """
    names = await resolve_repositories(client, patterns, exclude)
    return await scan_repositories(client, names, progress, pushed_for=pushed_for)


async def scan_repositories(
    client: RegistryClient,
    names: list[str],
    progress: ScanProgress | None = None,
    warm: bool | None = None,
    pushed_for: Callable[[str], bool] | None = None,
) -> RegistryExtraction:
    """Scan the repositories `names` (see `scan_registry`).

    Warm (the cache has content; decided here unless given): each tag is resolved with a
    HEAD and only manifests not seen before are read. Cold: one GET per tag, which also
    fills the cache. Where manifest GETs count against a pull rate limit (Docker Hub), the
    scan is always warm.
    """
    if warm is None:
        warm = cache_is_warm(client)
    warm = warm or vendor_of(client).counts_pulls  # a GET per tag would spend pulls
    repos: dict[str, _Repository] = {}

    async def scan(name: str) -> None:
        repos[name] = await _scan_repository(client, name, progress, warm)

    await for_each(names, scan, REPOSITORY_WORKERS)
    extraction = _to_frames([repos[n] for n in names], client.manifest_gets)
    if vendor_of(client).protects:
        extraction = await _with_protected_tags(client, extraction)
    if vendor_of(client).push_times and pushed_for is not None:
        wanted = [n for n in names if pushed_for(n)]
        if wanted:
            extraction = await _with_push_times(client, extraction, wanted)
    return extraction


async def _with_protected_tags(
    client: RegistryClient, extraction: RegistryExtraction
) -> RegistryExtraction:
    """What the vendor protects (`Vendor.protected`). A repository whose protections cannot be
    read is incomplete (fail closed: nothing is deleted there)."""
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    # one pass over the tags, not a filter of all of them per repository
    for name, tags in extraction.tags.groupby("repository", sort=True)["tag"]:
        repository = str(name)
        try:
            protected = await vendor_of(client).protected(repository, tags.tolist())
        except RegistryError as exc:
            failed[repository] = f"reading the vendor's protected tags: {exc}"
            continue
        rows += [
            {"repository": repository, "tag": t, "digest": d, "why": w} for t, d, w in protected
        ]
    return dataclasses.replace(
        extraction,
        protected=_frame(rows, PROTECTED_COLUMNS),
        status=_marked_incomplete(extraction.status, failed),
    )


async def _with_push_times(
    client: RegistryClient, extraction: RegistryExtraction, names: list[str]
) -> RegistryExtraction:
    """The vendor's push time of every image of the repositories `names` (`Vendor.pushed`),
    NaT for an image its listing lacks (the plan keeps such an image: not known to be old).
    A repository whose push times cannot be read is incomplete (fail closed)."""
    vendor = vendor_of(client)
    wanted = set(names)
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    tags = {str(name): t.tolist() for name, t in extraction.tags.groupby("repository")["tag"]}
    for name, digests in extraction.images.groupby("repository", sort=True)["digest"]:
        repository = str(name)
        if repository not in wanted:
            continue
        try:
            times = await vendor.pushed(repository, tags.get(repository, []))
        except RegistryError as exc:
            failed[repository] = f"reading the vendor's push times ({vendor.push_times}): {exc}"
            continue
        rows += [
            {
                "repository": repository,
                "digest": digest,
                "pushed": times.get(digest),
                "source": vendor.push_times,
            }
            for digest in digests.tolist()
        ]
    return dataclasses.replace(
        extraction,
        pushed=_frame(rows, PUSHED_COLUMNS),
        status=_marked_incomplete(extraction.status, failed),
    )


def _marked_incomplete(status: pd.DataFrame, failed: dict[str, str]) -> pd.DataFrame:
    """`status` with each repository of `failed` incomplete, for the reason given."""
    status = status.copy()
    for repository, why in failed.items():
        at = status["repository"] == repository
        status.loc[at, "complete"] = False
        status.loc[at, "error"] = why
    return status


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    from tasks.core.frames import typed_frame

    return typed_frame(rows, columns)


def cache_is_warm(client: RegistryClient) -> bool:
    """True when the client's cache already has content: scan warm (HEAD per tag)."""
    return client.cache is not None and not client.cache.is_empty()


def merge_extractions(parts: list[RegistryExtraction]) -> RegistryExtraction:
    """One extraction from extractions of disjoint sets of repositories."""
    import pandas as pd

    return RegistryExtraction(
        **{
            f.name: pd.concat([getattr(p, f.name) for p in parts], ignore_index=True)
            for f in fields(RegistryExtraction)
        }
    )


async def _scan_repository(
    client: RegistryClient, name: str, progress: ScanProgress | None, warm: bool
) -> _Repository:
    repo = _Repository(name)
    configs = _ConfigReader(client, repo)
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


async def _read_children(client: RegistryClient, repo: _Repository) -> None:
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


async def _read_referrers(client: RegistryClient, repo: _Repository) -> None:
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


async def _read_config(client: RegistryClient, repo: _Repository, digest: str) -> None:
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


def _to_frames(repos: list[_Repository], gets: dict[str, int]) -> RegistryExtraction:
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
