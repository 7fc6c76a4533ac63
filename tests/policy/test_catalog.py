"""Image rows: the images frame's rows first (a manifest listed twice counts once, the
last listing), then digests only tags or index edges name."""

from __future__ import annotations

from typing import Any

from tasks.core.frames import typed_frame
from tasks.policy.catalog import catalog
from tasks.registry.extract import EDGE_COLUMNS, IMAGE_COLUMNS, TAG_COLUMNS


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


def test_rows_of_images_tags_and_edges() -> None:
    images = typed_frame(
        [image("a", "d1"), image("b", "d1"), image("a", "d2", "old"), image("a", "d2", "new")],
        IMAGE_COLUMNS,
    )
    tags = typed_frame(
        [
            {"repository": "b", "tag": "x", "digest": "d1"},
            {"repository": "a", "tag": "y", "digest": "d9"},  # not scanned
            {"repository": "a", "tag": "z", "digest": "d2"},
        ],
        TAG_COLUMNS,
    )
    edges = typed_frame(
        [
            {"repository": "a", "parent": "d2", "child": "d8"},
            {"repository": "a", "parent": "d2", "child": "d1"},
        ],
        EDGE_COLUMNS,
    )
    rows = catalog(images, tags, edges)
    assert rows.known == 3
    assert [rows.key(r) for r in range(len(rows))] == [
        ("a", "d1"),
        ("b", "d1"),
        ("a", "d2"),
        ("a", "d9"),
        ("a", "d8"),
    ]
    assert rows.images["media_type"].tolist() == ["m", "m", "new"]  # the last listing
    assert rows.tag_rows == [1, 3, 2]
    assert rows.edges == [(2, 4), (2, 0)]
    assert rows.find(("b", "d1")) == 1 and rows.find(("b", "d2")) is None
    assert rows.known_mask().tolist() == [True, True, True, False, False]
