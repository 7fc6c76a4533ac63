"""Every registry API path, built only from names and digests that pass the distribution
spec's grammar (`tasks.core.reference`).

Names come from the network (the catalog, tag lists, manifest bodies, headers) and from files
(the ledger): a `..`, a `%2e`, a CR/LF or a digest that is not 64 hex digits must never reach
a URL, the cache's paths or a log line that someone copies. A value that fails is an
`InvalidResponse` naming it: the repository it came from is then incomplete (fail closed),
and no other repository is affected.
"""

from __future__ import annotations

from tasks.core.reference import is_digest, is_repository_name, is_tag_name
from tasks.registry.errors import InvalidResponse


def _repository(name: str) -> str:
    if not is_repository_name(name):
        raise InvalidResponse(f"refusing repository name {name[:300]!r}: not a valid name")
    return name


def _digest(repository: str, digest: str) -> str:
    if not is_digest(digest):
        raise InvalidResponse(
            f"{repository}: refusing digest {digest[:300]!r}: not sha256:<64 hex>"
        )
    return digest


def checked_tag(repository: str, tag: str) -> str:
    """`tag` if it is a valid tag name, else `InvalidResponse`."""
    if not is_tag_name(tag):
        raise InvalidResponse(f"{repository}: refusing tag {tag[:300]!r}: not a valid tag")
    return tag


def checked_digest(repository: str, digest: str) -> str:
    """`digest` if it is `sha256:<64 lower-case hex>`, else `InvalidResponse`."""
    return _digest(repository, digest)


def manifest_path(repository: str, reference: str) -> str:
    """`/v2/<name>/manifests/<tag or digest>`."""
    ref = _digest(repository, reference) if ":" in reference else checked_tag(repository, reference)
    return f"/v2/{_repository(repository)}/manifests/{ref}"


def blob_path(repository: str, digest: str) -> str:
    """`/v2/<name>/blobs/<digest>`."""
    return f"/v2/{_repository(repository)}/blobs/{_digest(repository, digest)}"


def upload_path(repository: str) -> str:
    """`/v2/<name>/blobs/uploads/`."""
    return f"/v2/{_repository(repository)}/blobs/uploads/"


def referrers_path(repository: str, digest: str) -> str:
    """`/v2/<name>/referrers/<digest>`."""
    return f"/v2/{_repository(repository)}/referrers/{_digest(repository, digest)}"


def tags_path(repository: str, page_size: int) -> str:
    """`/v2/<name>/tags/list?n=<page_size>`."""
    return f"/v2/{_repository(repository)}/tags/list?n={page_size}"
