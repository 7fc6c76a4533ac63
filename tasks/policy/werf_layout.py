"""A repository as werf 2 writes it, read from its tags and labels (pure).

werf keeps a project in one repository (werf/werf `pkg/storage/repo_stages_storage.go`,
`pkg/image/const.go`, read at commit 73d8d4ac9):

- a *stage*: tag `<sha3-224 hex>-<unix ms>` (the stage ID); labels `werf` (the project),
  `werf.io/parent-stage-id` (its parent stage ID), `werf-import-checksum-*` /
  `werf-import-source-stage-id-*` and `werf-dependency-stage-id-*` (its sources);
  *custom tags* are further tags on a stage's digest;
- a *meta record* `meta-<imageMetadataID>_<commit>_<stageID>` per werf image, commit and
  stage: the image (imageMetadataID = murmur3-32 of its name, `%x`) was published at that
  commit as that stage. With content-based tagging one stage serves many commits;
- `custom-tag-meta-<slug>` (labels `stage-id`, `tag`), `managed-image-<slug>`,
  `<stageID>-rejected` and `import-metadata-<id>` (labels `source-stage-id`, `checksum`)
  records, each a manifest-only image of its own.

werf's cleanup (`pkg/cleaning/cleanup.go`) decides per werf image: keepPolicies over the
commits of its meta records, then every protected stage keeps its ancestors (parent stage
ID), and a stage protected by anything but the Git policy its import and dependency
sources too; records follow their stage.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from tasks.policy.catalog import Catalog

STAGE_TAG = re.compile(r"^[0-9a-f]{56}-[0-9]+$")
META_TAG = re.compile(r"^meta-([0-9a-f]{1,8})_([0-9a-f]{40})_([0-9a-f]{56}-[0-9]+)$")
REJECTED_TAG = re.compile(r"^([0-9a-f]{56}-[0-9]+)-rejected$")
RECORD_PREFIXES = ("custom-tag-meta-", "managed-image-", "import-metadata-")
PARENT_LABEL = "werf.io/parent-stage-id"
SOURCE_LABEL_PREFIXES = ("werf-import-source-stage-id-", "werf-dependency-stage-id-")
IMPORT_CHECKSUM_PREFIX = "werf-import-checksum-"


@dataclass
class WerfRepository:
    """What werf wrote in one repository, in image rows of the plan's catalog."""

    name: str
    stages: dict[str, int] = field(default_factory=dict)  # stage ID -> image row
    # (werf image id, commit) per stage row: where each werf image was published as it
    published: dict[int, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    meta: list[tuple[int, str, str, str]] = field(default_factory=list)  # (row, id, commit, stage)
    custom: dict[int, str] = field(default_factory=dict)  # custom-tag-meta row -> stage ID
    imports: dict[int, str] = field(default_factory=dict)  # import-metadata row -> stage ID
    managed: list[int] = field(default_factory=list)  # managed-image record rows
    rejected: dict[int, str] = field(default_factory=dict)  # rejected record row -> stage ID
    checksums: dict[str, list[str]] = field(default_factory=dict)  # import checksum -> stages

    @property
    def images(self) -> set[str]:
        """The werf image ids that have published anything here."""
        return {image for _, image, _, _ in self.meta}

    def rows(self) -> set[int]:
        """Every row werf wrote: stages and records."""
        records = {row for row, *_ in self.meta}
        return (
            set(self.stages.values())
            | records
            | set(self.custom)
            | set(self.imports)
            | set(self.managed)
            | set(self.rejected)
        )

    def records(self) -> set[int]:
        """The rows of werf's records (manifest-only images: no stage, no image to run)."""
        return self.rows() - set(self.stages.values())

    def stage_rows_of(self, labels: dict[str, str]) -> tuple[list[int], list[int]]:
        """(parents, sources): the stage rows the labels of a stage name as its parent, and
        as its import and dependency sources."""
        parent = self.stages.get(labels.get(PARENT_LABEL, ""))
        sources = []
        for label, value in labels.items():
            if label.startswith(SOURCE_LABEL_PREFIXES):
                ids = [value]
            elif label.startswith(IMPORT_CHECKSUM_PREFIX):
                ids = self.checksums.get(value, [])
            else:
                continue
            sources += [self.stages[i] for i in ids if i in self.stages]
        return ([parent] if parent is not None else []), sources

    def summary(self) -> str:
        return (
            f"{self.name}: werf layout ({len(self.stages)} stages, {len(self.meta)} meta "
            f"records, {len(self.images)} werf images)"
        )


def werf_repositories(images: Catalog, source: str) -> dict[str, WerfRepository]:
    """The repositories of `images` read the werf way: with `source` ``werf`` every one,
    with ``auto`` those that have a meta record naming a stage, or a stage labelled `werf`,
    with ``oci`` none."""
    if source == "oci":
        return {}
    by_repo: dict[str, WerfRepository] = {}
    labels = images.images["labels"].tolist()
    tags_of: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for repository, tag, row in zip(
        images.tag_repositories, images.tag_names, images.tag_rows, strict=True
    ):
        tags_of[repository].append((tag, row))
    for repository, tags in tags_of.items():
        found = WerfRepository(repository)
        for tag, row in tags:
            if STAGE_TAG.match(tag):
                found.stages[tag] = row
        for tag, row in tags:
            meta = META_TAG.match(tag)
            rejected = REJECTED_TAG.match(tag)
            row_labels = labels[row] if row < images.known and labels[row] else {}
            if meta:
                image, commit, stage = (str(part) for part in meta.groups())
                found.meta.append((row, image, commit, stage))
                if stage in found.stages:
                    found.published[found.stages[stage]].add((image, commit))
            elif rejected:
                found.rejected[row] = rejected.group(1)
            elif tag.startswith("custom-tag-meta-"):
                found.custom[row] = str(row_labels.get("stage-id", ""))
            elif tag.startswith("import-metadata-"):
                stage = str(row_labels.get("source-stage-id", ""))
                found.imports[row] = stage
                checksum = str(row_labels.get("checksum", ""))
                if checksum:
                    found.checksums.setdefault(checksum, []).append(stage)
            elif tag.startswith("managed-image-"):
                found.managed.append(row)
        labelled = any(
            row < images.known and labels[row] and "werf" in labels[row]
            for row in found.stages.values()
        )
        if source == "werf" or found.published or labelled:
            by_repo[repository] = found
    return by_repo


def murmur3_32(text: str, seed: int = 0) -> str:
    """werf's imageMetadataID of an image name: MurmurHash3 x86 32-bit of its UTF-8 bytes,
    as `%x` (werf `util.LegacyMurmurHash`, one argument)."""
    data = text.encode()
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    blocks = len(data) // 4
    for i in range(blocks):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[4 * blocks :]
    k = 0
    for i, byte in enumerate(tail):
        k |= byte << (8 * i)
    if tail:
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return f"{h:x}"
