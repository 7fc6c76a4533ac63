"""A loopback fake of Amazon ECR's API, over a real registry.

No AWS here, and moto's ECR keeps images of its own that the OCI side would not see, so
this serves the three operations regsweep calls as botocore's service model
(`ecr/2015-09-21`) describes them (every exchange is held to the model after each test:
tests/contracts/descriptions/ecr.yaml), in its JSON 1.1 protocol (`POST /`,
`X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>`):

    DescribeRepositories  {repositories: [{repositoryName, registryId, ...}], nextToken}
    DescribeImages        {imageDetails: [{imageDigest, imageTags, imageStatus,
                          imagePushedAt (epoch seconds: when the real registry wrote it)}],
                          nextToken}; `filter.imageStatus` (default ACTIVE only), pages of
                          `maxResults`
    BatchDeleteImage      {imageIds, failures: [{imageId, failureCode, failureReason}]}:
                          by digest the image and its tags; by tag that tag (and the image
                          with its last tag); ImageNotFound; ImageReferencedByManifestList
                          for a manifest an index still lists

A request must carry a SigV4 `Authorization` (its signature is not checked);
`throttle_every` answers `ThrottlingException` (400), which botocore retries. Repositories
and images are the real registry's (its storage layout); `archived` digests have the
ARCHIVED status. The OCI side (`oci()`) refuses DELETE of a manifest and serves no catalog.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from typing import Any

from tasks.core import mediatypes
from tests.servers.http_proxy import Answer, RegistryProxy
from tests.servers.json_api import VendorApiFake
from tests.servers.storage_view import images_of, pushed_at

TARGET = "AmazonEC2ContainerRegistry_V20150921."
ACCOUNT = "123456789012"


@dataclass
class EcrFake(VendorApiFake):
    """`requests`: those answered, as (operation, repository); `limit_every`: throttled."""

    description = "ecr"

    archived: set[str] = field(default_factory=set)
    throttled: int = 0

    def oci(self) -> RegistryProxy:
        def refuse(method: str, path: str, headers: dict[str, str]) -> Answer | None:
            if (method == "DELETE" and "/manifests/" in path) or path.startswith("/v2/_catalog"):
                body = {"errors": [{"code": "UNSUPPORTED", "message": "use the ECR API"}]}
                return 405, {"Content-Type": "application/json"}, json.dumps(body).encode()
            return None

        return RegistryProxy(self.registry.url, intercept=refuse)

    def _images(self, repository: str) -> dict[str, list[str]]:
        return images_of(self.registry, repository)

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        operation = headers.get("x-amz-target", "").removeprefix(TARGET)
        request = json.loads(body or b"{}")
        with self._lock:
            self._count += 1
            throttled = self.limit_every and self._count % self.limit_every == 0
            self.throttled += bool(throttled)
        if not headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 Credential="):
            return _error("UnrecognizedClientException", "The security token is invalid.")
        if throttled:
            return _error("ThrottlingException", "Rate exceeded")
        with self._lock:
            self.requests.append((operation, str(request.get("repositoryName", ""))))
        if operation == "DescribeRepositories":
            names = sorted(
                str(p.parent.relative_to(self.root())) for p in self.root().glob("**/_manifests")
            )
            repos = [{"repositoryName": n, "registryId": ACCOUNT} for n in names]
            return _ok({"repositories": repos})
        repository = str(request.get("repositoryName", ""))
        if not (self.root() / repository / "_manifests").is_dir():
            return _error("RepositoryNotFoundException", f"repository {repository} not found")
        if operation == "DescribeImages":
            wanted = (request.get("filter") or {}).get("imageStatus", "ACTIVE")
            details = [
                {
                    "registryId": ACCOUNT,
                    "repositoryName": repository,
                    "imageDigest": digest,
                    "imageTags": tags,
                    "imageStatus": "ARCHIVED" if digest in self.archived else "ACTIVE",
                    "imagePushedAt": pushed_at(self.registry, repository, digest).timestamp(),
                }
                for digest, tags in sorted(self._images(repository).items())
            ]
            details = [d for d in details if d["imageStatus"] == wanted]
            size = int(request.get("maxResults") or 100)
            start = int(request.get("nextToken") or 0)
            page: dict[str, Any] = {"imageDetails": details[start : start + size]}
            if start + size < len(details):
                page["nextToken"] = str(start + size)
            return _ok(page)
        if operation == "BatchDeleteImage":
            return self._delete(repository, request.get("imageIds") or [])
        return _error("InvalidParameterException", f"unknown operation {operation}")

    def _delete(self, repository: str, ids: list[dict[str, str]]) -> Answer:
        done, failures = [], []
        for image_id in ids:
            images = self._images(repository)
            digest = image_id.get("imageDigest") or next(
                (d for d, tags in images.items() if image_id.get("imageTag") in tags), None
            )
            if digest is None or digest not in images:
                failures.append(
                    {
                        "imageId": image_id,
                        "failureCode": "ImageNotFound",
                        "failureReason": "Requested image not found",
                    }
                )
                continue
            if "imageTag" in image_id and len(images[digest]) > 1:  # the tag only
                shutil.rmtree(
                    self.root() / repository / "_manifests" / "tags" / image_id["imageTag"]
                )
                done.append(image_id)
                continue
            if self._listed_by_an_index(repository, digest, images):
                failures.append(
                    {
                        "imageId": image_id,
                        "failureCode": "ImageReferencedByManifestList",
                        "failureReason": "Requested image referenced by manifest list",
                    }
                )
                continue
            status, _, body = self.registry_request(
                "DELETE", f"/v2/{repository}/manifests/{digest}"
            )
            assert status == 202, (status, body)
            done.append({"imageDigest": digest, **image_id})
        # the model's ImageIdentifierList has at least one member: none deleted, none sent
        return _ok({"imageIds": done, "failures": failures} if done else {"failures": failures})

    def _listed_by_an_index(
        self, repository: str, digest: str, images: dict[str, list[str]]
    ) -> bool:
        for other in images:
            if other == digest:
                continue
            status, _, raw = self.registry_request(
                "GET", f"/v2/{repository}/manifests/{other}", Accept=mediatypes.ACCEPT
            )
            body = json.loads(raw) if status == 200 else {}
            if any(m.get("digest") == digest for m in body.get("manifests") or []):
                return True
        return False


def _ok(body: dict[str, Any]) -> Answer:
    return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body).encode()


def _error(code: str, message: str) -> Answer:
    body = {"__type": code, "message": message}
    return 400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body).encode()
