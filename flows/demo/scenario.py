"""The demo scenario: a Git repository, images in a real registry, workloads in a fixture
cluster, and a regsweep configuration tying them together. Used by `regsweep demo` and the
end-to-end tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from flows.demo.gitrepo import GitRepoBuilder
from flows.demo.images import push_image, push_index
from flows.demo.kube_api import KubeAPIFixture, helm_release_secret, pod, workload
from tasks.pulls.events import PullEvent
from tasks.pulls.service import Receiver
from tasks.pulls.store import PullStore
from tasks.registry.client import RegistryClient
from tasks.registry.errors import NotFound
from tasks.registry.manifest import get_manifest

LABEL = "org.opencontainers.image.revision"


@dataclass
class Scenario:
    """What was built, so a caller can check the outcome image by image."""

    config_path: Path
    now: datetime
    digests: dict[str, str] = field(default_factory=dict)  # name -> digest
    expect_kept: set[str] = field(default_factory=set)
    expect_deleted: set[str] = field(default_factory=set)

    @staticmethod
    def repository_of(name: str) -> str:
        return "demo/worker" if name.startswith("worker") else "demo/app"

    def present(self, registry_url: str) -> set[str]:
        """Return the names of the scenario's images whose manifests the registry still has."""

        async def check() -> set[str]:
            found = set()
            async with RegistryClient(registry_url) as client:
                for name, digest in self.digests.items():
                    try:
                        await get_manifest(client, self.repository_of(name), digest)
                    except NotFound:
                        continue
                    found.add(name)
            return found

        return asyncio.run(check())


def build_scenario(root: Path, registry_url: str, kube: KubeAPIFixture, now: datetime) -> Scenario:
    """Build the demo under `root` against a running registry and (unstarted) fixture."""
    host = registry_url.split("://", 1)[1]
    git = GitRepoBuilder(root / "git")
    day = timedelta(days=1)
    main = [git.commit("main", now - (6 - i) * day, f"main {i}") for i in range(6)]
    live = [
        git.commit(
            "feature-login", now - (3 - i) * day, f"login {i}", parents=None if i else [main[2]]
        )
        for i in range(3)
    ]
    gone = [
        git.commit("feature-old", now - (5 - i) * day, f"old {i}", parents=None if i else [main[0]])
        for i in range(2)
    ]
    git.tag("v1.0.0", main[1], now - 4 * day)
    git.tag("v1.1.0", main[3])
    git.push("main", "feature-login", "feature-old")
    git.delete_remote_branch("feature-old")

    scenario = Scenario(config_path=root / "regsweep.yaml", now=now)
    d = scenario.digests

    async def push_all() -> None:
        async with RegistryClient(registry_url) as client:
            for i, sha in enumerate(main):
                tags = [f"main-{sha[:8]}"] + (["v1.0.0"] if sha == main[1] else [])
                if sha == main[3]:
                    arm = await push_image(
                        client,
                        "demo/app",
                        [],
                        created=now - (6 - i) * day,
                        labels={LABEL: sha},
                        oci=True,
                        platform=("linux", "arm64"),
                        layer_size=40_000,
                    )
                    amd = await push_image(
                        client,
                        "demo/app",
                        [],
                        created=now - (6 - i) * day,
                        labels={LABEL: sha},
                        oci=True,
                        layer_size=40_000,
                    )
                    d[f"main{i}"] = await push_index(
                        client,
                        "demo/app",
                        [f"main-{sha[:8]}", "v1.1.0"],
                        [(arm, ("linux", "arm64")), (amd, ("linux", "amd64"))],
                    )
                    d["main3-arm64"], d["main3-amd64"] = arm, amd
                    continue
                d[f"main{i}"] = await push_image(
                    client,
                    "demo/app",
                    tags,
                    created=now - (6 - i) * day,
                    labels={LABEL: sha},
                    layer_size=40_000,
                )
            for i, sha in enumerate(live):
                d[f"login{i}"] = await push_image(
                    client,
                    "demo/app",
                    [f"login-{sha[:8]}"],
                    created=now - (3 - i) * day,
                    labels={LABEL: sha},
                    layer_size=40_000,
                )
            for i, sha in enumerate(gone):
                d[f"old{i}"] = await push_image(
                    client,
                    "demo/app",
                    [f"old-{sha[:8]}"],
                    created=now - (5 - i) * day,
                    labels={LABEL: sha},
                    layer_size=40_000,
                )
            d["debug"] = await push_image(
                client, "demo/app", ["debug-tools"], created=now - 30 * day, layer_size=8_000
            )
            d["fresh"] = await push_image(
                client,
                "demo/app",
                ["pr-42"],
                created=now - timedelta(minutes=30),
                labels={LABEL: "f" * 40},
                layer_size=40_000,
            )
            for i, sha in enumerate(gone + main[:2]):
                d[f"worker{i}"] = await push_image(
                    client,
                    "demo/worker",
                    [f"w-{sha[:8]}"],
                    created=now - (5 - i) * day,
                    labels={LABEL: sha},
                    layer_size=20_000,
                )

    asyncio.run(push_all())

    # The cluster: a Deployment pinned to an old main image, a pod running a worker image
    # from the deleted branch (by digest), and Helm history that still names v1.0.0.
    kube.add(
        "deployments",
        workload("Deployment", "app", "prod", [f"{host}/demo/app:main-{main[0][:8]}"]),
    )
    kube.add(
        "pods",
        pod(
            "worker-7d9f",
            "prod",
            [f"{host}/demo/worker:w-{gone[0][:8]}"],
            image_ids=[f"docker-pullable://{host}/demo/worker@{d['worker0']}"],
        ),
    )
    for revision, tag in enumerate(["v1.0.0", "v1.1.0"], start=1):
        kube.add(
            "secrets",
            helm_release_secret(
                "app",
                "prod",
                revision,
                [f"{host}/demo/app:{tag}"],
                status="deployed" if revision == 2 else "superseded",
            ),
        )

    # Pull records, as `regsweep pulls serve` would have written them from the registry's
    # notifications over the last 40 days: the old main images pulled by the cluster, the
    # worker from a deleted branch pulled 3 days ago by a VM nobody told regsweep about (kept:
    # pulled-within), and a scanner that pulls everything (ignored by user agent).
    database = f"sqlite:///{root / 'pulls.db'}"
    events = [
        PullEvent("demo/app", d[f"main{i}"], "", now - k * day, "containerd/1.7.24", "10.0.0.5")
        for i in (0, 1, 4, 5)
        for k in range(1, 40, 2 + i)
    ]
    events.append(PullEvent("demo/worker", d["worker1"], "", now - 3 * day, "cri-o/1.30", "vm-7"))
    events += [
        PullEvent(Scenario.repository_of(n), digest, "", now - day, "Trivy/0.57", "10.0.0.9")
        for n, digest in d.items()
    ]
    ignored = ["Trivy/*"]
    asyncio.run(_seed_pulls(database, events, ignored, since=now - 40 * day, now=now))

    config = {
        "registry": {"url": registry_url, "repositories": ["demo/*"]},
        "git": {"path": str(git.checkout_path)},
        "kubernetes": {"kubeconfig": str(root / "kubeconfig"), "helmRevisions": 5},
        "cleanup": {
            "keepPolicies": [
                {"references": {"tag": "/.*/", "limit": {"last": 10}}},
                {"references": {"branch": "/.*/"}, "imagesPerReference": {"last": 1}},
                {"references": {"branch": "main"}, "imagesPerReference": {"last": 2}},
            ],
            "keepImagesBuiltWithinLastNHours": 2,
            "unlinked": "keep",
            "keepImagesPulledWithin": "720h",
        },
        "pulls": {"database": database, "ignoreUserAgents": ignored},
    }
    scenario.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    scenario.expect_kept = {
        "main0",  # kubernetes: the Deployment pins it
        "main1",  # tag v1.0.0 (git-policy[0]) and Helm history
        "main3",
        "main3-arm64",
        "main3-amd64",  # tag v1.1.0, an index and its children
        "main4",
        "main5",  # the 2 newest on main
        "login2",  # newest on the live feature branch
        "debug",  # unlinked
        "fresh",  # built 30 minutes ago
        "worker0",  # running in a pod (by digest), though its branch is gone
        "worker1",  # its branch is gone, but a VM pulled it 3 days ago
        "worker2",
        "worker3",  # commits on main; main[1] is tagged v1.0.0
    }
    scenario.expect_deleted = {"main2", "login0", "login1", "old0", "old1"}
    return scenario


async def _seed_pulls(
    database: str, events: list[PullEvent], ignored: list[str], since: datetime, now: datetime
) -> None:
    """Store what the service would have kept of `events` (its own user-agent filter), and a
    receiver up from `since` to `now`."""
    store = await PullStore(database).open()
    receiver = Receiver(store, token="", ignore_user_agents=ignored)
    try:
        await store.record(e for e in events if receiver.counts(e))
        await store.heartbeat("demo-receiver", since, now)
    finally:
        await store.close()


def now_for_demo() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
