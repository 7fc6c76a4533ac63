"""Randomised plan -> change -> apply-under-faults -> rerun on the real registry (issue #13).

Each example builds a random repository (multi-arch indexes, shared digests, tagged index
children, signatures by tag scheme, SBOMs listed in an OCI 1.1 fallback index), plans it,
lets someone else change it (new tags on planned digests and indexes, moved tags, new
pushes), applies the plan through a fault proxy (500s, 429s, lost answers, the registry
killed mid-delete and restarted), then reruns. After the apply and after the rerun:

- I1 every tag skopeo lists pulls completely (`skopeo copy --all`: children, blobs);
- I2 every surviving subject keeps its referrers (as the scan knew them);
- I3 nothing the plan kept, and nothing any tag named when the delete step started, is gone;
- I4 the results say what the registry did: `deleted` is gone, anything skipped or not
  attempted is there, and only a failure may leave either; the exit code follows;
- I5 the rerun (no faults) finishes: no failure, every planned deletion still valid is done;
- I6 the tags it untags (`cleanup.untag: overwrite`, beside the kept `keep-*` tags) are gone.

Seeded (derandomised) and bounded to fit CI; `REGSWEEP_RANDOM_EXAMPLES` raises the count.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.demo.images import push_image, push_index, tag_image
from flows.demo.registry_server import LocalRegistry
from flows.result import RunResult, run_failure
from tasks.delete.ledger import read_ledger
from tasks.delete.loader import DeleteRequest, execute_plan
from tasks.delete.outcome import FAILED_OUTCOMES
from tasks.delete.recheck import current_tags
from tasks.registry.client import RegistryClient
from tasks.registry.errors import NotFound
from tasks.registry.extract import scan_registry
from tasks.registry.frames import RegistryExtraction
from tasks.registry.manifest import get_manifest, resolve_tag
from tasks.registry.retry import RetryPolicy
from tests.delete.helpers import OLD, plan_of
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.skopeo import skopeo_copy_all, skopeo_tags

EXAMPLES = int(os.environ.get("REGSWEEP_RANDOM_EXAMPLES", "30"))
_names = itertools.count()


@dataclass(frozen=True)
class Image:
    tags: tuple[str, ...]
    seed: str


@dataclass(frozen=True)
class Index:
    tags: tuple[str, ...]
    children: tuple[int, ...]  # positions in images


@dataclass(frozen=True)
class Referrer:
    subject: int  # position among the tagged manifests, in push order
    kind: str  # "sig" (tag scheme) or "sbom" (OCI subject, listed in a fallback index)


@dataclass(frozen=True)
class Change:
    kind: str  # "retag" (new tag on any scanned digest), "move" (a tag elsewhere), "push"
    pick: int
    other: int


@dataclass(frozen=True)
class Fault:
    kind: str  # none | 500 | 429 | lose-delete | kill
    method: str  # which requests: DELETE | HEAD | GET
    after: int  # how many of those pass first
    count: int  # how many are hit (kill: ignored)


@dataclass(frozen=True)
class Case:
    images: tuple[Image, ...]
    indexes: tuple[Index, ...]
    referrers: tuple[Referrer, ...]
    changes: tuple[Change, ...]
    fault: Fault


TAGS = ["keep-a", "keep-b", "t1", "t2", "t3", "t4", "t5"]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    pool = iter(draw(st.permutations(TAGS)))  # every tag names one manifest at first
    n_images = draw(st.integers(1, 5))
    images = []
    for i in range(n_images):
        count = draw(st.integers(0, 2))
        images.append(Image(tuple(t for _, t in zip(range(count), pool, strict=False)), f"i{i}"))
    indexes = []
    for _ in range(draw(st.integers(0, 3))):
        children = draw(st.lists(st.integers(0, n_images - 1), min_size=1, max_size=3, unique=True))
        tag = next(pool, None)
        if tag is not None:
            indexes.append(Index((tag,), tuple(children)))
    tagged = sum(1 for i in images if i.tags) + len(indexes)
    referrers = []
    if tagged:
        for _ in range(draw(st.integers(0, 3))):
            referrers.append(
                Referrer(draw(st.integers(0, tagged - 1)), draw(st.sampled_from(["sig", "sbom"])))
            )
    changes = tuple(
        Change(
            draw(st.sampled_from(["retag", "move", "push"])),
            draw(st.integers(0, 99)),
            draw(st.integers(0, 99)),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    kind = draw(st.sampled_from(["none", "500", "429", "lose-delete", "kill"]))
    fault = Fault(
        kind,
        "DELETE"
        if kind in ("lose-delete", "kill")
        else draw(st.sampled_from(["DELETE", "HEAD", "GET"])),
        draw(st.integers(0, 4)),
        draw(st.integers(1, 8)),
    )
    return Case(tuple(images), tuple(indexes), tuple(referrers), changes, fault)


async def build(client: RegistryClient, repo: str, case: Case) -> None:
    digests = []
    for image in case.images:
        digests.append(
            await push_image(
                client, repo, list(image.tags), created=OLD, seed=f"{repo}{image.seed}"
            )
        )
    subjects = [d for d, image in zip(digests, case.images, strict=True) if image.tags]
    for index in case.indexes:
        children = [(digests[c], ("linux", f"arch{c}")) for c in index.children]
        subjects.append(await push_index(client, repo, list(index.tags), children))
    sboms: dict[str, list[str]] = {}
    for n, referrer in enumerate(case.referrers):
        subject = subjects[referrer.subject]
        if referrer.kind == "sig":
            tag = f"sha256-{subject[7:]}.sig"
            await push_image(client, repo, [tag], created=OLD, seed=f"{repo}sig{n}")
        else:
            sbom = await push_image(
                client, repo, [], created=OLD, seed=f"{repo}sbom{n}", oci=True, subject=subject
            )
            sboms.setdefault(subject, []).append(sbom)
    for subject, listed in sboms.items():  # oras/cosign on a registry without referrers API
        await push_index(
            client, repo, [f"sha256-{subject[7:]}"], [(d, ("unknown", "unknown")) for d in listed]
        )


async def change(client: RegistryClient, repo: str, scan: RegistryExtraction, case: Case) -> None:
    digests = sorted(set(scan.images["digest"]))
    tags = sorted(scan.tags["tag"])
    for n, step in enumerate(case.changes):
        if step.kind == "retag" and digests:
            raw = (await get_manifest(client, repo, digests[step.pick % len(digests)])).raw
            await tag_image(client, repo, f"new-{n}", raw)
        elif step.kind == "move" and tags and digests:
            raw = (await get_manifest(client, repo, digests[step.other % len(digests)])).raw
            await tag_image(client, repo, tags[step.pick % len(tags)], raw)
        elif step.kind == "push":
            await push_image(client, repo, [f"pushed-{n}"], created=OLD, seed=f"{repo}p{n}")


async def exists(client: RegistryClient, repo: str, digest: str) -> bool:
    return await resolve_tag(client, repo, digest) is not None


def referrers_of(scan: RegistryExtraction) -> dict[str, set[str]]:
    """{subject: its referrers}: by `subject` field, by `sha256-<hex>.sig` tag, and the
    fallback index tagged `sha256-<hex>` with everything it lists."""
    found: dict[str, set[str]] = {}
    for digest, subject in zip(scan.images["digest"], scan.images["subject"], strict=True):
        if subject:
            found.setdefault(subject, set()).add(digest)
    children: dict[str, set[str]] = {}
    for parent, child in zip(scan.index_edges["parent"], scan.index_edges["child"], strict=True):
        children.setdefault(parent, set()).add(child)
    for tag, digest in zip(scan.tags["tag"], scan.tags["digest"], strict=True):
        if tag.startswith("sha256-") and len(tag.split(".")[0]) == 71:
            subject = "sha256:" + tag[7:71]
            found.setdefault(subject, set()).add(digest)
            if "." not in tag:
                found[subject] |= children.get(digest, set())
    return found


async def reachable_from_changed_tags(
    client: RegistryClient, repo: str, scan: RegistryExtraction
) -> set[str]:
    """Every digest that a tag new or moved since the scan names now, through index
    children, recursively: what the delete step must not take, whatever the plan says."""
    now = await current_tags(client, repo)
    before = set(zip(scan.tags["tag"], scan.tags["digest"], strict=True))
    seen: set[str] = set()
    frontier = list({d for t, d in now.items() if (t, d) not in before})
    while frontier:
        digest = frontier.pop()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            manifest = await get_manifest(client, repo, digest)
        except NotFound:
            continue  # I1 (skopeo) reports it
        for child in manifest.body.get("manifests") or []:
            frontier.append(child["digest"])
    return seen


@dataclass
class Faulty:
    """The proxy's fault plan for one apply."""

    fault: Fault
    registry: LocalRegistry
    seen: int = 0
    hit: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _turn(self, method: str) -> bool:
        with self.lock:
            if method != self.fault.method:
                return False
            self.seen += 1
            if self.seen > self.fault.after and self.hit < self.fault.count:
                self.hit += 1
                return True
            return False

    def intercept(self, method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if self.fault.kind in ("500", "429") and self._turn(method):
            status = int(self.fault.kind)
            return status, {"Content-Type": "text/plain", "Retry-After": "0"}, b"injected"
        if self.fault.kind == "kill" and self._turn(method) and self.hit == 1:
            self.registry.kill()
        return None

    def lose(self, method: str, path: str) -> bool:
        return self.fault.kind == "lose-delete" and self._turn(method)


@pytest.fixture(scope="module")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("random-registry")) as registry:
        yield registry


def apply(
    url: str, plan: pd.DataFrame, scan: RegistryExtraction, ledger: Path, retries: int = 2
) -> pd.DataFrame:
    async def go() -> pd.DataFrame:
        async with RegistryClient(
            url,
            retry=RetryPolicy(max_retries=retries, backoff=0.01, max_backoff=0.05, max_wait=0.05),
        ) as client:
            return await execute_plan(
                client,
                plan,
                scan,
                DeleteRequest(
                    apply=True,
                    ledger_path=str(ledger),
                    max_delete_fraction=1.0,
                    untag="overwrite",  # untags race and fail beside the deletions
                ),
            )

    return asyncio.run(go())


async def _resolves(registry: LocalRegistry, repo: str, tag: str) -> bool:
    async with RegistryClient(registry.url) as client:
        return await resolve_tag(client, repo, tag) is not None


def dangling_allowed(case: Case, ledger: Path) -> frozenset[str]:
    """Tags of digests whose DELETE was sent (a pending record) when a kill fault hit."""
    if case.fault.kind != "kill" or not ledger.exists():
        return frozenset()
    return frozenset(t for r in read_ledger(ledger) if r.state == "pending" for t in r.tags)


def check(
    registry: LocalRegistry,
    repo: str,
    plan: pd.DataFrame,
    scan: RegistryExtraction,
    named_at_start: set[str],
    results: pd.DataFrame,
    dangling_ok: frozenset[str] = frozenset(),
) -> None:
    async def present_of(digests: set[str]) -> set[str]:
        async with RegistryClient(registry.url) as client:
            found = await asyncio.gather(*(exists(client, repo, d) for d in sorted(digests)))
        return {d for d, ok in zip(sorted(digests), found, strict=True) if ok}

    scanned = set(scan.images["digest"])
    present = asyncio.run(present_of(scanned | named_at_start))
    # I1: skopeo, not us, says every tag pulls completely. The one exception: a registry
    # SIGKILLed while processing a DELETE we had sent can leave that digest's tag behind,
    # naming nothing (Distribution's delete is not atomic); only such tags are let off.
    for tag in skopeo_tags(registry.url, repo):
        done = skopeo_copy_all(registry.url, f"{repo}:{tag}")
        if (
            done.returncode != 0
            and tag in dangling_ok
            and not asyncio.run(_resolves(registry, repo, tag))
        ):
            continue
        assert done.returncode == 0, f"{repo}:{tag} does not pull: {done.stderr}"
    # I2: surviving subjects keep their referrers (worked out here, not by the code tested).
    for subject, referrers in referrers_of(scan).items():
        if subject in present:
            lost = referrers - present
            assert not lost, f"{subject} survived, its referrers did not: {lost}"
    # I3: the plan's keeps and whatever a tag named at the start of the delete step survive.
    kept = set(plan.loc[plan["action"] == "keep", "digest"])
    assert kept <= present, f"kept but gone: {kept - present}"
    assert named_at_start <= present, f"named by a tag, gone: {named_at_start - present}"
    # I4: the results say what the registry did.
    for digest, outcome in zip(results["digest"], results["outcome"], strict=True):
        if outcome == "deleted":
            assert digest not in present, f"{digest} reported deleted, still there"
        elif outcome not in ("failed", "gone"):
            assert digest in present, f"{digest} {outcome}, yet gone"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_random_plans_changes_and_faults_never_break_an_image(
    shared_registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory, case: Case
) -> None:
    registry = shared_registry
    repo = f"r{next(_names)}"
    ledger = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"

    async def prepare() -> tuple[RegistryExtraction, pd.DataFrame, set[str]]:
        async with RegistryClient(registry.url) as client:
            await build(client, repo, case)
            scan = await scan_registry(client, [repo])
            plan = plan_of(scan, registry.url, untag="overwrite")
            await change(client, repo, scan, case)
            return scan, plan, await reachable_from_changed_tags(client, repo, scan)

    scan, plan, named_at_start = asyncio.run(prepare())
    faulty = Faulty(case.fault, registry)
    with RegistryProxy(registry.url) as proxy:
        proxy.intercept = faulty.intercept
        proxy.lose_answer = faulty.lose
        try:
            results = apply(proxy.url, plan, scan, ledger, retries=0)  # every fault bites
        finally:
            if registry.process is None:
                registry.start()
    dangling = dangling_allowed(case, ledger)
    check(registry, repo, plan, scan, named_at_start, results, dangling)
    failed = set(results["outcome"]) & FAILED_OUTCOMES
    outcomes = {str(k): int(v) for k, v in results["outcome"].value_counts().items()}
    code = run_failure(RunResult("r", "", "", str(ledger), True, "", [], [], outcomes, {}))
    assert (code is not None and code.exit_code == 4) == bool(failed)  # I4: the exit code
    if case.fault.kind == "none":
        assert not failed

    async def rescan() -> RegistryExtraction:
        async with RegistryClient(registry.url) as client:
            return await scan_registry(client, [repo])

    # I5: a rerun without faults completes what is still to do, and breaks nothing.
    scan2 = asyncio.run(rescan())
    plan2 = plan_of(scan2, registry.url, untag="overwrite")
    results2 = apply(registry.url, plan2, scan2, ledger)
    assert not set(results2["outcome"]) & FAILED_OUTCOMES, results2
    check(registry, repo, plan2, scan2, set(), results2, dangling)
    assert set(results2["outcome"]) <= {"deleted", "gone", "untagged"}
    # I6: an untagged tag is gone, a fault-free rerun leaves no tag the plan untags
    untagged = set(results2.loc[results2["outcome"] == "untagged", "tags"].map(tuple))
    assert not {t for (t,) in untagged} & set(skopeo_tags(registry.url, repo))
