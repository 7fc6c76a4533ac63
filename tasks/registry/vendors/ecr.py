"""Amazon ECR's API through boto3: repositories, images (with their archive status) and
`BatchDeleteImage`.

ECR serves the OCI API for reads and pushes; deletion goes through `BatchDeleteImage`, by
digest (the image with every tag) or by tag (that tag; the image stays while it has
others). Images in the archive storage class (`imageStatus` ARCHIVED or ACTIVATING) are
left alone: the scan reports their tags as protected. Each image's `imagePushedAt` is its
push time for the registry policies. Credentials come the AWS way (boto3's
chain: environment, profile, web identity / IRSA, instance role); the region and registry
id come from the host `<account>.dkr.ecr.<region>.amazonaws.com`. boto3 is synchronous: each
call runs in a thread. botocore retries throttling as AWS documents it (standard mode), as
many times as `tasks.registry.retry` retries everything else.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tasks.core.errors import ConfigError
from tasks.registry.errors import (
    AccessDenied,
    AuthenticationFailed,
    NotFound,
    RegistryError,
    RegistryUnavailable,
)
from tasks.registry.retry import DEFAULT_RETRY
from tasks.registry.vendors.base import Protection, Vendor, vendor_time

if TYPE_CHECKING:
    from tasks.registry.client import RegistryClient

HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")
ARCHIVED = ("ARCHIVED", "ACTIVATING")
IMAGES_PAGE = 1000  # DescribeImages' largest page


@dataclass(frozen=True)
class EcrImage:
    digest: str
    tags: tuple[str, ...]
    status: str
    pushed: datetime | None  # imagePushedAt


class EcrRegistry:
    """One ECR registry (`registry_id` in `region`); `endpoint` overrides AWS's (tests)."""

    api = ""

    def __init__(self, registry_id: str, region: str, endpoint: str = "") -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError(
                "registry.kind", "ecr needs boto3: pip install 'regsweep[ecr]'"
            ) from None
        self.registry_id, self.api = registry_id, endpoint
        self._client: Any = boto3.client(
            "ecr",
            region_name=region,
            endpoint_url=endpoint or None,
            config=Config(retries=DEFAULT_RETRY.botocore_retries()),
        )

    @classmethod
    def for_host(cls, host: str, endpoint: str = "") -> EcrRegistry:
        """From an ECR host; another host (a pull-through name, a test's) takes the region
        from the AWS configuration and the caller's default registry."""
        match = HOST.match(host)
        if match is not None:
            return cls(match["account"], match["region"], endpoint)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise ConfigError(
                "registry.url",
                f"{host} is not <account>.dkr.ecr.<region>.amazonaws.com: set AWS_REGION",
            )
        return cls("", region, endpoint)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def _call(self, operation: str, what: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        method = getattr(self._client, operation)
        if self.registry_id:
            params["registryId"] = self.registry_id
        try:
            answer: dict[str, Any] = await asyncio.to_thread(method, **params)
        except NoCredentialsError as exc:
            raise AuthenticationFailed(f"{what}: no AWS credentials ({exc})") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            text = f"{what}: ECR {operation}: {code}: {error.get('Message', '')}"
            if code in ("RepositoryNotFoundException", "ImageNotFoundException"):
                raise NotFound(text) from None
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise AccessDenied(text) from None
            if code in ("ServerException", "ThrottlingException"):
                raise RegistryUnavailable(text) from None
            raise RegistryError(text) from None
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"{what}: ECR {operation}: {exc}") from None
        return answer

    async def repositories(self) -> list[str]:
        """Every repository of the registry (ECR serves no catalog)."""
        names: list[str] = []
        token: str | None = None
        while True:
            extra = {"nextToken": token} if token else {}
            answer = await self._call(
                "describe_repositories", "repositories", maxResults=1000, **extra
            )
            names += [str(r["repositoryName"]) for r in answer.get("repositories", [])]
            token = answer.get("nextToken")
            if not token:
                return sorted(names)

    async def images(self, repository: str, status: str) -> list[EcrImage]:
        """The images of `repository` with `imageStatus` `status` (DescribeImages, paged)."""
        found: list[EcrImage] = []
        token: str | None = None
        while True:
            extra = {"nextToken": token} if token else {}
            answer = await self._call(
                "describe_images",
                repository,
                repositoryName=repository,
                filter={"imageStatus": status},
                maxResults=IMAGES_PAGE,
                **extra,
            )
            for image in answer.get("imageDetails", []):
                digest = str(image["imageDigest"])
                found.append(
                    EcrImage(
                        digest,
                        tuple(image.get("imageTags") or ()),
                        str(image.get("imageStatus", status)),
                        vendor_time(image.get("imagePushedAt"), f"{repository}@{digest}"),
                    )
                )
            token = answer.get("nextToken")
            if not token:
                return found

    async def archived(self, repository: str) -> list[EcrImage]:
        """The images of `repository` in the archive storage class."""
        return [image for status in ARCHIVED for image in await self.images(repository, status)]

    async def delete(self, repository: str, image_id: dict[str, str]) -> bool:
        """BatchDeleteImage of one image id (a digest or a tag); False when it was gone."""
        what = f"{repository} {image_id}"
        answer = await self._call(
            "batch_delete_image", what, repositoryName=repository, imageIds=[image_id]
        )
        failures = answer.get("failures") or []
        if not failures:
            return True
        failure = failures[0]
        code = failure.get("failureCode", "")
        if code == "ImageNotFound":
            return False
        raise RegistryError(f"{what}: ECR refused: {code}: {failure.get('failureReason', '')}")


class Ecr(Vendor):
    """ECR: repositories from DescribeRepositories (no catalog), deletes through
    BatchDeleteImage (by digest, or by tag: ECR untags), archived images protected."""

    name = "ecr"
    protects = True
    push_times = "ECR imagePushedAt"
    tag_api = "ECR's BatchDeleteImage, by tag"

    detect = re.compile(r"^\d+\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(:443)?$")
    has_api = True  # registry.api: another endpoint for ECR's API (else AWS's own)

    lists = "ECR's DescribeRepositories"
    deletes = "ECR's BatchDeleteImage (boto3; AWS credentials the AWS way)"

    def __init__(self, client: RegistryClient, api: str = "") -> None:
        super().__init__(client)
        self.ecr = EcrRegistry.for_host(client.host, api)
        self.api = self.ecr.api
        self._archived: dict[str, list[EcrImage]] = {}

    async def aclose(self) -> None:
        await self.ecr.aclose()

    async def repositories(self, globs: list[str]) -> list[str]:
        return await self.ecr.repositories()

    async def archived(self, repository: str) -> list[EcrImage]:
        """The repository's archived images (read once a scan: protections and push times)."""
        if repository not in self._archived:
            self._archived[repository] = await self.ecr.archived(repository)
        return self._archived[repository]

    async def protected(self, repository: str, tags: list[str]) -> list[Protection]:
        found: list[Protection] = []
        for image in await self.archived(repository):
            why = f"ECR archive storage class ({image.status}): left alone"
            found += [("", image.digest, why), *((tag, image.digest, why) for tag in image.tags)]
        return found

    async def pushed(self, repository: str, tags: list[str]) -> dict[str, datetime]:
        images = [*await self.ecr.images(repository, "ACTIVE"), *await self.archived(repository)]
        return {image.digest: image.pushed for image in images if image.pushed is not None}

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        return await self.ecr.delete(repository, {"imageDigest": digest})

    async def delete_tag(self, repository: str, tag: str) -> bool:
        return await self.ecr.delete(repository, {"imageTag": tag})

    async def deletes_tags(self, repository: str) -> bool:
        return True
