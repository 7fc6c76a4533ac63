"""Image rows: the images frame's rows first (a manifest listed twice counts once, the
last listing), then digests only tags or index edges name."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.core.frames import typed_frame
from tasks.policy.catalog import catalog
from tasks.registry.frames import EDGE_COLUMNS, IMAGE_COLUMNS, TAG_COLUMNS


def image(repository: str, digest: str, media_type: str = "m") -> dict[str, Any]:
    return {
        "repository": repository,
        "digest": digest,
        "media_type": media_type,
        "created": None,
        "size": 1,
        "labels": {},
        "annotations": {},
        "platform": "",
        "subject": "",
        "error": "",
    }


def sha(name: str) -> str:
    return f"sha256:{name.encode().hex():0>64}"


@pytest.mark.parametrize(
    "digest", [str, sha], ids=["arrow-lookup (not sha256)", "key-index (sha256)"]
)
def test_rows_of_images_tags_and_edges(digest: Any) -> None:
    d1, d2, d8, d9 = (digest(n) for n in ("d1", "d2", "d8", "d9"))
    images = typed_frame(
        [image("a", d1), image("b", d1), image("a", d2, "old"), image("a", d2, "new")],
        IMAGE_COLUMNS,
    )
    tags = typed_frame(
        [
            {"repository": "b", "tag": "x", "digest": d1},
            {"repository": "a", "tag": "y", "digest": d9},  # not scanned
            {"repository": "a", "tag": "z", "digest": d2},
        ],
        TAG_COLUMNS,
    )
    edges = typed_frame(
        [
            {"repository": "a", "parent": d2, "child": d8},
            {"repository": "a", "parent": d2, "child": d1},
        ],
        EDGE_COLUMNS,
    )
    rows = catalog(images, tags, edges)
    assert rows.known == 3
    assert [rows.key(r) for r in range(len(rows))] == [
        ("a", d1),
        ("b", d1),
        ("a", d2),
        ("a", d9),
        ("a", d8),
    ]
    assert rows.images["media_type"].tolist() == ["m", "m", "new"]  # the last listing
    assert rows.tag_rows == [1, 3, 2]
    assert rows.edges == [(2, 4), (2, 0)]
    assert rows.find(("b", d1)) == 1 and rows.find(("b", d2)) is None
    assert rows.known_mask().tolist() == [True, True, True, False, False]


def test_distinct_sha256_images_are_numbered_by_the_key_index() -> None:
    """No image twice: the 64-bit key index numbers the rows and finds every tag's."""
    images = typed_frame([image("a", sha("d1")), image("b", sha("d1"))], IMAGE_COLUMNS)
    tags = typed_frame(
        [
            {"repository": "b", "tag": "x", "digest": sha("d1")},
            {"repository": "a", "tag": "y", "digest": sha("d1")},
            {"repository": "c", "tag": "z", "digest": sha("d1")},  # another repository
        ],
        TAG_COLUMNS,
    )
    rows = catalog(images, tags, typed_frame([], EDGE_COLUMNS))
    assert rows._digest_index is not None
    assert rows.tag_rows == [1, 0, 2]
    assert rows.key(2) == ("c", sha("d1"))
    assert rows.known_mask().tolist() == [True, True, False]
