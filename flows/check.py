"""`regsweep check`: every part a run needs, checked without deleting or changing anything.

One `Check` per part, in the order a run meets them. A part that cannot be reached is one
failed line (and the checks that need it are skipped, saying so), never a traceback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tasks.cluster.errors import ClusterError
from tasks.core.config import Config
from tasks.core.errors import ConfigError
from tasks.git.errors import GitError
from tasks.registry.client import RegistryClient
from tasks.registry.errors import (
    AccessDenied,
    AuthenticationFailed,
    RegistryError,
)

# A digest no manifest can have (no one knows a preimage of it): DELETE of it is harmless.
STALE_FETCH_HOURS = 24


@dataclass(frozen=True)
class Check:
    part: str
    ok: bool
    detail: str


def run_checks(config: Config, now: datetime) -> Iterator[Check]:
    """Yield the checks of `config`, each as soon as it is done (`now`: the plan's)."""
    done: list[Check] = []
    done += _keep_list(config)
    yield from done
    yield _kind(config)
    registry = list(_registry(config))
    done += registry
    yield from registry
    if all(c.ok for c in registry if c.part in ("registry", "listing")):
        yield _whole(config)
        if config.link.source != "oci":
            yield _werf(config)
    if config.uses_git:
        done.append(_git(config))
        yield done[-1]
    if config.uses_kubernetes:
        kubernetes = list(_kubernetes(config))
        done += kubernetes
        yield from kubernetes
    if all(c.ok for c in done):
        yield _guards(config, now)


def _guards(config: Config, now: datetime) -> Check:
    """The plan, made as `plan` makes it, and the refusals a run of it would meet
    (`flows.guards`: maxDeleteFraction, the cluster and Git guards). Reads; deletes nothing."""
    from flows.guards import refusals_of
    from flows.pipeline import compute_plan, local_stages
    from tasks.pulls.errors import PullsError

    try:
        planned = compute_plan(config, now, local_stages())
    except (ConfigError, RegistryError, GitError, ClusterError, PullsError) as exc:
        return Check("guards", False, f"no plan to check: {exc}")
    refused = refusals_of(config, planned)
    if refused:
        return Check("guards", False, "a run would refuse deletions: " + "; ".join(refused))
    table = planned.plan.table
    deletions = table.loc[table["action"] == "delete", "digest"].nunique()
    return Check("guards", True, f"a run would refuse nothing ({deletions} digest(s) to delete)")


def _kind(config: Config) -> Check:
    """Which API each operation uses (reads: the OCI API everywhere)."""
    from tasks.registry.vendors import registry_kind

    kind = registry_kind(config)
    lists = kind.lists_through
    lists = (
        "reads and lists through the OCI API"
        if lists == "the OCI API"
        else (f"reads through the OCI API, lists repositories through {lists}")
    )
    return Check(
        "kind",
        True,
        f"{kind.name} ({kind.how}): {lists}, deletes through {kind.deletes_through}, untags "
        f"by cleanup.untag: {config.cleanup.untag}",
    )


def _keep_list(config: Config) -> Iterator[Check]:
    from tasks.policy.stage import read_keep_list

    if config.cleanup.keep_list is None:
        return
    try:
        entries = read_keep_list(config)
    except ConfigError as exc:
        yield Check("keep list", False, str(exc))
        return
    yield Check("keep list", True, f"{config.cleanup.keep_list}: {len(entries)} reference(s)")


def _registry(config: Config) -> Iterator[Check]:
    from tasks.registry.extract import resolve_repositories
    from tasks.registry.retry import ONE_RETRY
    from tasks.registry.stage import make_client
    from tasks.registry.tag import list_tags

    url = config.registry.url
    results: list[Check] = []

    async def go() -> None:
        async with make_client(config, ONE_RETRY) as client:
            try:
                await client.request("GET", "/v2/", scope="")
            except (AuthenticationFailed, AccessDenied) as exc:
                results.append(Check("registry", False, f"{url}: credentials refused: {exc}"))
                return
            except RegistryError as exc:
                results.append(Check("registry", False, str(exc)))
                return
            who = "with credentials" if client.has_credentials else "anonymously"
            results.append(Check("registry", True, f"{url} answers the v2 API ({who})"))
            try:
                names = await resolve_repositories(
                    client, config.registry.repositories, config.registry.exclude
                )
                tags = await list_tags(client, names[0]) if names else []
            except RegistryError as exc:
                results.append(Check("listing", False, str(exc)))
                return
            patterns = ", ".join(config.registry.repositories)
            if not names:
                results.append(Check("listing", False, f"[{patterns}] matches no repository"))
                return
            results.append(
                Check(
                    "listing",
                    True,
                    f"[{patterns}] matches {len(names)} repositories "
                    f"({names[0]}: {len(tags)} tags)",
                )
            )
            from tasks.registry.vendors.base import vendor_of

            told = await vendor_of(client).check_deletes(names[0])
            if told is not None:  # through a vendor's API: it says
                results.append(Check("deletes", *told))
            else:
                results.append(await _deletes(client, names[0]))
            if config.cleanup.untag != "off":
                results.append(await _untags(client, names[0], config.cleanup.untag))

    asyncio.run(go())
    yield from results


def _whole(config: Config) -> Check:
    """Every tag names a manifest, and no earlier run's ledger record is open: what a crash
    mid-DELETE would leave (`tasks.delete.reconcile`). Reads tags and ledgers; changes
    nothing."""
    from tasks.delete.stage import repair_registry

    try:
        _, damage = repair_registry(config, None)
    except RegistryError as exc:
        return Check("tags", False, str(exc))
    if damage.dangling or damage.open_records:
        return Check("tags", False, "; ".join(damage.notes()))
    return Check("tags", True, "every tag names a manifest; no ledger record left open")


def _werf(config: Config) -> Check:
    """Which repositories werf wrote (its meta records among the tags): those are read and
    decided as werf does (`tasks.policy.werf_layout`). One tag listing per repository."""
    from tasks.policy.werf_layout import META_TAG
    from tasks.registry.extract import resolve_repositories
    from tasks.registry.retry import ONE_RETRY
    from tasks.registry.stage import make_client
    from tasks.registry.tag import list_tags

    async def go() -> list[str]:
        async with make_client(config, ONE_RETRY) as client:
            names = await resolve_repositories(
                client, config.registry.repositories, config.registry.exclude
            )
            found = []
            for name in names:
                if any(META_TAG.match(tag) for tag in await list_tags(client, name)):
                    found.append(name)
            return found

    try:
        found = asyncio.run(go())
    except RegistryError as exc:
        return Check("werf", False, str(exc))
    if not found:
        return Check("werf", True, "no repository has werf's meta records: read as OCI images")
    names = ", ".join(found)
    if config.cleanup.unlinked == "delete":
        return Check(
            "werf",
            False,
            f"{names}: werf layout, and cleanup.unlinked: delete is refused there (see "
            "link.source): remove it, or set link.source: oci",
        )
    return Check(
        "werf",
        True,
        f"{names}: werf layout recognised: read and decided as werf does "
        f"(link.source: {config.link.source})",
    )


async def _deletes(client: RegistryClient, repository: str) -> Check:
    """Deletes enabled and allowed? The vendor's own probe (`Vendor.deletes_manifests`:
    DELETE of a digest that cannot exist; Distribution answers 404 when deletes are enabled,
    405 when they are disabled, 401/403 when the credentials may not delete). Nothing can
    be deleted by it."""
    from tasks.registry.vendors.base import vendor_of

    try:
        enabled = await vendor_of(client).deletes_manifests(repository)
    except (AuthenticationFailed, AccessDenied) as exc:
        return Check("deletes", False, f"the credentials may not delete in {repository}: {exc}")
    except RegistryError as exc:
        return Check("deletes", False, f"DELETE probe in {repository}: {exc}")
    if not enabled:
        return Check(
            "deletes",
            False,
            f"{client.host} has deletion disabled (405 to DELETE of a digest that cannot "
            "exist; Distribution: storage.delete.enabled: true)",
        )
    return Check(
        "deletes",
        True,
        f"enabled and allowed in {repository} (404 to DELETE of a digest that cannot "
        "exist; 405 would mean disabled)",
    )


def _git(config: Config) -> Check:
    from tasks.git.stage import read_git

    git = config.git
    assert git is not None  # uses_git
    try:
        extraction = read_git(config)
    except (GitError, ConfigError) as exc:
        return Check("git", False, str(exc))
    refs = extraction.refs
    branches = int((refs["kind"] == "branch").sum())
    tags = int((refs["kind"] == "tag").sum())
    where = git.url or str(git.path)
    detail = f"{where}: full history, {branches} branches, {tags} tags"
    if git.path is not None and git.url is None:
        fetched = Path(git.path).expanduser() / ".git" / "FETCH_HEAD"
        if not fetched.exists():
            fetched = Path(git.path).expanduser() / "FETCH_HEAD"  # a bare clone
        if fetched.exists():
            hours = (time.time() - fetched.stat().st_mtime) / 3600
            if hours > STALE_FETCH_HOURS:
                return Check(
                    "git",
                    False,
                    f"{where}: last fetched {hours:.0f} h ago: a stale clone misses new "
                    f"branches and tags (fetch before each run, or use git.url)",
                )
            detail += f", fetched {hours:.1f} h ago"
        else:
            detail += ", never fetched (a fresh clone)"
    if branches == 0:
        return Check("git", False, f"{where}: no branches of remote {git.remote}")
    return Check("git", True, detail)


def _kubernetes(config: Config) -> Iterator[Check]:
    from tasks.cluster.access import RESOURCES, list_access

    k8s = config.kubernetes
    try:
        access = list_access(k8s.kubeconfig, k8s.contexts, k8s.namespaces)
    except ClusterError as exc:
        yield Check("kubernetes", False, str(exc))
        return
    for context in access:
        if context.denied:
            yield Check(
                f"kubernetes {context.context}",
                False,
                f"may not list: {', '.join(context.denied)}",
            )
        else:
            scope = ", ".join(k8s.namespaces) or "all namespaces"
            yield Check(
                f"kubernetes {context.context}",
                True,
                f"answers; may list all {len(RESOURCES)} kinds read ({scope})",
            )


async def _untags(client: RegistryClient, repository: str, method: str) -> Check:
    """How an untag will be done: `api` asks (DELETE of a tag that cannot exist: 404 when
    the registry deletes tags, 400 or 405 when it does not); `overwrite` needs push (PUT)
    and delete rights, which the deletes line has checked for delete."""
    from tasks.registry.vendors.base import PROBE_TAG, vendor_of

    vendor = vendor_of(client)
    if vendor.tag_api:  # cleanup.untag api or overwrite: the vendor's tag delete either way
        return Check("untag", True, f"api: tags are deleted one by one through {vendor.tag_api}")
    if method == "overwrite":
        return Check(
            "untag",
            True,
            f"overwrite: a placeholder manifest PUT under the tag, then DELETEd by digest "
            f"(needs push and delete in {repository})",
        )
    try:
        supported = await vendor.deletes_tags(repository)
    except (AuthenticationFailed, AccessDenied) as exc:
        return Check("untag", False, f"the credentials may not delete tags in {repository}: {exc}")
    except RegistryError as exc:
        return Check("untag", False, f"tag DELETE probe in {repository}: {exc}")
    if not supported:  # not a failure: those tags are kept, the run succeeds
        return Check(
            "untag",
            True,
            f"api: {repository} does not delete tags (400 or 405 to DELETE by tag): tags "
            "beside a kept tag will be kept; cleanup.untag: overwrite removes them",
        )
    return Check(
        "untag",
        True,
        f"api: {repository} deletes tags (404 to DELETE of the tag {PROBE_TAG}-..., which "
        "cannot exist)",
    )
