"""Build plan inputs directly (the policy is pure: no registry needed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from flows.demo.gitrepo import GitRepoBuilder
from tasks.core.config import parse_config
from tasks.core.frames import typed_frame
from tasks.git.extract import extract_git
from tasks.policy.plan import Plan, build_plan
from tasks.policy.state import PlanInputs
from tasks.pulls.records import PullRecords
from tasks.registry.frames import (
    BLOB_COLUMNS,
    EDGE_COLUMNS,
    IMAGE_COLUMNS,
    PUSHED_COLUMNS,
    STATUS_COLUMNS,
    TAG_COLUMNS,
    RegistryExtraction,
)

LABEL = "org.opencontainers.image.revision"
HOST = "reg.test"


@dataclass
class Registry:
    """Images as the registry stage would report them."""

    images: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def image(
        self,
        digest: str,
        tags: list[str],
        created: datetime,
        commit: str | None = None,
        repository: str = "app",
        media_type: str = "application/vnd.oci.image.manifest.v1+json",
        subject: str = "",
    ) -> str:
        self.images.append(
            {
                "repository": repository,
                "digest": digest,
                "media_type": media_type,
                "created": created,
                "size": 100,
                "labels": {LABEL: commit} if commit else {},
                "annotations": {},
                "platform": "",
                "subject": subject,
                "error": "",
            }
        )
        self.tags += [{"repository": repository, "tag": t, "digest": digest} for t in tags]
        return digest

    def index(
        self, digest: str, tags: list[str], children: list[str], repository: str = "app"
    ) -> str:
        self.image(
            digest,
            tags,
            None,
            repository=repository,  # type: ignore[arg-type]
            media_type="application/vnd.oci.image.index.v1+json",
        )
        self.edges += [{"repository": repository, "parent": digest, "child": c} for c in children]
        return digest


def extraction_of(
    registry: Registry, pushed: list[dict[str, Any]] | None = None
) -> RegistryExtraction:
    """`registry` as the registry stage's output (no blobs, no status), with push times."""
    return RegistryExtraction(
        images=typed_frame(registry.images, IMAGE_COLUMNS),
        tags=typed_frame(registry.tags, TAG_COLUMNS),
        index_edges=typed_frame(registry.edges, EDGE_COLUMNS),
        blobs=typed_frame([], BLOB_COLUMNS),
        status=typed_frame([], STATUS_COLUMNS),
        pushed=typed_frame(pushed or [], PUSHED_COLUMNS),
    )


def plan_for(
    registry: Registry,
    git: GitRepoBuilder | None,
    now: datetime,
    config: dict[str, Any] | None = None,
    cluster: pd.DataFrame | None = None,
    keep_list: list[str] | None = None,
    chunk: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame,
    pulls: PullRecords | None = None,
    protected: list[dict[str, str]] | None = None,
    pushed: list[dict[str, Any]] | None = None,
) -> Plan:
    """The plan of `registry` and `git` under `config`; `chunk` may rebuild every input frame
    (to vary how the frames are stored)."""
    document: dict[str, Any] = {"registry": {"url": f"https://{HOST}"}}
    if git is not None:
        document["git"] = {"path": str(git.checkout_path)}
    document.update(config or {})
    cfg = parse_config(document)
    extraction = extract_git(git.checkout_path) if git is not None else None
    inputs = PlanInputs(
        images=chunk(typed_frame(registry.images, IMAGE_COLUMNS)),
        tags=chunk(typed_frame(registry.tags, TAG_COLUMNS)),
        index_edges=chunk(typed_frame(registry.edges, EDGE_COLUMNS)),
        refs=chunk(extraction.refs) if extraction else None,
        commits=chunk(extraction.commits) if extraction else None,
        cluster=cluster,
        keep_list=keep_list or [],
        pulls=pulls,
        protected=pd.DataFrame(protected, columns=["repository", "tag", "digest", "why"])
        if protected is not None
        else None,
        pushed=typed_frame(pushed, PUSHED_COLUMNS) if pushed is not None else None,
    )
    return build_plan(inputs, cfg, HOST, now)


def decisions(plan: Plan) -> dict[str, str]:
    """digest -> action (a digest has one action)."""
    table = plan.table.drop_duplicates("digest")
    return dict(zip(table["digest"], table["action"], strict=True))


def kept(plan: Plan) -> set[str]:
    return {d for d, a in decisions(plan).items() if a == "keep"}
