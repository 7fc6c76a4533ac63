"""A team's life with regsweep: nights of CI on the real registry, `run --apply` each night
through the real Prefect flow, with faults on chosen nights, and the invariants checked
after every night by clients nobody here wrote (skopeo).

Each day: two commits on main (an image each, every third a multi-arch index, each with a
cosign-style `.sig` and a worker image), a feature branch opened (an image a day while it
lives) and, after `feature_days`, merged and deleted from origin; a release tag every
`release_every` days; prod runs the latest release (a Deployment by tag, Helm history),
staging the newest main image (a Pod by digest), review the newest image of each open
branch. Faults, by night: the registry killed as a DELETE arrives, after it removed the
manifest's revision and before its tags (`crash`); CI pushing a tag onto a `.sig` while
its subject's DELETE is on its way (`push_race`); a Pod started between the dry run and
the apply on an image the plan deletes (`late_pod`); prod rolled back to the previous
release (`rollback`).

Each night also writes its metrics to a textfile (`metrics.textfile`), and the metrics are
judged with the registry: promtool reads the file, the last completion moves on, the last
success is the night's when it exited 0 and the last good night's otherwise, the deleted
count and the dangling tags found and repaired are the run's, and an apply repairs every
dangling tag it finds.

`tests/delete/test_soak.py` lives a few nights in `make test`; `benchmarks/soak.py` 30.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from flows.cleanup import cleanup
from flows.demo.gitrepo import GitRepoBuilder
from flows.demo.images import push_image, push_index
from flows.demo.kube_api import KubeAPIFixture, helm_release_secret, pod, workload
from flows.demo.registry_server import LocalRegistry
from flows.result import RunFailed, RunResult
from tasks.core import mediatypes
from tasks.core.aio import run_sync
from tasks.registry.client import RegistryClient
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.registry_crash import kill_as_delete_arrives
from tests.servers.storage_view import repositories_root
from tests.skopeo import skopeo_copy_all, skopeo_tags

LABEL = "org.opencontainers.image.revision"
APP, WORKER = "soak/app", "soak/worker"


@dataclass(frozen=True)
class Faults:
    crash: frozenset[int] = frozenset()
    push_race: frozenset[int] = frozenset()
    late_pod: frozenset[int] = frozenset()
    rollback: frozenset[int] = frozenset()


@dataclass
class Night:
    """What one night did and what was found after it."""

    number: int
    exit_code: int
    outcomes: dict[str, int]
    tags: int
    manifests: int
    pushed_total: int
    notes: list[str]
    faults: list[str]
    ledger: str = ""  # the night's ledger (empty when nothing was sent)
    run_id: str = ""
    broken: list[str] = field(default_factory=list)  # invariants that failed
    dangling: dict[str, int] = field(default_factory=dict)  # tags naming nothing: found...

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        faults = f" [{', '.join(self.faults)}]" if self.faults else ""
        verdict = "ok" if not self.broken else "BROKEN: " + "; ".join(self.broken)
        found, repaired = self.dangling.get("found", 0), self.dangling.get("repaired", 0)
        dangling = f"; dangling tags found {found}, repaired {repaired}" if found else ""
        return (
            f"night {self.number:2d}{faults}: exit {self.exit_code}; {counts or 'nothing'}"
            f"{dangling}; "
            f"{self.tags} tags, {self.manifests} manifests stored "
            f"({self.pushed_total} pushed so far); {verdict}"
        )


class Life:
    """The registry, Git origin and cluster of one team, and its nights."""

    def __init__(
        self,
        root: Path,
        registry: LocalRegistry,
        kube: KubeAPIFixture,
        faults: Faults,
        *,
        feature_days: int = 3,
        release_every: int = 7,
        start: datetime | None = None,
    ) -> None:
        self.root, self.registry, self.kube, self.faults = root, registry, kube, faults
        self.feature_days, self.release_every = feature_days, release_every
        self.start = start or datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
        self.git = GitRepoBuilder(root / "git")
        self.proxy = RegistryProxy(registry.url)
        self.proxy.start()
        self.host = self.proxy.url.split("://", 1)[1]
        self.main_images: list[tuple[str, str]] = []  # (tag, digest), oldest first
        self.sigs: dict[str, str] = {}  # subject digest -> signature tag
        self.features: dict[str, tuple[int, list[str]]] = {}  # branch -> (opened, tags)
        self.deleted_branches: dict[str, int] = {}  # branch -> night deleted from origin
        self.releases: list[str] = []  # release tags, oldest first
        self.prod: list[str] = []  # Helm revisions of prod: the release tag of each
        self.pushed_total = 0
        self.raced: list[str] = []  # tags CI pushed during tonight's delete step
        self.late: list[tuple[str, str]] = []  # (repository, digest) a late Pod uses
        self.late_tags: set[str] = set()  # the tags on those digests (in use: not freed)
        self.config_path = root / "regsweep.yaml"
        self.textfile = root / "metrics" / "regsweep.prom"
        self.last_completion = 0.0
        self.last_success: float | None = None  # of the textfile, the last good night's
        kube.write_kubeconfig(root / "kubeconfig")
        self._write_config()

    def close(self) -> None:
        self.proxy.stop()

    def _write_config(self) -> None:
        config = {
            "registry": {"url": self.proxy.url, "repositories": ["soak/*"]},
            "git": {"path": str(self.git.checkout_path)},
            "kubernetes": {"kubeconfig": str(self.root / "kubeconfig"), "helmRevisions": 5},
            "cleanup": {
                "keepPolicies": [
                    {"references": {"tag": "/.*/", "limit": {"last": 10}}},
                    {
                        "references": {"branch": "/.*/", "limit": {"last": 10, "in": "168h"}},
                        "imagesPerReference": {"last": 2, "in": "168h"},
                    },
                    {"references": {"branch": "main"}, "imagesPerReference": {"last": 4}},
                ],
                "keepImagesBuiltWithinLastNHours": 2,
            },
            "safety": {"maxDeleteFraction": 0.95},
            "metrics": {"textfile": str(self.textfile)},
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    # -- the day ---------------------------------------------------------------------

    def day(self, n: int) -> None:
        """What the team does between night n-1 and night n."""
        morning = self.start + timedelta(days=n) - timedelta(hours=14)
        shas = [self.git.commit("main", morning + timedelta(hours=h)) for h in (1, 5)]
        branch = f"feature-{n}"
        self.features[branch] = (n, [])
        self.git.commit(branch, morning + timedelta(hours=2), parents=[shas[0]])
        for name, (opened, _) in list(self.features.items()):
            if name != branch and n - opened < self.feature_days:
                self.git.commit(name, morning + timedelta(hours=3))
        merged = [b for b, (opened, _) in self.features.items() if n - opened >= self.feature_days]
        for name in merged:
            head = str(self.git.repo.references[f"refs/heads/{name}"].target)
            main = str(self.git.repo.references["refs/heads/main"].target)
            shas.append(self.git.commit("main", morning + timedelta(hours=8), parents=[main, head]))
        if n % self.release_every == 0:
            self.releases.append(f"v1.{len(self.releases)}.0")
            self.git.tag(self.releases[-1], shas[-1], morning + timedelta(hours=9))
        self.git.push("main", *self.features)
        for name in merged:
            self.git.delete_remote_branch(name)
            self.deleted_branches[name] = n
            del self.features[name]
        run_sync(self._push_day(n, shas, morning))
        self._deploy(n)

    async def _push_day(self, n: int, shas: list[str], morning: datetime) -> None:
        async with RegistryClient(self.registry.url) as client:
            for i, sha in enumerate(shas):
                when = morning + timedelta(hours=1 + 4 * i)
                tag = f"main-{sha[:8]}"
                tags = [tag] + (
                    [self.releases[-1]]
                    if self.releases and i == len(shas) - 1 and n % self.release_every == 0
                    else []
                )
                labels = {LABEL: sha}
                if len(self.main_images) % 3 == 2:  # a multi-arch image
                    children = [
                        await push_image(
                            client,
                            APP,
                            [],
                            created=when,
                            labels=labels,
                            oci=True,
                            platform=("linux", arch),
                            seed=f"{sha}{arch}",
                        )
                        for arch in ("amd64", "arm64")
                    ]
                    digest = await push_index(
                        client,
                        APP,
                        tags,
                        [(children[0], ("linux", "amd64")), (children[1], ("linux", "arm64"))],
                    )
                    self.pushed_total += 3
                else:
                    digest = await push_image(
                        client, APP, tags, created=when, labels=labels, seed=sha
                    )
                    self.pushed_total += 1
                sig = f"sha256-{digest.removeprefix('sha256:')}.sig"
                await push_image(client, APP, [sig], created=when, oci=True, seed=f"sig{sha}")
                await push_image(client, WORKER, [tag], created=when, labels=labels, seed=sha)
                self.sigs[digest] = sig
                self.main_images.append((tag, digest))
                self.pushed_total += 2
            for name, (_, tags) in self.features.items():
                head = str(self.git.repo.references[f"refs/heads/{name}"].target)
                tag = f"{name}-{head[:8]}"
                if tag not in tags:
                    await push_image(
                        client,
                        APP,
                        [tag],
                        created=morning + timedelta(hours=4),
                        labels={LABEL: head},
                        seed=head,
                    )
                    tags.append(tag)
                    self.pushed_total += 1

    def _deploy(self, n: int) -> None:
        if self.releases and (not self.prod or self.prod[-1] != self.releases[-1]):
            if n in self.faults.rollback and len(self.releases) > 1:
                pass
            else:
                self.prod.append(self.releases[-1])
        if n in self.faults.rollback and len(self.releases) > 1:
            self.prod.append(self.releases[-2])  # a rollback is a new Helm revision
        objects: dict[str, list[dict[str, object]]] = {}
        if self.prod:
            objects.setdefault("deployments", []).append(
                workload("Deployment", "app", "prod", [f"{self.host}/{APP}:{self.prod[-1]}"])
            )
            for revision, release in enumerate(self.prod[-5:], start=max(1, len(self.prod) - 4)):
                status = "deployed" if revision == len(self.prod) else "superseded"
                objects.setdefault("secrets", []).append(
                    helm_release_secret(
                        "app", "prod", revision, [f"{self.host}/{APP}:{release}"], status=status
                    )
                )
        tag, digest = self.main_images[-1]
        objects.setdefault("pods", []).append(
            pod(
                "staging-0",
                "staging",
                [f"{self.host}/{APP}:{tag}"],
                image_ids=[f"docker-pullable://{self.host}/{APP}@{digest}"],
            )
        )
        for name, (_, tags) in self.features.items():
            objects.setdefault("deployments", []).append(
                workload(
                    "Deployment", f"review-{name}", "review", [f"{self.host}/{APP}:{tags[-1]}"]
                )
            )
        for repository, digest in self.late:
            objects.setdefault("pods", []).append(
                pod(f"late-{digest[7:15]}", "ops", [f"{self.host}/{repository}@{digest}"])
            )
        self.kube.objects = objects

    # -- the night -------------------------------------------------------------------

    def night(self, n: int) -> Night:
        """Run regsweep as the schedule would at night n (with its faults); check after."""
        self.day(n)
        moment = (self.start + timedelta(days=n)).isoformat()
        faults = []
        self.raced = []  # tomorrow the plan decides them (a .sig goes with its subject)
        if n in self.faults.late_pod:
            faults.append("late pod")
            dry = self._run(moment, apply=False)
            plan = _read_plan(dry.plan_path)
            doomed = sorted(d for r, d, _, a in plan if a == "delete" and r == APP)
            if doomed:  # a Pod starts on an image the dry run deletes
                self.late.append((APP, doomed[0]))
                self.late_tags |= {t for r, d, t, _ in plan if d == doomed[0] and t}
                self._deploy(n)
        if n in self.faults.rollback and len(self.releases) > 1:
            faults.append("rollback")
        if n in self.faults.crash:
            faults.append("registry killed mid-DELETE")
            self.proxy.intercept = kill_as_delete_arrives(self.registry)
        elif n in self.faults.push_race:
            faults.append("push during the delete step")
            self.proxy.intercept = self._race_once(n)
        try:
            result = self._run(moment, apply=True)
            code = 0
        except RunFailed as exc:
            result, code = exc.result, exc.exit_code
        finally:
            self.proxy.intercept = None
        night = Night(
            number=n,
            exit_code=code,
            outcomes=result.outcomes,
            tags=0,
            manifests=self._manifests(),
            pushed_total=self.pushed_total,
            notes=result.notes,
            faults=faults,
            ledger=result.ledger_path,
            run_id=result.flow_run_id,
            dangling=result.dangling,
        )
        night.broken, night.tags = self._invariants(n)
        night.broken += self._metric_invariants(code, result)
        return night

    def _run(self, moment: str, apply: bool) -> RunResult:
        return cleanup(config_path=str(self.config_path), apply=apply, now=moment)

    def _race_once(self, n: int) -> object:
        fired = threading.Event()
        url, sigs = self.registry.url, self.sigs

        def intercept(method: str, path: str, headers: dict[str, str]) -> Answer | None:
            digest = path.rsplit("/", 1)[-1]
            if method != "DELETE" or fired.is_set() or digest not in sigs:
                return None
            fired.set()  # CI re-signs the image whose DELETE is on its way: a new tag on .sig
            sig = httpx.get(
                f"{url}/v2/{APP}/manifests/{sigs[digest]}", headers={"Accept": mediatypes.ACCEPT}
            )
            if sig.status_code == 200:
                tag = f"resigned-{n}"
                httpx.put(
                    f"{url}/v2/{APP}/manifests/{tag}",
                    content=sig.content,
                    headers={"Content-Type": sig.headers["content-type"]},
                )
                self.raced.append(tag)
            return None

        return intercept

    def _manifests(self) -> int:
        root = repositories_root(self.registry)
        return sum(1 for _ in root.glob("*/*/_manifests/revisions/sha256/*/link"))

    def _invariants(self, n: int) -> tuple[list[str], int]:
        """The invariants after night n: (what broke, how many tags are listed)."""
        broken: list[str] = []
        url = self.registry.url
        listed = {r: skopeo_tags(url, r) for r in (APP, WORKER)}
        for repository, tags in listed.items():
            for tag in tags:  # every listed tag resolves
                done = _skopeo_inspect(url, f"{repository}:{tag}")
                if done:
                    broken.append(f"{repository}:{tag} is listed but does not resolve: {done}")
        needed = {f"{APP}:{r}" for r in self.releases[-10:]}
        needed |= {f"{APP}:{r}" for r in self.prod[-5:]}
        needed.add(f"{APP}@{self.main_images[-1][1]}")  # staging
        needed |= {f"{APP}:{tags[-1]}" for _, tags in self.features.values()}  # review
        needed |= {f"{r}@{d}" for r, d in self.late}
        needed |= {f"{APP}:{t}" for t in self.raced}  # not lost by tonight's DELETEs
        for reference in sorted(needed):  # nothing needed is missing
            done = skopeo_copy_all(url, reference)
            if done.returncode != 0:
                broken.append(f"needed {reference} is missing: {done.stderr.strip()[-200:]}")
        for branch, deleted in self.deleted_branches.items():  # freed a day after
            if n - deleted >= 1:
                left = [
                    t for t in listed[APP] if t.startswith(f"{branch}-") and t not in self.late_tags
                ]
                if left:
                    broken.append(f"{branch}, deleted on night {deleted}, still has {left}")
        return broken, sum(len(t) for t in listed.values())

    def _metric_invariants(self, code: int, result: RunResult) -> list[str]:
        """What the night's metrics textfile must say about the night (see the module)."""
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=self.textfile.read_bytes(), capture_output=True
        )
        broken = [f"promtool: {checked.stderr.decode()[-200:]}"] if checked.returncode else []
        values = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(self.textfile.read_text())
            for sample in family.samples
        }

        def metric(name: str, **labels: str) -> float | None:
            found = [v for (n, ls), v in values.items() if n == name and labels.items() <= set(ls)]
            return found[0] if len(found) == 1 else None

        completed = metric("regsweep_last_completion_timestamp_seconds") or 0.0
        if completed <= self.last_completion:
            broken.append(f"metrics: last completion {completed} did not move on")
        self.last_completion = completed
        if code == 0:
            self.last_success = completed
        success = metric("regsweep_last_success_timestamp_seconds")
        if success != self.last_success:
            broken.append(f"metrics: last success {success}, expected {self.last_success}")
        deleted = metric("regsweep_last_run_outcomes", outcome="deleted") or 0
        if deleted != result.outcomes.get("deleted", 0):
            broken.append(f"metrics: {deleted} deleted, the run says {result.outcomes}")
        dangling = {
            state: metric("regsweep_last_run_dangling_tags", state=state)
            for state in ("found", "repaired")
        }
        if dangling != {k: float(v) for k, v in result.dangling.items()}:
            broken.append(f"metrics: dangling tags {dangling}, the run says {result.dangling}")
        if dangling["found"] != dangling["repaired"]:
            broken.append(f"an apply left dangling tags unrepaired: {dangling}")
        return broken


def _skopeo_inspect(url: str, reference: str) -> str:
    host = url.split("://", 1)[1]
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{reference}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return "" if done.returncode == 0 else done.stderr.strip()[-200:]


def _read_plan(path: str) -> list[tuple[str, str, str, str]]:
    """(repository, digest, tag, action) of each row of a saved plan."""
    import pandas as pd

    plan = pd.read_parquet(path)
    columns = (plan["repository"], plan["digest"], plan["tag"], plan["action"])
    return list(zip(*columns, strict=True))


def summary(nights: list[Night]) -> dict[str, object]:
    """Figures over a life: nights, images pushed, stored at the end, broken invariants."""
    last = nights[-1]
    return {
        "nights": len(nights),
        "pushed": last.pushed_total,
        "manifests_at_end": last.manifests,
        "gone_fraction": 1 - last.manifests / max(1, last.pushed_total),
        "broken": sum(len(n.broken) for n in nights),
        "exit_codes": json.dumps([n.exit_code for n in nights]),
    }
