"""The vendor descriptions the fakes are held to (tests/contracts/descriptions), and proof
that holding them can fail: a divergence planted in what a fake answered (a renamed field)
or in what a backend sent (a parameter the description does not allow, a path it does not
define) is named, with its operation and field. Every test that uses a fake with a
description is checked after it ran (tests/conftest.py: `held_to_the_descriptions`)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flows.demo.registry_server import LocalRegistry
from tasks.registry.client import RegistryClient
from tasks.registry.vendors.acr import Acr
from tasks.registry.vendors.dockerhub import HubApi
from tasks.registry.vendors.ecr import EcrRegistry
from tasks.registry.vendors.github import GitHubPackages
from tasks.registry.vendors.gitlab import GitLabRegistry
from tasks.registry.vendors.harbor import Harbor
from tests.contracts.extract import OPERATIONS, trim
from tests.contracts.validate import (
    DESCRIPTIONS,
    RECORDED,
    BotocoreContract,
    Contract,
    Exchange,
    contract,
    load,
)
from tests.registry.vendors import aws_test_credentials, push
from tests.servers.acr_api import AcrFake
from tests.servers.dockerhub_api import DockerHubFake
from tests.servers.ecr_api import EcrFake
from tests.servers.github_packages import GitHubPackagesFake
from tests.servers.gitlab_api import GitLabFake
from tests.servers.harbor_api import HarborFake

VENDORS = sorted(OPERATIONS)


@pytest.mark.parametrize("vendor", VENDORS)
def test_each_description_holds_exactly_our_operations_and_names_its_source(vendor: str) -> None:
    document = load(vendor)
    source = contract(vendor).source
    assert set(source) == {"repository", "path", "commit", "licence"}
    assert re.fullmatch(r"[0-9a-f]{40}|botocore-[0-9.]+", source["commit"]), source
    if "operations" in document:  # a botocore model
        held = {("json", name) for name in document["operations"]}
    else:  # openapi-core validated the description itself as it loaded it
        held = {
            (method, path)
            for path, item in document["paths"].items()
            for method in item
            if method in ("get", "put", "post", "delete", "patch", "head")
        }
    assert held == set(OPERATIONS[vendor])
    assert source["repository"] in (DESCRIPTIONS / "SOURCES.md").read_text()


def test_trimming_keeps_what_an_operation_references_and_converts_swagger_2() -> None:
    swagger = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "basePath": "/api",
        "parameters": {"page": {"name": "page", "in": "query", "type": "integer"}},
        "paths": {
            "/things/{id}": {
                "get": {
                    "operationId": "getThing",
                    "parameters": [
                        {"name": "id", "in": "path", "type": "string", "required": True},
                        {"$ref": "#/parameters/page"},
                    ],
                    "responses": {
                        "200": {"description": "ok", "schema": {"$ref": "#/definitions/Thing"}}
                    },
                },
                "delete": {"responses": {"204": {"description": "gone"}}},
            }
        },
        "definitions": {
            "Thing": {"properties": {"part": {"$ref": "#/definitions/Part"}}},
            "Part": {"properties": {"name": {"type": "string", "x-nullable": True}}},
            "Unused": {"type": "object"},
        },
    }
    trimmed = trim(swagger, [("get", "/things/{id}")])
    assert trimmed["openapi"] == "3.0.3" and trimmed["servers"] == [{"url": "/api"}]
    assert list(trimmed["paths"]["/things/{id}"]) == ["get"]
    assert sorted(trimmed["components"]["schemas"]) == ["Part", "Thing"]
    part = trimmed["components"]["schemas"]["Part"]["properties"]["name"]
    assert part == {"type": "string", "nullable": True}
    get = trimmed["paths"]["/things/{id}"]["get"]
    assert [p["name"] for p in get["parameters"]] == ["id", "page"]
    schema = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Thing"}


def protections_read(
    fake: HarborFake | AcrFake, vendor: type[Harbor] | type[Acr], repository: str
) -> list[Exchange]:
    """What a backend sends to read `repository`'s protections through `fake` (an OCI
    proxy with the vendor's API), and what the fake answers, as recorded (and judged by the
    caller: taken from the record the conftest checks)."""

    async def read() -> None:
        with fake.oci() as oci:
            async with RegistryClient(oci.url) as client:
                await vendor(client).protected(repository, [])

    asyncio.run(read())
    return [exchange for _, exchange in taken()]


def taken() -> list[tuple[str, Exchange]]:
    """(vendor, exchange) of what the test's fakes recorded so far, taken from the record
    the conftest checks: the tests here judge them, and plant divergences in copies."""
    recorded = list(RECORDED)
    RECORDED.clear()
    return recorded


def with_answer(exchange: Exchange, body: object) -> Exchange:
    """`exchange` as if the fake had answered `body` (JSON)."""
    return replace(exchange, answer=json.dumps(body).encode())


def taken_and_held(contract: Contract, operations: set[str]) -> list[Exchange]:
    """The exchanges the test's fakes recorded (`taken`): instances of exactly
    `operations`, and no divergence from `contract` among them."""
    recorded = [exchange for _, exchange in taken()]
    assert {contract.operation_of(e) for e in recorded} == operations
    assert [line for e in recorded for line in contract.divergences(e)] == []
    return recorded


def test_harbor_requests_and_answers_hold_and_planted_divergences_are_named(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    contract = Contract("harbor")
    push(registry.url, {"library/app/web:one": ["v1", "frozen"], "library/app/web:two": []})
    fake = HarborFake(registry, immutable={"frozen"})
    exchanges = protections_read(fake, Harbor, "library/app/web")
    assert exchanges and all(contract.divergences(e) == [] for e in exchanges)
    sent = exchanges[0]
    # the fake renames a field of the answer
    renamed = json.loads(sent.answer)
    renamed[0]["pushed_time"] = renamed[0].pop("push_time")
    found = contract.divergences(with_answer(sent, renamed))
    assert len(found) == 1 and found[0].startswith("harbor listArtifacts: GET ")
    assert "0: Additional properties are not allowed ('pushed_time' was unexpected)" in found[0]
    # the backend sends a parameter value the description does not allow
    wrong = replace(sent, target=sent.target.replace("page_size=100", "page_size=1000"))
    found = contract.divergences(wrong)
    assert len(found) == 1 and "request" in found[0] and "page_size" in found[0]
    # ... or a path it does not define (the repository's name not encoded: two segments)
    unencoded = replace(sent, target=sent.target.replace("app%252Fweb", "app/web"))
    assert "(no operation)" in contract.divergences(unencoded)[0]


def test_ecr_requests_and_answers_hold_and_planted_divergences_are_named(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_test_credentials(monkeypatch)
    digests = push(registry.url, {"team/app:1": ["v1"], "team/app:2": ["pr-1"]})
    with EcrFake(registry).start() as fake:

        async def talk() -> None:
            ecr = EcrRegistry.for_host("ecr.test", fake.url)
            try:
                assert await ecr.repositories() == ["team/app"]
                assert len(await ecr.images("team/app", "ACTIVE")) == 2
                assert await ecr.delete("team/app", {"imageDigest": digests["team/app:2"]})
                assert not await ecr.delete("team/app", {"imageDigest": digests["team/app:2"]})
            finally:
                await ecr.aclose()

        asyncio.run(talk())
    recorded = {e.headers["x-amz-target"].rsplit(".", 1)[1]: e for v, e in taken() if v == "ecr"}
    contract = BotocoreContract("ecr")
    assert set(recorded) == {"DescribeRepositories", "DescribeImages", "BatchDeleteImage"}
    assert [line for e in recorded.values() for line in contract.divergences(e)] == []
    images = recorded["DescribeImages"]
    renamed = json.loads(images.answer)
    renamed["imageDetails"][0]["pushedAt"] = renamed["imageDetails"][0].pop("imagePushedAt")
    found = contract.divergences(with_answer(images, renamed))
    assert found == [
        f"ecr DescribeImages: {images.line()}: answer: imageDetails/0: Additional "
        "properties are not allowed ('pushedAt' was unexpected)"
    ]
    deleting = recorded["BatchDeleteImage"]
    body = json.loads(deleting.body)
    del body["repositoryName"]
    found = contract.divergences(replace(deleting, body=json.dumps(body).encode()))
    assert found == [
        f"ecr BatchDeleteImage: {deleting.line()}: request: (whole body): 'repositoryName' "
        "is a required property"
    ]
    error = json.dumps({"__type": "NoSuchImage", "message": "?"}).encode()
    found = contract.divergences(replace(deleting, status=400, answer=error))
    assert found and "error 'NoSuchImage' is not one the operation has" in found[0]


def test_acr_requests_and_answers_hold_and_planted_divergences_are_named(
    registry: LocalRegistry,
) -> None:
    push(registry.url, {"team/app:one": ["v1"], "team/app:two": ["pr-1"]})
    exchanges = protections_read(AcrFake(registry, locked={"v1"}), Acr, "team/app")
    recorded = {urlsplit(e.target).path: e for e in exchanges}
    contract = Contract("acr")
    manifests = recorded["/acr/v1/team%2Fapp/_manifests"]
    tags = recorded["/acr/v1/team%2Fapp/_tags"]
    assert contract.divergences(manifests) == contract.divergences(tags) == []
    listed = json.loads(tags.answer)
    del listed["tags"][0]["createdTime"]  # the fake leaves out a field the API always sends
    found = contract.divergences(with_answer(tags, listed))
    assert len(found) == 1 and found[0].startswith("acr ContainerRegistry_GetTags: GET ")
    assert "tags/0: 'createdTime' is a required property" in found[0]
    renamed = json.loads(manifests.answer)
    renamed["manifests"][0]["lastUpdatedOn"] = renamed["manifests"][0].pop("lastUpdateTime")
    found = contract.divergences(with_answer(manifests, renamed))
    assert "manifests/0: 'lastUpdateTime' is a required property" in found[0]
    # the backend sends the repository's "/" raw: a path the description does not define
    raw = replace(manifests, target=manifests.target.replace("team%2Fapp", "team/app"))
    assert "(no operation)" in contract.divergences(raw)[0]
    wrong = replace(manifests, target=manifests.target.replace("n=1000", "n=many"))
    assert "Query parameter error: n" in contract.divergences(wrong)[0]


def test_dockerhub_requests_and_answers_hold_and_planted_divergences_are_named(
    registry: LocalRegistry,
) -> None:
    push(registry.url, {"acme/web:one": ["v1"], "acme/web:two": ["pr-1"]})
    with DockerHubFake(registry, "ci", "pat").start() as fake:

        async def talk() -> None:
            hub = HubApi(fake.url, username="ci", token="pat")
            try:
                assert await hub.repositories("acme") == ["acme/web"]
                assert not (await hub.immutable_tags("acme/web")).enabled
                assert len(await hub.tag_pushes("acme/web")) == 2
                assert await hub.delete_tag("acme/web", "pr-1")
            finally:
                await hub.aclose()

        asyncio.run(talk())
    recorded = {(e.method, urlsplit(e.target).path): e for _, e in taken()}
    contract = Contract("dockerhub")
    assert [line for e in recorded.values() for line in contract.divergences(e)] == []
    # the tag delete is hub-tool's: outside the description, on purpose (the manual says so
    # beside the backend: docs/how-to/backends/)
    assert ("DELETE", "/v2/repositories/acme/web/tags/pr-1/") in recorded
    tags = recorded[("GET", "/v2/namespaces/acme/repositories/web/tags")]
    renamed = json.loads(tags.answer)
    renamed["results"][0]["last_pushed_at"] = renamed["results"][0].pop("tag_last_pushed")
    found = contract.divergences(with_answer(tags, renamed))
    assert len(found) == 1 and found[0].startswith("dockerhub ListRepositoryTags: GET ")
    assert "results/0: Additional properties are not allowed ('last_pushed_at'" in found[0]
    listing = recorded[("GET", "/v2/namespaces/acme/repositories")]
    too_many = replace(listing, target=listing.target.replace("page_size=100", "page_size=500"))
    found = contract.divergences(too_many)
    assert "Invalid query parameter: page_size; (whole body): 500 is greater than" in found[0]
    sign_in = recorded[("POST", "/v2/auth/token")]
    found = contract.divergences(replace(sign_in, body=json.dumps({"identifier": "ci"}).encode()))
    assert "'secret' is a required property" in found[0]


def test_github_requests_and_answers_hold_and_planted_divergences_are_named(
    registry: LocalRegistry,
) -> None:
    digests = push(
        registry.url,
        {"acme/app:1": ["v1"], "acme/app:2": ["pr-1"], "octo/tool:1": ["v2"]},
    )
    with GitHubPackagesFake(registry, "t0ken", {"acme": "orgs", "octo": "users"}).start() as fake:

        async def talk() -> None:
            packages = GitHubPackages(fake.url, token="t0ken")
            try:
                assert len(await packages.list_versions("acme/app")) == 2
                gone = await packages.delete_version("acme/app", digests["acme/app:2"])
                assert gone is not None
                await packages.restore_version("acme/app", gone)
                assert len(await packages.list_versions("octo/tool")) == 1
            finally:
                await packages.aclose()

        asyncio.run(talk())
    contract = Contract("github")
    recorded = taken_and_held(
        contract,
        {
            "packages/get-all-package-versions-for-package-owned-by-org",
            "packages/get-all-package-versions-for-package-owned-by-user",
            "packages/delete-package-version-for-org",
            "packages/restore-package-version-for-org",
        },
    )
    listing = next(e for e in recorded if e.method == "GET" and "/orgs/" in e.target)
    # the fake leaves out a field GitHub always sends
    versions = json.loads(listing.answer)
    del versions[0]["package_html_url"]
    found = contract.divergences(with_answer(listing, versions))
    assert len(found) == 1
    assert found[0].startswith("github packages/get-all-package-versions-for-package-owned-by-org")
    assert "0: 'package_html_url' is a required property" in found[0]
    # ... or renames one
    versions = json.loads(listing.answer)
    versions[0]["metadata"]["container"]["tag"] = versions[0]["metadata"]["container"].pop("tags")
    found = contract.divergences(with_answer(listing, versions))
    assert "0/metadata/container: 'tags' is a required property" in found[0]
    # the backend sends a query parameter the operation does not name, or a package type
    # GitHub does not have
    sorted_by = replace(listing, target=listing.target + "&sort=created")
    assert (
        "request: query parameter 'sort' is not the operation's"
        in (contract.divergences(sorted_by)[0])
    )
    docker = replace(listing, target=listing.target.replace("/container/", "/containers/"))
    assert "package_type" in contract.divergences(docker)[0]


def test_gitlab_requests_and_answers_hold_and_planted_divergences_are_named(
    registry: LocalRegistry,
) -> None:
    push(registry.url, {"acme/web/app:1": ["v1"], "acme/web/app:2": ["pr-1"]})
    rule = {
        "id": 1,
        "project_id": 7,
        "tag_name_pattern": "^v",
        "minimum_access_level_for_push": "maintainer",
        "minimum_access_level_for_delete": "maintainer",
    }
    with GitLabFake(registry, "glpat", {"acme/web": 7}, {7: [rule]}).start() as fake:

        async def talk() -> None:
            walker = GitLabRegistry(f"{fake.url}/api/v4", token="glpat")
            api = GitLabRegistry(f"{fake.url}/api/v4", token="glpat")
            try:  # up the path: acme/web/app is no project (404), acme/web is
                assert (await walker.ids("acme/web/app"))[0] == 7
                assert await api.group_repositories("acme") == ["acme/web/app"]
                assert len(await api.tag_pushes("acme/web/app", ["v1", "pr-1"])) == 2
                assert [r.pattern for r in await api.protection_rules("acme/web/app")] == ["^v"]
                assert await api.delete_tag("acme/web/app", "pr-1")
            finally:
                await walker.aclose()
                await api.aclose()

        asyncio.run(talk())
    contract = Contract("gitlab")
    recorded = taken_and_held(
        contract,
        {
            "getApiV4GroupsIdRegistryRepositories",
            "getApiV4ProjectsIdRegistryRepositoriesRepositoryIdTagsTagName",
            "getApiV4ProjectsIdRegistryProtectionTagRules",
            "deleteApiV4ProjectsIdRegistryRepositoriesRepositoryIdTagsTagName",
            "getApiV4ProjectsId",
            "getApiV4ProjectsIdRegistryRepositories",
        },
    )
    details = next(e for e in recorded if e.method == "GET" and "/tags/" in e.target)
    renamed = json.loads(details.answer)
    renamed["pushed_at"] = renamed.pop("created_at")
    found = contract.divergences(with_answer(details, renamed))
    assert len(found) == 1
    assert found[0].startswith(
        "gitlab getApiV4ProjectsIdRegistryRepositoriesRepositoryIdTagsTagName"
    )
    assert "Additional properties are not allowed ('pushed_at' was unexpected)" in found[0]
    # the backend sends a repository id that is not a number, or asks for a page size by a
    # name GitLab does not have
    listing = next(e for e in recorded if "/groups/" in e.target)
    assert (
        "repository_id"
        in contract.divergences(
            replace(
                details, target=re.sub(r"/repositories/\d+/", "/repositories/app/", details.target)
            )
        )[0]
    )
    limit = replace(listing, target=listing.target.replace("per_page=", "limit="))
    assert "query parameter 'limit' is not the operation's" in contract.divergences(limit)[0]
