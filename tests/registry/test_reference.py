"""Image references: parsed once, normalised once."""

from __future__ import annotations

import pytest

from tasks.core.reference import (
    canonical_registry,
    parse_reference,
    registry_names,
    split_repository_reference,
)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("library/nginx", "docker.io/library/nginx:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1"),
        ("localhost/app", "127.0.0.1/app:latest"),
        (f"ghcr.io/x/y@{D}", f"ghcr.io/x/y@{D}"),
        (f"quay.io/a/b:t@{D}", f"quay.io/a/b:t@{D}"),
        (f"docker-pullable://reg.io:5000/a@{D}", f"reg.io:5000/a@{D}"),
    ],
    ids=[
        "bare",
        "tag",
        "library",
        "hub-alias",
        "host-port",
        "localhost",
        "digest",
        "tag-and-digest",
        "runtime-image-id",
    ],
)
def test_parse_reference(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["", "has space", "UPPER/case", "a@sha256:zz"],
    ids=["empty", "space", "upper", "bad-digest"],
)
def test_parse_reference_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "host", "expected"),
    [
        ("team/app:v1", "", ("team/app", "v1", "")),
        (f"team/app@{D}", "", ("team/app", "", D)),
        ("reg.io:5000/team/app:v1", "reg.io:5000", ("team/app", "v1", "")),
        ("team/app", "", ("team/app", "", "")),
    ],
    ids=["tag", "digest", "host-prefix", "name-only"],
)
def test_split_repository_reference(text: str, host: str, expected: tuple[str, str, str]) -> None:
    assert split_repository_reference(text, host) == expected


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("Registry.Example.com:443", "registry.example.com"),
        ("registry.example.com", "registry.example.com"),
        ("localhost:5000", "127.0.0.1:5000"),
        ("[::1]:5000", "127.0.0.1:5000"),
        ("localhost", "127.0.0.1"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io:443", "docker.io"),
        ("[fe80::1]:5000", "[fe80::1]:5000"),
        ("registry.example.com:5443", "registry.example.com:5443"),
    ],
    ids=lambda v: v,
)
def test_one_registry_has_one_canonical_name(spelling: str, canonical: str) -> None:
    assert canonical_registry(spelling) == canonical


def test_registry_names_are_its_host_and_aliases() -> None:
    names = registry_names("https://reg.example.com:443", ["Mirror.local:5000", "localhost:80"])
    assert names == {"reg.example.com", "mirror.local:5000", "127.0.0.1:80"}
    assert parse_reference("reg.example.com:443/team/app:v1").registry in names
