"""Re-extract the vendor API descriptions the contract tests hold our fakes and backends to.

Each vendor publishes a machine-readable description of its API; the contract tests
(`tests.contracts.validate`) need only the operations regsweep sends, so each description is
kept trimmed to those (`OPERATIONS`) and what they reference, and, where the vendor still
writes Swagger 2.0, converted to OpenAPI 3.0 (what openapi-core validates). An upgrade is a
newer upstream file through this script and a diff anyone can read:

    python -m tests.contracts.extract harbor path/to/harbor/api/v2.0/swagger.yaml \\
        --commit <sha> [--out tests/contracts/descriptions]
    python -m tests.contracts.extract ecr .venv/lib/python3.11/site-packages/botocore/data/\\
ecr/2015-09-21/service-2.json.gz --commit botocore-<version>

The source (repository, path, commit, licence) is written into the trimmed file's `info`
(`x-source`), and listed in `descriptions/SOURCES.md`.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent / "descriptions"


def github_versions(scope: str) -> str:
    """GitHub's path of a package's versions under `orgs/{org}` or `users/{username}`."""
    return f"/{scope}/packages/{{package_type}}/{{package_name}}/versions"


GITLAB_TAG = "/api/v4/projects/{id}/registry/repositories/{repository_id}/tags/{tag_name}"

# vendor -> (method, path template as the description spells it) of every operation we send
OPERATIONS: dict[str, list[tuple[str, str]]] = {
    "harbor": [("get", "/projects/{project_name}/repositories/{repository_name}/artifacts")],
    "acr": [("get", "/acr/v1/{name}/_manifests"), ("get", "/acr/v1/{name}/_tags")],
    "dockerhub": [
        ("post", "/v2/auth/token"),
        ("get", "/v2/namespaces/{namespace}/repositories"),
        ("get", "/v2/namespaces/{namespace}/repositories/{repository}"),
        ("get", "/v2/namespaces/{namespace}/repositories/{repository}/tags"),
    ],
    "github": [
        *(
            (method, github_versions(scope) + rest)
            for scope in ("orgs/{org}", "users/{username}")
            for method, rest in (
                ("get", ""),
                ("delete", "/{package_version_id}"),
                ("post", "/{package_version_id}/restore"),
            )
        )
    ],
    "gitlab": [
        ("get", "/api/v4/projects/{id}"),
        ("get", "/api/v4/projects/{id}/registry/repositories"),
        ("get", "/api/v4/groups/{id}/registry/repositories"),
        ("get", GITLAB_TAG),
        ("delete", GITLAB_TAG),
        ("get", "/api/v4/projects/{id}/registry/protection/tag/rules"),
    ],
    # botocore's model: (protocol, operation) - ECR speaks JSON 1.1 on POST /
    "ecr": [
        ("json", "DescribeRepositories"),
        ("json", "DescribeImages"),
        ("json", "BatchDeleteImage"),
    ],
}
SOURCES: dict[str, dict[str, str]] = {
    "harbor": {
        "repository": "goharbor/harbor",
        "path": "api/v2.0/swagger.yaml",
        "licence": "Apache-2.0",
    },
    "acr": {
        "repository": "Azure/azure-rest-api-specs",
        "path": "specification/containerregistry/data-plane/Azure.ContainerRegistry/stable/"
        "2021-07-01/containerregistry.json",
        "licence": "MIT",
    },
    "dockerhub": {
        "repository": "docker/docs",
        "path": "content/reference/api/hub/latest.yaml",
        "licence": "Apache-2.0",
    },
    "github": {
        "repository": "github/rest-api-description",
        "path": "descriptions/api.github.com/api.github.com.2022-11-28.yaml",
        "licence": "MIT",
    },
    "gitlab": {
        "repository": "gitlabhq/gitlabhq",
        "path": "doc/api/openapi/openapi_v2.yaml",
        "licence": "MIT",
    },
    "ecr": {
        "repository": "boto/botocore",
        "path": "botocore/data/ecr/2015-09-21/service-2.json",
        "licence": "Apache-2.0",
    },
}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@dataclass(frozen=True)
class Erratum:
    """A place where the description is wrong about what the API does, put right in the
    trimmed copy: `at` the keys down to the value, `value` what the API does, `why` the
    evidence. Each is listed in the trimmed file's header and in SOURCES.md."""

    at: tuple[str, ...]
    value: Any
    why: str


TAG = ("components", "schemas", "tag", "properties")


LAST_TAGGED = {
    "description": "Bad Request",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/basic-error"}}},
}
ERRATA: dict[str, list[Erratum]] = {
    "dockerhub": [
        Erratum(
            (
                *("paths", "/v2/namespaces/{namespace}/repositories/{repository}"),
                *("get", "responses", "200", "description"),
            ),
            "Repository",
            "the 200 answer has no description, which OpenAPI requires (the file is invalid)",
        ),
        Erratum(
            (*TAG, "images"),
            {"type": "array", "items": {"$ref": "#/components/schemas/image"}},
            "the description says one image object; every recorded answer has a list (one "
            "per platform), which is what docker/hub-tool reads",
        ),
        Erratum(
            (*TAG, "v2"), {"type": "boolean"}, 'recorded answers carry `"v2": true`, not a string'
        ),
        *(
            Erratum(
                (*TAG, name),
                {"type": "string"},
                f"`{name}` is in every recorded answer and not in the description",
            )
            for name in ("tag_status", "media_type", "content_type")
        ),
        Erratum(
            (*TAG, "digest"),
            {"type": "string"},
            "`digest` is in every recorded answer and not in the description; regsweep reads "
            "it (an index's digest is only there)",
        ),
    ],
    "github": [
        Erratum(
            ("paths", github_versions("users/{username}"), "get", "parameters"),
            [
                {"$ref": f"#/components/parameters/{name}"}
                for name in ("package-type", "package-name", "username", "page", "per-page")
            ],
            "the user's list takes `page` and `per_page` as the organisation's does (GitHub "
            "paginates every list; github/rest-api-description#1651: missing, 'actually "
            "functional')",
        ),
        *(
            Erratum(
                (
                    *(
                        "paths",
                        f"{github_versions(scope)}/{{package_version_id}}",
                    ),
                    *("delete", "responses", "400"),
                ),
                LAST_TAGGED,
                "GitHub answers 400 to a delete of a package's last tagged version ('You "
                "cannot delete the last tagged version of a package. You must delete the "
                "package instead.', kairos-io/kairos#4723); the description lists no 400",
            )
            for scope in ("orgs/{org}", "users/{username}")
        ),
    ],
    "gitlab": [
        Erratum(
            ("paths", GITLAB_TAG, "delete", "responses", "200"),
            {"description": "Success"},
            "GitLab's code answers a deleted tag with 200 (`status :ok` in "
            "lib/api/project_container_repositories.rb); the description says 204",
        )
    ],
}


def trim(document: dict[str, Any], operations: list[tuple[str, str]]) -> dict[str, Any]:
    """`document` with only `operations` and what they reference (OpenAPI 3.0 out; a
    botocore service model stays one, with the shapes the operations use)."""
    if "shapes" in document and "operations" in document:
        return _trim_botocore(document, [name for _, name in operations])
    paths: dict[str, dict[str, Any]] = {}
    for method, path in operations:
        item = document["paths"].get(path)
        if item is None or method not in item:
            raise SystemExit(f"{method.upper()} {path} is not in the description")
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k not in METHODS})
        kept[method] = item[method]
    if str(document.get("swagger", "")).startswith("2"):
        return _from_swagger(document, paths)
    trimmed = {k: v for k, v in document.items() if k not in ("paths", "components")}
    trimmed["paths"] = _bare(_string_statuses(paths))
    trimmed["components"] = _bare(_referenced(document, paths, "#/components/"))
    schemes = document.get("components", {}).get("securitySchemes", {})
    used = sorted({name for need in _requirements(paths) for name in need} & set(schemes))
    if used:
        trimmed["components"]["securitySchemes"] = {name: schemes[name] for name in used}
    return trimmed


def _bare(node: Any, key: str = "") -> Any:
    """An OpenAPI 3 part without prose, examples and extensions (the facts stay); the
    names under `properties` are kept whatever they are."""
    if isinstance(node, list):
        return [_bare(v) for v in node]
    if not isinstance(node, dict):
        return node
    if key == "properties":
        return {name: _bare(v) for name, v in node.items()}
    if key == "responses":  # each answer keeps its description: OpenAPI requires one
        return {
            status: {**_bare(answer), "description": answer["description"]}
            if isinstance(answer, dict) and "description" in answer and "$ref" not in answer
            else _bare(answer)
            for status, answer in node.items()
        }
    return {k: _bare(v, k) for k, v in node.items() if k not in PROSE and not k.startswith("x-")}


def _string_statuses(paths: dict[str, Any]) -> dict[str, Any]:
    """Answer status keys as strings (YAML reads an unquoted 200 as a number)."""
    return {
        path: {
            method: {**op, "responses": {str(k): v for k, v in op["responses"].items()}}
            if isinstance(op, dict) and "responses" in op
            else op
            for method, op in item.items()
        }
        for path, item in paths.items()
    }


def _requirements(paths: dict[str, Any]) -> list[dict[str, Any]]:
    """The security requirements of the kept operations."""
    return [
        need
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict)
        for need in op.get("security", [])
    ]


def correct(trimmed: dict[str, Any], errata: list[Erratum]) -> dict[str, Any]:
    """`trimmed` with each erratum's value put in place."""
    for erratum in errata:
        node = trimmed
        for key in erratum.at[:-1]:
            node = node.setdefault(key, {})
        node[erratum.at[-1]] = erratum.value
    return trimmed


def _referenced(document: dict[str, Any], start: Any, prefix: str) -> dict[str, Any]:
    """The parts of `document` under `prefix` that `start` references, transitively, in the
    same nesting (`{"schemas": {...}, "parameters": {...}}`)."""
    found: dict[str, Any] = {}
    queue = [start]
    seen: set[str] = set()
    while queue:
        for ref in _refs(queue.pop()):
            if ref in seen or not ref.startswith(prefix):
                continue
            seen.add(ref)
            section, name = ref[len(prefix) :].split("/", 1)
            target = document[prefix[2:-1]][section][name]
            found.setdefault(section, {})[name] = target
            queue.append(target)
    return {section: dict(sorted(items.items())) for section, items in sorted(found.items())}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _trim_botocore(model: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """A botocore service model with only the operations `names` and the shapes they use
    (input, output, errors, transitively)."""
    operations = {}
    for name in names:
        if name not in model["operations"]:
            raise SystemExit(f"{name} is not in the model")
        operations[name] = model["operations"][name]
    wanted = [
        ref["shape"]
        for operation in operations.values()
        for ref in [operation.get("input"), operation.get("output"), *operation.get("errors", [])]
        if ref
    ]
    shapes: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name in shapes:
            continue
        shape = shapes[name] = model["shapes"][name]
        members = list(shape.get("members", {}).values())
        members += [shape[k] for k in ("member", "key", "value") if k in shape]
        wanted += [m["shape"] for m in members]
    metadata = {k: v for k, v in model["metadata"].items() if k in METADATA_KEYS}
    return _undocumented(
        {
            "version": model.get("version", "2.0"),
            "metadata": metadata,
            "operations": operations,
            "shapes": dict(sorted(shapes.items())),
        }
    )


def _undocumented(node: Any) -> Any:
    """`node` without botocore's HTML `documentation` (the facts stay)."""
    if isinstance(node, dict):
        return {k: _undocumented(v) for k, v in node.items() if k != "documentation"}
    if isinstance(node, list):
        return [_undocumented(v) for v in node]
    return node


METADATA_KEYS = ("apiVersion", "jsonVersion", "protocol", "serviceId", "targetPrefix")


# -- Swagger 2.0 -> OpenAPI 3.0, for what the trimmed operations use -----------------------

SCHEMA_KEYS = (
    *("type", "format", "items", "enum", "default", "minimum", "maximum", "pattern"),
    *("minLength", "maxLength", "minItems", "maxItems"),
)
OPERATION_KEYS = ("summary", "operationId", "tags", "security")


def _from_swagger(document: dict[str, Any], paths: dict[str, dict[str, Any]]) -> dict[str, Any]:
    produces = document.get("produces") or ["application/json"]
    converted: dict[str, dict[str, Any]] = {}
    for path, item in paths.items():
        shared = [_resolve(document, p) for p in item.get("parameters", [])]
        for method, operation in item.items():
            if method not in METHODS:
                continue
            out = {
                k: copy.deepcopy(v)
                for k, v in operation.items()
                if k in ("summary", "operationId", "tags", "security")
            }
            parameters = shared + [_resolve(document, p) for p in operation.get("parameters", [])]
            out["parameters"] = [
                _parameter(p) for p in parameters if p["in"] not in ("body", "formData")
            ]
            for body in (p for p in parameters if p["in"] == "body"):
                out["requestBody"] = {
                    "required": bool(body.get("required")),
                    "content": {"application/json": {"schema": _schema(body["schema"])}},
                }
            types = operation.get("produces") or produces
            out["responses"] = {
                str(status): _response(_resolve(document, answer), types)
                for status, answer in operation["responses"].items()
            }
            converted.setdefault(path, {})[method] = out
    result: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {k: v for k, v in document["info"].items() if k in ("title", "version")},
        "servers": [{"url": document.get("basePath", "/")}],
        "paths": converted,
    }
    if "security" in document:
        result["security"] = document["security"]
    schemas = _referenced(
        {
            "components": {
                "schemas": {
                    name: _schema(schema)
                    for name, schema in document.get("definitions", {}).items()
                }
            }
        },
        converted,
        "#/components/",
    )
    result["components"] = schemas
    schemes = {
        name: _security_scheme(scheme)
        for name, scheme in document.get("securityDefinitions", {}).items()
    }
    if schemes:
        result["components"]["securitySchemes"] = schemes
    return result


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A `#/parameters/...` or `#/responses/...` reference replaced by what it names."""
    ref = node.get("$ref", "")
    if ref.startswith(("#/parameters/", "#/responses/")):
        _, section, name = ref.split("/")
        return document[section][name]
    return node


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    schema = {k: parameter[k] for k in SCHEMA_KEYS if k in parameter}
    if "items" in schema:
        schema["items"] = _schema(schema["items"])
    out = {"name": parameter["name"], "in": parameter["in"], "schema": schema}
    if parameter.get("required"):
        out["required"] = True
    return out


def _response(answer: dict[str, Any], types: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.get("description", "")}
    if "headers" in answer:
        out["headers"] = {
            name: {"schema": {k: v for k, v in header.items() if k in SCHEMA_KEYS}}
            for name, header in answer["headers"].items()
        }
    if "schema" in answer:
        out["content"] = {t: {"schema": _schema(answer["schema"])} for t in types}
    return out


def _schema(node: Any) -> Any:
    """A Swagger 2.0 schema as OpenAPI 3.0 writes it: references to components,
    `x-nullable` as `nullable`, an Azure enum marked `modelAsString` (open to new values)
    as a plain string; prose, examples and other extensions left out (`PROSE`)."""
    if isinstance(node, list):
        return [_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = re.sub(r"^#/definitions/", "#/components/schemas/", value)
        elif key == "x-nullable":
            out["nullable"] = value
        elif key in ("properties", "definitions"):
            out[key] = {name: _schema(v) for name, v in value.items()}
        elif key in PROSE or key.startswith("x-"):
            continue
        else:
            out[key] = _schema(value)
    if (node.get("x-ms-enum") or {}).get("modelAsString"):
        out.pop("enum", None)
    return out


PROSE = frozenset({"description", "example", "examples", "title"})


def _security_scheme(scheme: dict[str, Any]) -> dict[str, Any]:
    if scheme["type"] == "basic":
        return {"type": "http", "scheme": "basic"}
    return {k: v for k, v in scheme.items() if k in ("type", "name", "in", "description")}


def write(vendor: str, trimmed: dict[str, Any], commit: str, out: Path) -> Path:
    trimmed = correct(trimmed, ERRATA.get(vendor, []))
    source = {**SOURCES[vendor], "commit": commit}
    if "info" in trimmed:
        trimmed["info"] = {**trimmed["info"], "x-source": source}
    else:
        trimmed["metadata"]["x-source"] = source
    path = out / f"{vendor}.yaml"
    header = (
        f"# {vendor}: the operations regsweep sends, trimmed from {SOURCES[vendor]['repository']}"
        f" {SOURCES[vendor]['path']} at {commit} ({SOURCES[vendor]['licence']}).\n"
        "# Generated by `python -m tests.contracts.extract`: do not edit by hand.\n"
    )
    for erratum in ERRATA.get(vendor, []):
        header += f"# Corrected: {'.'.join(erratum.at)}: {erratum.why}.\n"
    path.write_text(header + yaml.safe_dump(trimmed, sort_keys=False, width=100))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vendor", choices=sorted(OPERATIONS))
    parser.add_argument("source", type=Path, help="the upstream description (YAML or JSON)")
    parser.add_argument(
        "--commit", required=True, help="the upstream commit (or release) it came from"
    )
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    raw = args.source.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
    document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    written = write(args.vendor, trim(document, OPERATIONS[args.vendor]), args.commit, args.out)
    print(f"wrote {written}", file=sys.stderr)


if __name__ == "__main__":
    main()
