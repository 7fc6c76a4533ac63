"""Hold an exchange with a vendor fake to the vendor's own API description.

`Contract(vendor)` loads `descriptions/<vendor>.yaml` (trimmed from the vendor's published
description by `tests.contracts.extract`) and validates each `Exchange` with openapi-core:
the request (method, path template, path, query and header parameters, body) and the answer
(status, headers, body schema). A request the description does not define, or an answer it
does not allow, is a divergence naming the operation and the field.

Stricter than the description in one way, on purpose: an object the description lists the
properties of may carry no other (most vendor schemas leave `additionalProperties` open, so
a fake answering a renamed field would otherwise pass: the field our backend reads would be
one the real API never sends). Looser in one: security requirements are not checked. The
fakes sit on registries without the vendors' auth (that flow is tested against the token
server), and ACR's description asks for basic and bearer auth in one requirement, which no
single `Authorization` header meets.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Hashable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import yaml
from jsonschema import Draft202012Validator
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

DESCRIPTIONS = Path(__file__).resolve().parent / "descriptions"


@dataclass(frozen=True)
class Exchange:
    """One request to a fake and its answer, as they crossed the wire."""

    method: str
    target: str  # path and query
    headers: dict[str, str]
    body: bytes
    status: int
    answer_headers: dict[str, str]
    answer: bytes

    def line(self) -> str:
        return f"{self.method} {self.target} -> {self.status}"


OUTSIDE_THE_DESCRIPTIONS: dict[str, list[tuple[str, str, str]]] = {
    "dockerhub": [
        (
            "DELETE",
            r"/v2/repositories/[^/]+/[^/]+/tags/[^/]+/",
            "the tag delete docker/hub-tool sends (`tag rm`); Docker's description has none",
        )
    ],
}
"""vendor -> (method, path pattern, why) of the requests regsweep sends that the vendor's
description does not define, on purpose: not validated (the manual says so beside the
backend, docs/how-to/backends/)."""

ANSWERS_IN_PROSE: dict[str, dict[int, str]] = {
    "dockerhub": {
        429: "the description's rate-limiting section: any request may be answered 429 with "
        "X-Retry-After (Unix time); no operation lists it"
    },
    "gitlab": {
        401: "GitLab's REST API status codes (doc/api/rest/troubleshooting.md): any request "
        "without a valid token is answered 401",
        404: "the same table: a resource that cannot be found or accessed is answered 404 "
        "(getApiV4ProjectsId, which regsweep walks up a path with, lists only 200)",
        429: "the same table: any request may be answered 429 when the user exceeded the "
        "rate limits",
    },
}
"""vendor -> status -> where the description allows that answer to every operation in
prose rather than per operation: its body is not validated, its presence is."""

RECORDED: list[tuple[str, Exchange]] = []
"""(vendor, exchange) of every answer a fake with a description gave in the current test;
tests/conftest.py validates them after each test (`held_to_the_descriptions`)."""


def record(vendor: str, exchange: Exchange) -> None:
    RECORDED.append((vendor, exchange))


@cache
def contract(vendor: str) -> Contract | BotocoreContract:
    if "operations" in load(vendor):
        return BotocoreContract(vendor)
    return Contract(vendor)


class Contract:
    """One vendor's description, ready to validate exchanges."""

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        document = load(vendor)
        self.source = document["info"]["x-source"]
        self.operations: dict[tuple[str, str], str] = {}  # (METHOD, path) -> operationId
        self.queries: dict[tuple[str, str], set[str]] = {}  # -> the query parameters it names
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if not (isinstance(operation, dict) and "responses" in operation):
                    continue
                key = (method.upper(), path)
                self.operations[key] = str(operation.get("operationId", f"{method} {path}"))
                declared = [*item.get("parameters", []), *operation.get("parameters", [])]
                self.queries[key] = {
                    parameter["name"]
                    for parameter in (_resolved(document, p) for p in declared)
                    if parameter.get("in") == "query"
                }
        server = str(document.get("servers", [{}])[0].get("url", ""))
        self.base = urlsplit(server).path.rstrip("/")
        self.openapi = OpenAPI.from_dict(cast(dict[Hashable, Any], _closed(document)))

    def divergences(self, exchange: Exchange) -> list[str]:
        """What in `exchange` the description does not allow, one line each (empty: none)."""
        path = urlsplit(exchange.target).path
        for method, pattern, _ in OUTSIDE_THE_DESCRIPTIONS.get(self.vendor, []):
            if exchange.method == method and re.fullmatch(pattern, path):
                return []
        request = WireRequest.of(exchange)
        where = f"{self.vendor} {self.operation_of(exchange)}: {exchange.line()}"
        try:
            self.openapi.validate_request(request)
        except Exception as exc:  # openapi-core's errors: the line says which and why
            return [f"{where}: request: {_why(exc)}"]
        unnamed = sorted(set(request.parameters.query) - self.query_of(exchange))
        if unnamed:  # openapi-core lets a query parameter the operation does not name pass
            return [f"{where}: request: query parameter {unnamed[0]!r} is not the operation's"]
        prose = ANSWERS_IN_PROSE.get(self.vendor, {})
        if exchange.status in prose:
            return []
        response = WireResponse.of(exchange)
        try:
            self.openapi.validate_response(request, response)
        except Exception as exc:
            return [f"{where}: answer: {_why(exc)}"]
        return []

    def operation_of(self, exchange: Exchange) -> str:
        """The operationId `exchange` is an instance of, or "(no operation)"."""
        key = self._key_of(exchange)
        return "(no operation)" if key is None else self.operations[key]

    def query_of(self, exchange: Exchange) -> set[str]:
        """The query parameters the operation of `exchange` names."""
        key = self._key_of(exchange)
        return set() if key is None else self.queries[key]

    def _key_of(self, exchange: Exchange) -> tuple[str, str] | None:
        path = urlsplit(exchange.target).path.removeprefix(self.base)
        for method, template in self.operations:
            pattern = re.sub(r"\\{[^}/]+\\}", "[^/]+", re.escape(template))
            if method == exchange.method and re.fullmatch(pattern, path):
                return method, template
        return None


class BotocoreContract:
    """An AWS service's botocore model (JSON 1.1 protocol: `POST /`, the operation in
    `X-Amz-Target`), its shapes turned into JSON Schema and validated with jsonschema:
    the request body against the operation's input, a 200's body against its output, a
    400's `__type` against the operation's errors and AWS's common ones."""

    # AWS's common errors of every JSON-protocol service (not in each operation's model)
    COMMON_ERRORS = frozenset(
        {
            "AccessDeniedException",
            "IncompleteSignature",
            "InternalFailure",
            "MissingAuthenticationToken",
            "ServiceUnavailable",
            "ThrottlingException",
            "UnrecognizedClientException",
            "ValidationError",
        }
    )

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        model = load(vendor)
        self.source = model["metadata"]["x-source"]
        self.target = model["metadata"]["targetPrefix"] + "."
        self.operations = model["operations"]
        definitions = {name: _shape_schema(shape) for name, shape in model["shapes"].items()}
        self._schema = {"$defs": definitions}

    def divergences(self, exchange: Exchange) -> list[str]:
        operation = exchange.headers.get("x-amz-target", "").removeprefix(self.target)
        where = f"{self.vendor} {operation or '(no operation)'}: {exchange.line()}"
        model = self.operations.get(operation)
        if exchange.method != "POST" or urlsplit(exchange.target).path != "/" or model is None:
            return [f"{where}: request: not an operation of the model"]
        found = [
            f"{where}: request: {line}"
            for line in self._errors(json.loads(exchange.body or b"{}"), model["input"]["shape"])
        ]
        answer = json.loads(exchange.answer or b"{}")
        if exchange.status == 200:
            shape = model.get("output", {}).get("shape")
            found += [f"{where}: answer: {line}" for line in self._errors(answer, shape)]
        else:
            declared = {e["shape"] for e in model.get("errors", [])} | self.COMMON_ERRORS
            code = str(answer.get("__type", "")).rsplit("#", 1)[-1]
            if code not in declared:
                found.append(f"{where}: answer: error {code!r} is not one the operation has")
        return found

    def _errors(self, body: Any, shape: str | None) -> list[str]:
        if shape is None:
            return [] if body == {} else ["a body where the model has none"]
        validator = Draft202012Validator({**self._schema, "$ref": f"#/$defs/{shape}"})
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(whole body)'}: {e.message}"
            for e in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        ]


def _shape_schema(shape: dict[str, Any]) -> dict[str, Any]:
    """One botocore shape as JSON Schema (JSON 1.1 protocol: timestamps are epoch seconds,
    blobs base64 strings); a structure takes no member the model does not name."""
    kind = shape["type"]
    if kind == "structure":
        return {
            "type": "object",
            "properties": {
                name: {"$ref": f"#/$defs/{member['shape']}"}
                for name, member in shape.get("members", {}).items()
            },
            "required": list(shape.get("required", [])),
            "additionalProperties": False,
        }
    if kind == "list":
        schema: dict[str, Any] = {
            "type": "array",
            "items": {"$ref": f"#/$defs/{shape['member']['shape']}"},
        }
        bounds = {"min": "minItems", "max": "maxItems"}
    elif kind == "map":
        value = {"$ref": f"#/$defs/{shape['value']['shape']}"}
        return {"type": "object", "additionalProperties": value}
    elif kind == "string":
        schema = {"type": "string"}
        if "enum" in shape:
            schema["enum"] = shape["enum"]
        bounds = {"min": "minLength", "max": "maxLength"}
    elif kind in ("integer", "long"):
        schema, bounds = {"type": "integer"}, {"min": "minimum", "max": "maximum"}
    elif kind in ("float", "double", "timestamp"):
        schema, bounds = {"type": "number"}, {}
    elif kind == "boolean":
        schema, bounds = {"type": "boolean"}, {}
    else:  # blob
        schema, bounds = {"type": "string"}, {}
    schema.update({bounds[k]: shape[k] for k in bounds if k in shape})
    return schema


@cache
def load(vendor: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DESCRIPTIONS / f"{vendor}.yaml").read_text())
    return loaded


def _resolved(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its `#/components/...` reference names."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target: Any = document
    for key in ref.removeprefix("#/").split("/"):
        target = target[key]
    return cast(dict[str, Any], target)


def _values_of(node: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in `node`."""
    if isinstance(node, dict):
        own = [node[key]] if key in node else []
        return own + [v for value in node.values() for v in _values_of(value, key)]
    if isinstance(node, list):
        return [v for value in node for v in _values_of(value, key)]
    return []


def _closed(document: dict[str, Any]) -> dict[str, Any]:
    """The description with every object that lists its properties closed to others
    (except inside allOf, where each part lists only some), no security requirement, and
    servers by their path only."""
    closed = copy.deepcopy(document)
    closed.pop("security", None)
    # the fakes answer on loopback: a server is its path only (https://hub.docker.com: /)
    servers = closed.get("servers") or [{"url": "/"}]
    closed["servers"] = [{"url": urlsplit(server["url"]).path or "/"} for server in servers]
    for item in closed["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)

    composed = {  # schemas some allOf/anyOf/oneOf names as a part: left open
        part["$ref"]
        for key in ("allOf", "anyOf", "oneOf")
        for parts in _values_of(closed, key)
        for part in parts
        if isinstance(part, dict) and "$ref" in part
    }
    for name, schema in closed.get("components", {}).get("schemas", {}).items():
        if f"#/components/schemas/{name}" in composed:
            schema["x-part"] = True

    def walk(node: Any, in_all_of: bool = False) -> None:
        if isinstance(node, dict):
            in_all_of = in_all_of or bool(node.pop("x-part", False))
            if (
                not in_all_of
                and isinstance(node.get("properties"), dict)
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for key, value in node.items():
                if key in ("allOf", "anyOf", "oneOf"):
                    for part in value:
                        walk(part, in_all_of=True)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(closed)
    return closed


@dataclass
class WireRequest:
    """An exchange's request as openapi-core reads one (its `Request` protocol), with the
    path as it crossed the wire: still percent-encoded, so a path parameter holding an
    encoded "/" (`a%2Fb`) is one segment, as the vendor's router sees it."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None

    @classmethod
    def of(cls, exchange: Exchange) -> WireRequest:
        parts = urlsplit(exchange.target)
        headers = Headers(list(exchange.headers.items()))
        query = ImmutableMultiDict(parse_qsl(parts.query, keep_blank_values=True))
        return cls(
            "http://vendor.test",
            parts.path,
            exchange.method.lower(),
            RequestParameters(query=query, header=headers),
            headers.get("content-type", "").lower(),
            exchange.body or None,
        )


@dataclass
class WireResponse:
    """An exchange's answer as openapi-core reads one (its `Response` protocol)."""

    status_code: int
    headers: Headers
    content_type: str
    data: bytes | None

    @classmethod
    def of(cls, exchange: Exchange) -> WireResponse:
        headers = Headers(list(exchange.answer_headers.items()))
        kind = headers.get("content-type", "").lower()
        return cls(exchange.status, headers, kind, exchange.answer or None)


def _why(exc: BaseException) -> str:
    """openapi-core's error: the schema errors under it, each naming its field (where the
    error has them), else its messages down the chain."""
    reasons: list[str] = []
    fields: list[str] = []
    node: BaseException | None = exc
    while node is not None:
        for error in getattr(node, "schema_errors", None) or []:
            where = "/".join(str(p) for p in error.absolute_path) or "(whole body)"
            fields.append(f"{where}: {error.message}")
        reasons.append(f"{type(node).__name__}: {str(node)[:200]}")
        if getattr(node, "name", None):  # a parameter's error names the parameter
            fields.insert(0, str(node))
        node = node.__cause__ or node.__context__
    return "; ".join(dict.fromkeys(fields or reasons))
