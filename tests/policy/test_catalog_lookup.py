"""The catalog's row lookup (pull records -> image rows): the 64-bit key index answers
exactly what the plain Arrow lookup answers, on random frames (hypothesis), and a key
shared by two different digests never matches the wrong image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tasks.policy.catalog as catalog_module
from tasks.core.frames import typed_frame
from tasks.policy.catalog import Catalog, _DigestIndex, catalog
from tasks.registry.frames import EDGE_COLUMNS

REPOSITORIES = ["app", "team/web", "mirror/nginx"]
hexes = st.text("0123456789abcdef", min_size=64, max_size=64)
# digests alike in their first or last 16 digits, as an adversary's or a test's would be
alike = st.sampled_from(["0" * 48, "f" * 48]).flatmap(
    lambda fill: st.text("0123456789abcdef", min_size=16, max_size=16).map(lambda tail: fill + tail)
)
digests = st.one_of(hexes, alike).map(lambda h: "sha256:" + h)
keys = st.tuples(st.sampled_from(REPOSITORIES), digests)


def _numbered(images: list[tuple[str, str]]) -> Catalog:
    frame = pd.DataFrame(
        {
            "repository": pd.Series([r for r, _ in images], dtype="str"),
            "digest": pd.Series([d for _, d in images], dtype="str"),
        }
    )
    tags = pd.DataFrame({"repository": ["app"], "tag": ["t"], "digest": ["sha256:" + "0" * 64]})
    return catalog(frame, tags.astype("str"), typed_frame([], EDGE_COLUMNS))


def _frame(keys: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "repository": pd.Series([r for r, _ in keys], dtype="str"),
            "digest": pd.Series([d for _, d in keys], dtype="str"),
        }
    )


def _exact(numbered: Catalog, frame: pd.DataFrame) -> np.ndarray:
    numbered._digest_index, numbered._digest_index_tried = None, True
    try:
        return numbered.rows_of(frame)
    finally:
        numbered._digest_index_tried = False


@settings(max_examples=200, deadline=None)
@given(
    st.lists(keys, min_size=1, max_size=40, unique=True),
    st.lists(st.one_of(keys, st.tuples(st.just("other"), digests)), max_size=40),
    st.data(),
)
def test_the_key_index_finds_what_the_exact_lookup_finds(
    images: list[tuple[str, str]], strangers: list[tuple[str, str]], data: st.DataObject
) -> None:
    numbered = _numbered(images)
    known = data.draw(st.lists(st.sampled_from(images), max_size=40))
    # an image's digest in another repository (or one no image is in), and digests one
    # character away from an image's, first or last
    elsewhere = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["other", *REPOSITORIES]),
                st.sampled_from([d for _, d in images]),
            ),
            max_size=20,
        )
    )
    near = [(r, d[:-1] + ("0" if d[-1] != "0" else "1")) for r, d in images[:5]]
    near += [(r, d[:7] + ("0" if d[7] != "0" else "1") + d[8:]) for r, d in images[:5]]
    probe = _frame(data.draw(st.permutations(known + strangers + elsewhere + near)))
    fast = numbered.rows_of(probe)
    assert probe.empty or numbered._digest_index is not None  # the index answered
    assert fast.tolist() == _exact(numbered, probe).tolist()
    for (repository, digest), row in zip(
        zip(probe["repository"], probe["digest"], strict=True), fast.tolist(), strict=True
    ):
        assert row == -1 or numbered.key(row) == (repository, digest)


def test_digests_one_character_apart_are_different_images() -> None:
    base = "sha256:" + "5" * 63
    numbered = _numbered([("app", base + "0"), ("app", base + "1"), ("app", "sha256:" + "6" * 64)])
    probe = _frame([("app", base + "1"), ("app", base + "0"), ("app", base + "2")])
    assert numbered.rows_of(probe).tolist() == [1, 0, -1]
    first = "sha256:1" + "7" * 63
    numbered = _numbered([("app", "sha256:0" + "7" * 63), ("app", first)])
    assert numbered.rows_of(_frame([("app", first)])).tolist() == [1]


def test_digests_of_another_form_fall_back_to_the_exact_lookup() -> None:
    numbered = _numbered([("app", "sha256:" + "a" * 64), ("app", "sha512:" + "b" * 64)])
    probe = _frame([("app", "sha512:" + "b" * 64), ("app", "sha256:" + "a" * 64)])
    assert numbered.rows_of(probe).tolist() == [1, 0]
    assert numbered._digest_index is None  # not sha256 + 64: no index was built
    numbered = _numbered([("app", "sha256:" + "a" * 64)])
    assert numbered.rows_of(_frame([("app", "sha256:short")])).tolist() == [-1]


@pytest.mark.parametrize("block", [catalog_module._BLOCK, 1, 2])
def test_a_shared_key_never_matches_the_wrong_image(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """With a key made of the first 8 digits only (no repository), a digest sharing them
    with an image, or its digest in another repository, meets its key: the confirmation
    on the whole digest and on the repository rejects them, however the rows fall into
    the confirmation's blocks."""
    monkeypatch.setattr(catalog_module, "_mixed", lambda words, codes: words[:, 0])
    monkeypatch.setattr(catalog_module, "_BLOCK", block)
    image = "sha256:" + "12345678" + "a" * 56
    numbered = _numbered([("app", image), ("team/web", "sha256:" + "9" * 64)])
    lookalike = "sha256:" + "12345678" + "b" * 56
    rows = numbered.rows_of(_frame([("app", lookalike), ("app", image), ("team/web", image)]))
    assert numbered._digest_index is not None
    assert rows.tolist() == [-1, 0, -1]


def test_two_images_on_one_key_leave_the_lookup_to_arrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "_mixed", lambda words, codes: words[:, 0])
    images = pd.DataFrame(
        {
            "repository": pd.Series(["app", "app"], dtype="str"),
            "digest": pd.Series(
                ["sha256:" + "1" * 64, "sha256:" + "1" * 8 + "2" * 56], dtype="str"
            ),
        }
    )
    assert _DigestIndex.of(images) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), digests), min_size=1, max_size=40), st.integers(1, 7))
def test_a_key_depends_on_its_row_only(rows: list[tuple[int, str]], block: int) -> None:
    """Keys are mixed a block of rows at a time: a row's key is the same whatever block it
    falls in, and whichever rows are mixed with it (the index and a lookup mix different
    frames). Keys of different (repository, digest) differ here."""
    values = pa.array([d for _, d in rows], pa.large_string())
    words = catalog_module._digest_words(values)
    assert words is not None
    codes = np.array([c for c, _ in rows], dtype=np.int64)
    whole = catalog_module._mixed(words, codes)
    alone = [
        int(catalog_module._mixed(words[i : i + 1], codes[i : i + 1])[0]) for i in range(len(rows))
    ]
    saved = catalog_module._BLOCK
    catalog_module._BLOCK = block
    try:
        blocked = catalog_module._mixed(words, codes)
    finally:
        catalog_module._BLOCK = saved
    assert whole.tolist() == alone == blocked.tolist()
    assert len(set(alone)) == len(set(rows))
