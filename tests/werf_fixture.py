"""A repository as werf 2 writes it, pushed through the real registry (the layout from werf's
code: `pkg/storage/repo_stages_storage.go`, `pkg/image/const.go`,
`pkg/docker_registry/container_registry_extensions/manifest_only_image.go`; see
`tasks.policy.werf_layout`).

Two werf images, `backend` and `frontend`, each a chain of three stages (from, install,
final; `werf.io/parent-stage-id` links them). Content-based tagging: a commit that changes
nothing of an image reuses its stages and only adds a meta record. On main: c1..c5;
`backend` changes at c1, c3 and c5, `frontend` at c1 and c4; v1.0.0 tags c2, whose backend
was built at c1 (a release on a reused stage). A feature branch (f1, from c3) changed
backend and was deleted from origin. `backend-latest` is a custom tag moved by each build
(with its custom-tag-meta record); `frontend` imports from backend's install stage at c1
(an import-metadata record and the checksum label); one stage was rejected; both images
have their managed-image record.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flows.demo.gitrepo import GitRepoBuilder
from flows.demo.images import push_image
from tasks.core.mediatypes import DOCKER_MANIFEST
from tasks.policy.werf_layout import murmur3_32
from tasks.registry.client import RegistryClient

PROJECT = "project"
REPOSITORY = "werf/project"


@dataclass
class WerfFixture:
    """What was pushed: tag -> digest, and what each tag is."""

    git: GitRepoBuilder
    commits: dict[str, str] = field(default_factory=dict)  # name -> sha
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    kinds: dict[str, str] = field(default_factory=dict)  # tag -> what it is, for the table
    stages: dict[str, str] = field(default_factory=dict)  # label (backend@c1/final) -> stage ID


def _stage_id(content: str, when: datetime) -> str:
    return f"{hashlib.sha3_224(content.encode()).hexdigest()}-{int(when.timestamp() * 1000)}"


def build_werf_repository(root: Path, registry_url: str, now: datetime) -> WerfFixture:
    """Push the werf layout described above; return what was pushed."""
    git = GitRepoBuilder(root / "git")
    fixture = WerfFixture(git)
    day = timedelta(days=1)
    c = fixture.commits
    for i in range(1, 6):
        c[f"c{i}"] = git.commit("main", now - (6 - i) * day, f"main {i}")
    c["f1"] = git.commit("feature-x", now - 2 * day, "feature", parents=[c["c3"]])
    git.tag("v1.0.0", c["c2"], now - 4 * day)
    git.push("main", "feature-x")
    git.delete_remote_branch("feature-x")

    # Which content each image has at each commit: a change of content is a new chain.
    builds = {
        "backend": {"c1": "b1", "c2": "b1", "c3": "b3", "c4": "b3", "c5": "b5", "f1": "bf"},
        "frontend": {"c1": "f1", "c2": "f1", "c3": "f1", "c4": "f4", "c5": "f4"},
    }
    asyncio.run(_push(fixture, registry_url, builds, now))
    return fixture


async def _push(
    fixture: WerfFixture, url: str, builds: dict[str, dict[str, str]], now: datetime
) -> None:
    c, tags, kinds = fixture.commits, fixture.tags, fixture.kinds
    order = ["c1", "f1", "c2", "c3", "c4", "c5"]  # the order CI built them
    async with RegistryClient(url) as client:

        async def put(tag: str, kind: str, labels: dict[str, str], when: datetime) -> str:
            digest = await push_image(
                client, REPOSITORY, [tag], created=when, labels=labels, seed=tag, layer_size=512
            )
            tags[tag], kinds[tag] = digest, kind
            return digest

        async def record(tag: str, kind: str, labels: dict[str, str] | None = None) -> None:
            # a manifest-only image: its own config (created now), as werf pushes one
            await put(tag, kind, {"werf": PROJECT, **(labels or {})}, now)

        built: dict[tuple[str, str], str] = {}  # (image, content) -> final stage ID
        checksum = "import-checksum-1"
        for at, name in enumerate(order):
            when = now - timedelta(days=6 - at, hours=-1)
            for image, contents in builds.items():
                content = contents.get(name)
                if content is None:
                    continue
                if (image, content) not in built:
                    parent = ""
                    for step in ("from", "install", "final"):
                        stage = _stage_id(f"{image}/{content}/{step}", when)
                        labels = {
                            "werf": PROJECT,
                            "werf-project-repo-commit": c[name],
                            "werf-stage-content-digest": stage[:56],
                        }
                        if parent:
                            labels["werf.io/parent-stage-id"] = parent
                        if image == "frontend" and step == "final" and content == "f1":
                            labels[f"werf-import-checksum-{checksum[-1]}"] = checksum
                        await put(stage, f"{image} {step} stage ({content})", labels, when)
                        fixture.stages[f"{image}@{name}/{step}"] = stage
                        parent = stage
                    built[(image, content)] = parent
                    if image == "backend":  # the custom tag moves to each new build
                        await client.request(
                            "PUT",
                            f"/v2/{REPOSITORY}/manifests/backend-latest",
                            scope=f"repository:{REPOSITORY}:pull,push",
                            headers={"Content-Type": DOCKER_MANIFEST},
                            content=await _raw(client, tags[parent]),
                        )
                        tags["backend-latest"] = tags[parent]
                        kinds["backend-latest"] = "custom tag"
                final = built[(image, content)]
                meta = f"meta-{murmur3_32(image)}_{c[name]}_{final}"
                await record(meta, f"meta record: {image} at {name}")
        await record(
            "custom-tag-meta-backend-latest",
            "custom-tag record",
            {"stage-id": built[("backend", "b5")], "tag": "backend-latest"},
        )
        await record(
            "import-metadata-1",
            "import record",
            {
                "source-stage-id": fixture.stages["backend@c1/install"],
                "checksum": checksum,
                "import-source-id": "1",
            },
        )
        for image in builds:
            await record(f"managed-image-{image}", "managed-image record")
        rejected = _stage_id("backend/rejected/final", now - timedelta(days=3))
        await put(rejected, "rejected stage", {"werf": PROJECT}, now - timedelta(days=3))
        await record(f"{rejected}-rejected", "rejected-stage record")


async def _raw(client: RegistryClient, digest: str) -> bytes:
    from tasks.registry.manifest import get_manifest

    return (await get_manifest(client, REPOSITORY, digest)).raw
