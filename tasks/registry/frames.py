"""The registry stage's frames: their schema, the extraction that holds them, and the
operations on whole frames (merge, marking repositories incomplete). `tasks.registry.extract`
scans, `tasks.registry.readers` reads a repository into these frames.

DataFrames (one row per ...):

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

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from tasks.core.progress import ScanProgress

if TYPE_CHECKING:
    import pandas as pd

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


@dataclass
class RegistryExtraction:
    """The registry as read at one moment."""

    images: pd.DataFrame
    tags: pd.DataFrame
    index_edges: pd.DataFrame
    blobs: pd.DataFrame
    status: pd.DataFrame
    protected: pd.DataFrame = field(default_factory=lambda: frame([], PROTECTED_COLUMNS))
    pushed: pd.DataFrame = field(default_factory=lambda: frame([], PUSHED_COLUMNS))
    dangling: pd.DataFrame = field(default_factory=lambda: frame([], DANGLING_COLUMNS))

    def report_finished(self, progress: ScanProgress) -> None:
        """Tell `progress` every repository of this extraction is done (for scans whose
        parts finish elsewhere: worker processes, Dask tasks)."""
        for repository, count in zip(self.status["repository"], self.status["tags"], strict=True):
            progress(str(repository), int(count), int(count))

    def incomplete(self) -> list[str]:
        """Repositories whose listing is incomplete: the delete stage must not touch them."""
        return sorted(self.status.loc[~self.status["complete"], "repository"])


def merge_extractions(parts: list[RegistryExtraction]) -> RegistryExtraction:
    """One extraction from extractions of disjoint sets of repositories."""
    import pandas as pd

    return RegistryExtraction(
        **{
            f.name: pd.concat([getattr(p, f.name) for p in parts], ignore_index=True)
            for f in fields(RegistryExtraction)
        }
    )


def marked_incomplete(status: pd.DataFrame, failed: dict[str, str]) -> pd.DataFrame:
    """`status` with each repository of `failed` incomplete, for the reason given."""
    status = status.copy()
    for repository, why in failed.items():
        at = status["repository"] == repository
        status.loc[at, "complete"] = False
        status.loc[at, "error"] = why
    return status


def frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    from tasks.core.frames import typed_frame

    return typed_frame(rows, columns)
