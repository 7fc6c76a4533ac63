"""The OCI distribution API as a vendor (`Vendor`, kind `distribution`), and the interface
every backend's class overrides where its vendor does otherwise (see the package).

Where a vendor's API reports when each manifest was pushed (`push_times` names the field),
`pushed` reads it for the registry policies' push rules, which otherwise rank by `created`.

`vendor_of(client)` is the one a client uses: the OCI API's unless
`RegistryKind.attach_to` gave it another (`tasks.registry.stage.make_client` does, from
`registry.kind`). The client itself knows no vendor: it only closes what one opened
(`RegistryClient.closing`).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from tasks.registry.errors import DeleteUnsupported, InvalidResponse, NotFound
from tasks.registry.paths import manifest_path
from tasks.registry.repositories import list_repositories

if TYPE_CHECKING:
    from tasks.registry.client import RegistryClient

Protection = tuple[str, str, str]
"""(tag, digest, why) of a vendor protection: a tag (empty digest), or a digest (empty tag)."""

# A tag no registry holds: asking to delete it tells a registry that deletes tags (404:
# no such tag) from one that does not (400 or 405), and changes nothing either way.
PROBE_TAG = "regsweep-probe-tag-delete"
# A digest no manifest has: asking to delete it tells a registry with deletes enabled (404
# MANIFEST_UNKNOWN) from one with deletes disabled (405 UNSUPPORTED), changing nothing.
IMPOSSIBLE_DIGEST = "sha256:" + "0" * 64
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Vendor:
    """The OCI distribution API: the catalog lists, DELETE by digest deletes a manifest with
    its tags, DELETE by tag deletes a tag where the registry offers it (asked).

    The class attributes and class methods describe the kind before any client exists:
    how it is detected, its default API, what `check` and the report say about it."""

    name = "distribution"  # its kind: the key of tasks.core.registry_kinds.REGISTRY_KINDS
    detect: ClassVar[re.Pattern[str] | None] = None  # hosts that are this kind (None: named)
    default_api = ""  # the vendor API's URL when registry.api does not name one
    has_api = False  # whether the kind has an API besides the OCI one (registry.api)
    api = ""  # the vendor API's URL where it has one (the ledger names it)
    # What `check` and the report say lists repositories and deletes ({api}: the API's URL)
    lists = "the OCI API"
    deletes = "the OCI distribution API (DELETE /v2/<name>/manifests/<digest>)"
    restores_versions = False  # what its API deleted, its API restores (`restore_version`)
    protects = False  # whether `protected` can find anything (else the pass is skipped)
    counts_pulls = False  # manifest GETs count against a pull rate limit: HEAD first, always
    push_times = ""  # the vendor's field `pushed` reads, e.g. "ECR imagePushedAt" (else none)
    tag_api = ""  # the vendor API that deletes a tag alone, if any (else the OCI API, asked)

    @classmethod
    def api_for(cls, configured: str, host: str) -> str:
        """The vendor API's URL: `registry.api` (`configured`), else the default; empty for
        a kind with none."""
        return (configured or cls.default_api).rstrip("/") if cls.has_api else ""

    @classmethod
    def serves(cls, api: str) -> bool:
        """Whether this class can speak for the registry with `api` (else the OCI one does)."""
        return True

    @classmethod
    def lists_through(cls, api: str) -> str:
        """Where the repositories come from (tags and manifests: the OCI API everywhere)."""
        return cls.lists.format(api=api)

    @classmethod
    def deletes_through(cls, api: str) -> str:
        return cls.deletes.format(api=api)

    @classmethod
    def advice(cls, api: str) -> str:
        """What to configure to use this kind fully ("" when nothing is missing)."""
        return ""

    def __init__(self, client: RegistryClient, api: str = "") -> None:
        self.client = client
        client.closing.append(self.aclose)

    async def aclose(self) -> None:
        """Close what the vendor opened (its API's connections)."""

    async def repositories(self, globs: list[str]) -> list[str]:
        """Every repository the globs may match (the catalog here)."""
        return await list_repositories(self.client)

    async def protected(self, repository: str, tags: list[str]) -> list[Protection]:
        """What the vendor protects in `repository` (`tags`: its scanned tags)."""
        return []

    async def pushed(self, repository: str, tags: list[str]) -> dict[str, datetime]:
        """digest -> when the vendor says the manifest was (last) pushed, for every manifest
        its API lists in `repository` (`tags`: its scanned tags; only where `push_times`
        names a field). Raises `RegistryError` when the listing cannot be read (the
        repository is then incomplete)."""
        return {}

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete the manifest `digest` with every tag on it; False when it was gone (404).
        Raises `DeleteUnsupported` when the registry refuses deletes (405)."""
        try:
            await self.client.request(
                "DELETE",
                manifest_path(repository, digest),
                scope=f"repository:{repository}:delete",
            )
        except NotFound:
            return False
        return True

    def cannot_delete(self, tags: tuple[str, ...]) -> str:
        """Why this vendor has no way to delete a manifest with `tags` ("" when it has):
        such a manifest is left, reported `skipped-unsupported`, not a failure."""
        return ""

    async def delete_image(self, repository: str, digest: str, tags: tuple[str, ...]) -> bool:
        """Delete the manifest `digest` and its `tags` the way this registry does it best
        (here: one DELETE by digest takes the tags with it)."""
        return await self.delete_manifest(repository, digest)

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Delete the tag `tag` and nothing else (OCI distribution spec 1.1; Distribution
        3.0+); False when it was gone. Raises `DeleteUnsupported` where the registry does
        not delete tags: the spec has it answer 400 or 405 (Distribution 2.8 answers 400
        DIGEST_INVALID, later versions 400 UNSUPPORTED)."""
        response = await self.client.request(
            "DELETE",
            manifest_path(repository, tag),
            scope=f"repository:{repository}:delete",
            allow=frozenset({400, 404, 405}),
        )
        if response.status_code in (400, 405):
            raise DeleteUnsupported(
                f"{repository}: the registry does not delete tags (DELETE by tag answered "
                f"{response.status_code}: {response.text[:200].strip()})"
            )
        return response.status_code != 404

    async def deletes_manifests(self, repository: str) -> bool:
        """True when manifests can be deleted by digest in `repository` (asked: DELETE of a
        digest that cannot exist). Raises what the registry says otherwise (401, 403...)."""
        try:
            await self.delete_manifest(repository, IMPOSSIBLE_DIGEST)
        except DeleteUnsupported:
            return False
        return True

    async def deletes_tags(self, repository: str) -> bool:
        """True when tags can be deleted one by one in `repository` (asked, not guessed)."""
        try:
            await self.delete_tag(repository, f"{PROBE_TAG}-{secrets.token_hex(6)}")
        except DeleteUnsupported:
            return False
        return True

    async def check_deletes(self, repository: str) -> tuple[bool, str] | None:
        """For `regsweep check`: whether deletes will work in `repository` and why, where a
        vendor's API deletes (None: the OCI API, probed by the check itself)."""
        return None

    async def ledger_id(self, repository: str, digest: str) -> str:
        """What the vendor's API calls the manifest (for the ledger); empty here."""
        return ""

    @classmethod
    def for_restore(cls, client: RegistryClient, api: str) -> Vendor:
        """This vendor at `api`, as a ledger record names it, for `restore_version`.
        Raises `DeleteUnsupported` where the vendor's API restores nothing."""
        raise DeleteUnsupported(f"{cls.name}: its API restores nothing that was deleted")

    async def restore_version(self, repository: str, vendor_id: str) -> None:
        """Put back what this vendor's API deleted as `vendor_id` (its ledger record's id)."""
        raise DeleteUnsupported(f"{self.name}: its API restores nothing that was deleted")


def vendor_time(value: object, what: str) -> datetime | None:
    """A vendor's timestamp (ISO 8601 with a zone, or a datetime with one) as a datetime;
    None when the vendor gave none, or a zero time (Go's year 1, the Unix epoch): "unset",
    not "old". Raises `InvalidResponse` for anything else: a time that cannot be read must
    not rank an image as old."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidResponse(f"{what}: {value[:64]!r} is not an ISO 8601 time") from None
    else:  # a hostile API's value is quoted, and cut short
        raise InvalidResponse(f"{what}: {repr(value)[:64]} is not a time")
    if when.tzinfo is None:
        raise InvalidResponse(f"{what}: {repr(value)[:64]} has no time zone")
    return None if when <= UNIX_EPOCH else when


def vendor_of(client: RegistryClient) -> Vendor:
    """The vendor `client` uses: the one attached, else the OCI API's."""
    found = client.vendor
    if not isinstance(found, Vendor):
        found = Vendor(client)
        client.vendor = found
    return found
