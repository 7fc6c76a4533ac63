"""Image references: parsed once, normalised once."""

from __future__ import annotations

import pytest

from tasks.registry.reference import parse_reference, split_repository_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("library/nginx", "docker.io/library/nginx:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1"),
        ("localhost/app", "localhost/app:latest"),
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
