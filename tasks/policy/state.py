"""What the plan's rules read and decide (`PlanState`): the inputs, the catalog of images,
the keep reasons as matrices (`Reasons`), commit links, index children, referrers and
times, row-numbered as the catalog numbers images. `tasks.policy.plan` runs the rules over
it, `tasks.policy.table` turns it into the plan table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from tasks.core.config import Config, name_pattern
from tasks.core.frames import arrow_strings
from tasks.core.reference import (
    is_fallback_index_tag,
    referrer_tag_subject,
)
from tasks.core.restored import RestoredImage
from tasks.policy.catalog import Catalog, catalog
from tasks.policy.evidence import DeferredLines, EvidenceLines
from tasks.policy.history import CommitHistory
from tasks.policy.linking import CommitIndex, Links, link_images
from tasks.policy.werf_layout import WerfRepository, werf_repositories
from tasks.pulls.records import PullRecords

Reason = Literal[
    "kubernetes",  # used by the cluster now
    "helm-history",  # an image of a recent Helm release revision (a rollback target)
    "pulled-within",  # pulled recently (pull records), or records do not cover the window
    "git-policy",  # reachable under a keepPolicies entry (git-policy[i] in the plan)
    "pushed-recently",  # kept by a cleanup.registryPolicies entry (most recent, or within)
    "keep-list",  # named in cleanup.keepList
    "restored",  # put back by `regsweep restore` within safety.keepRestoredFor
    "keep-tag",  # a tag matching cleanup.keepTags
    "built-within",  # created within keepImagesBuiltWithinLastNHours
    "unlinked",  # no commit link, with cleanup.unlinked: keep
    "index-child",  # listed by a kept index
    "stage-parent",  # werf: an ancestor stage of a kept stage (werf.io/parent-stage-id)
    "stage-source",  # werf: an import or dependency source of a stage kept by a non-Git rule
    "werf-record",  # werf: a meta, custom-tag, import or managed-image record werf keeps
    "referrer",  # a signature, attestation or SBOM of a kept image
    "shared-digest",  # another tag on the digest is kept
    "unreadable",  # a manifest or config regsweep cannot parse
    "protected",  # a vendor protection: GitLab/ACR tag, ACR lock, ECR archive, Harbor and
    # Docker Hub immutable tags (never sent)
]
REASON_ORDER: tuple[Reason, ...] = get_args(Reason)
"""Keep reasons, in the order the plan's `reason` column picks the first of."""


@dataclass
class PlanInputs:
    """Everything the plan is computed from (git and cluster may be absent when disabled)."""

    images: pd.DataFrame
    tags: pd.DataFrame
    index_edges: pd.DataFrame
    refs: pd.DataFrame | None = None
    commits: pd.DataFrame | None = None
    cluster: pd.DataFrame | None = None
    keep_list: list[str] = field(default_factory=list)
    pulls: PullRecords | None = None  # None: no records (a pull rule then keeps, closed)
    protected: pd.DataFrame | None = None  # registry stage's `protected`: repository, tag, why
    pushed: pd.DataFrame | None = None  # registry stage's `pushed`: the vendor's push times
    restored: list[RestoredImage] = field(default_factory=list)  # `regsweep restore`'s records


class Reasons:
    """Keep reasons as boolean matrices (image rows x reasons, tag rows x reasons) plus the
    evidence lines per image row. Reason columns are in REASON_ORDER, git-policy[i] by i."""

    def __init__(self, images: int, tags: int, policies: int) -> None:
        git = [f"git-policy[{i}]" for i in range(policies)]
        at = REASON_ORDER.index("git-policy")
        self.names = [*REASON_ORDER[:at], *git, *REASON_ORDER[at + 1 :]]
        self.column = {name: i for i, name in enumerate(self.names)}
        self.digest = np.zeros((images, len(self.names)), dtype=bool)
        self.tag = np.zeros((tags, len(self.names)), dtype=bool)
        self.evidence = EvidenceLines()

    def keep(self, row: int, reason: str, why: str) -> None:
        self.digest[row, self.column[reason]] = True
        self.evidence.add(row, why)

    def keep_many(self, rows: np.ndarray, reason: str, whys: list[str] | DeferredLines) -> None:
        """`keep` for each of `rows` (an index array): `whys[i]` the evidence of rows[i], or
        deferred lines of exactly these rows (formatted when read)."""
        self.digest[rows, self.column[reason]] = True
        if isinstance(whys, DeferredLines):
            self.evidence.add_deferred(whys)
        else:
            self.evidence.add_many(rows, whys)

    def keep_tag(self, tag_row: int, image_row: int, reason: str, why: str) -> None:
        self.tag[tag_row, self.column[reason]] = True
        self.evidence.add(image_row, why)

    def ordered(self, masks: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
        """The distinct reason lists among `masks` rows, and which one each row has."""
        packed = np.packbits(masks, axis=1)
        distinct, which = np.unique(
            np.ascontiguousarray(packed).view(f"V{packed.shape[1]}").ravel(), return_inverse=True
        )
        lists = []
        for value in distinct:
            bits = np.unpackbits(np.frombuffer(value.tobytes(), dtype=np.uint8))
            lists.append([self.names[i] for i in np.flatnonzero(bits[: len(self.names)])])
        return lists, which.ravel()


@dataclass
class PlanState:
    """What the rules read and decide, row-numbered as the catalog numbers images.

    The rules fill `reasons`; `decide_digests` turns them into `kept`, which the rules after
    it extend. `held` is the indexes whose children have been kept already."""

    inputs: PlanInputs
    config: Config
    registry_host: str
    now: datetime
    images: Catalog
    known: np.ndarray
    reasons: Reasons
    tag_lookup: TagLookup
    history: CommitHistory | None
    links: Links
    children: dict[int, list[int]]
    created: np.ndarray
    has_created: np.ndarray
    subjects: dict[int, list[tuple[str, int | None]]]
    kept: np.ndarray
    untag: np.ndarray  # tag rows: the tag goes, its digest stays (see decide_untags)
    werf: dict[str, WerfRepository] = field(default_factory=dict)  # repositories werf wrote
    # per werf image (repository, imageMetadataID): its stage rows and their commits
    werf_links: dict[tuple[str, str], dict[int, set[str]]] = field(default_factory=dict)
    # (werf image, stage row, commit): a keepPolicy reached the stage through that commit
    werf_hits: set[tuple[str, int, str]] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    _candidates: dict[tuple[int, str], set[int]] | None = None

    def policy_candidates(self) -> dict[tuple[int, str], set[int]]:
        """`policy_candidates_of`, walked once for the push and the pull rules."""
        if self._candidates is None:
            self._candidates = policy_candidates_of(self)
        return self._candidates

    @classmethod
    def start(
        cls, inputs: PlanInputs, config: Config, registry_host: str, now: datetime
    ) -> PlanState:
        images = catalog(inputs.images, inputs.tags, inputs.index_edges)
        policies = config.effective_policies()
        history = CommitHistory.from_frame(inputs.commits) if inputs.commits is not None else None
        links = link_images(
            images, CommitIndex(history), config.link.label, config.link.tag_pattern
        )
        werf = werf_repositories(images, config.link.source)
        werf_links = werf_links_of(werf, links, CommitIndex(history))
        children: dict[int, list[int]] = defaultdict(list)
        for parent, child in images.edges:
            children[parent].append(child)
        created, has_created = created_micros(images, children)
        return cls(
            inputs=inputs,
            config=config,
            registry_host=registry_host,
            now=now,
            images=images,
            known=images.known_mask(),
            reasons=Reasons(len(images), len(images.tag_rows), len(policies)),
            tag_lookup=TagLookup(images),
            history=history,
            links=links,
            children=children,
            created=created,
            has_created=has_created,
            subjects=referrers_of(images, children),
            kept=np.zeros(len(images), dtype=bool),
            untag=np.zeros(len(images.tag_rows), dtype=bool),
            werf=werf,
            werf_links=werf_links,
        )

    def keep_children_of_kept(self, only_new: bool = False) -> bool:
        """Keep every child of a kept index not handled yet, to a fixpoint (indexes nest);
        True when that kept an image that was not kept. With `only_new`, a child already
        kept is left as it is (once referrers are decided, their reasons are their
        subjects')."""
        frontier = [parent for parent in self.children if self.kept[parent]]
        frontier = [parent for parent in frontier if parent not in self.held]
        changed = False
        while frontier:
            parent = frontier.pop()
            self.held.add(parent)
            for child in self.children[parent]:
                if self.known[child] and not (only_new and self.kept[child]):
                    why = f"index-child: in kept index {self.images.digests[parent]}"
                    self.reasons.keep(child, "index-child", why)
                    if not self.kept[child]:
                        self.kept[child] = changed = True
                        if child in self.children:
                            frontier.append(child)
        return changed


def werf_links_of(
    werf: dict[str, WerfRepository], links: Links, commits: CommitIndex
) -> dict[tuple[str, str], dict[int, set[str]]]:
    """Per werf image, its stage rows and the commits its meta records publish them at.

    In a repository werf wrote that is a stage's only link: its labels and tags are not
    read (werf's `werf-project-repo-commit` names the commit a stage was built at, not the
    commits that use it) and its records are linked to nothing. `links` gets the union, so
    a stage linked at all is not unlinked; a commit Git does not know is recorded as such
    (the Git guard counts it)."""
    out: dict[tuple[str, str], dict[int, set[str]]] = {}
    for repository in werf.values():
        for row in repository.rows():
            links.commits.pop(row, None)
            links.unknown.pop(row, None)
        for row, published in repository.published.items():
            for image, commit in sorted(published):
                sha, known = commits.resolve(commit)
                if sha is None:
                    continue
                out.setdefault((repository.name, image), {}).setdefault(row, set()).add(sha)
                links.commits.setdefault(row, set()).add(sha)
                if not known:
                    links.unknown.setdefault(row, set()).add(commit)
    return out


def policy_candidates_of(state: PlanState) -> dict[tuple[int, str], set[int]]:
    """(registry policy index, repository) -> the image rows with a tag matching that
    policy's `tags`, in the repositories where it is the first policy to match."""
    cleanup, images = state.config.cleanup, state.images
    candidates: dict[tuple[int, str], set[int]] = defaultdict(set)
    if not cleanup.registry_policies:
        return candidates
    patterns = [[name_pattern(t) for t in p.tags] for p in cleanup.registry_policies]
    policy_of = {r: cleanup.registry_policy_of(r) for r in set(images.tag_repositories)}
    names = zip(images.tag_rows, images.tag_names, images.tag_repositories, strict=True)
    for image, tag, repository in names:
        index = policy_of[repository]
        matches = index is not None and any(p.fullmatch(tag) for p in patterns[index])
        if matches and index is not None and state.known[image]:
            candidates[(index, repository)].add(image)
    return candidates


class TagLookup:
    """(repository, tag) -> row of the tags frame, built on first use."""

    def __init__(self, images: Catalog) -> None:
        self._images = images
        self._rows: dict[tuple[str, str], int] | None = None

    def row(self, key: tuple[str, str]) -> int | None:
        if self._rows is None:
            names = zip(self._images.tag_repositories, self._images.tag_names, strict=True)
            self._rows = {name: row for row, name in enumerate(names)}
        return self._rows.get(key)

    def image(self, key: tuple[str, str]) -> int | None:
        row = self.row(key)
        return None if row is None else self._images.tag_rows[row]


def created_column(images: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Per image row, its own `created` in epoch microseconds and whether it is known (none
    for rows the registry stage did not read)."""
    created = np.zeros(len(images), dtype=np.int64)
    has = np.zeros(len(images), dtype=bool)
    column = images.images["created"]
    has[: images.known] = column.notna().to_numpy()
    created[: images.known] = column.astype("int64").to_numpy()
    return created, has


def created_micros(
    images: Catalog, children: dict[int, list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per image row, `created` in epoch microseconds and whether it is known; an index
    takes its newest child's time when that is newer (in edge order: indexes may nest)."""
    created, has = created_column(images)
    for parent, kids in children.items():
        times = [int(created[k]) for k in kids if has[k]]
        if times and (not has[parent] or max(times) > created[parent]):
            created[parent] = max(times)
            has[parent] = True
    return created, has


def referrers_of(
    images: Catalog, children: dict[int, list[int]]
) -> dict[int, list[tuple[str, int | None]]]:
    """Map each referrer row to its subjects' digests and rows (None when the registry has
    no such manifest); a manifest may refer to several (a signature tag moved onto another).
    Referrers: an OCI `subject`, a `sha256-<hex>.sig|.att|.sbom` tag, the referrers fallback
    index tagged `sha256-<hex>` and every manifest that index lists (`children`: the
    plan's parent row -> child rows)."""
    subjects: dict[int, list[tuple[str, int | None]]] = defaultdict(list)

    def add(image: int, subject: str, repository: str) -> None:
        link = (subject, images.find((repository, subject)))
        if link not in subjects[image]:
            subjects[image].append(link)

    own = arrow_strings(images.images["subject"])
    for image in np.flatnonzero(pc.not_equal(own, "").to_numpy(zero_copy_only=False)).tolist():
        add(image, own[image].as_py(), images.repositories[image])
    scheme = pc.starts_with(arrow_strings(images.tags["tag"]), "sha256-")
    fallback_indexes: list[int] = []
    for at in np.flatnonzero(scheme.to_numpy(zero_copy_only=False)).tolist():
        subject = referrer_tag_subject(images.tag_names[at])
        if subject is not None:
            image, repository = images.tag_rows[at], images.tag_repositories[at]
            add(image, subject, repository)
            if is_fallback_index_tag(images.tag_names[at]):
                fallback_indexes.append(image)
    for index in fallback_indexes:
        for child in children.get(index, []):
            for subject, _ in subjects[index]:
                add(child, subject, images.repositories[child])
    return dict(subjects)
