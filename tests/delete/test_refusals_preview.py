"""`refusals` (what `regsweep plan` and `check` show) says exactly what the delete step's
own guards (`settle_closures`, which a dry run and an apply go through) refuse: checked on
random plans over several repositories, with incomplete listings, a run-wide refusal,
`maxDeleteFraction` and `--force` (hypothesis)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.result import refusals as refused_in
from tasks.core.frames import typed_frame
from tasks.delete.loader import (
    UNCONFIRMED,
    DeleteRequest,
    refusals,
    results_frame,
    settle_closures,
)
from tasks.registry.frames import (
    BLOB_COLUMNS,
    EDGE_COLUMNS,
    IMAGE_COLUMNS,
    STATUS_COLUMNS,
    TAG_COLUMNS,
    RegistryExtraction,
)

MEDIA = "application/vnd.oci.image.manifest.v1+json"
# per image: every row kept, every row deleted, or one tag untagged beside a kept one
FATES = st.sampled_from(["keep", "delete", "untag"])
IMAGE = {
    "media_type": MEDIA,
    "created": None,
    "size": 0,
    "labels": {},
    "annotations": {},
    "platform": "",
    "subject": "",
    "error": "",
}


def scan_of(
    images: list[dict[str, object]], tags: list[dict[str, object]], status: list[dict[str, object]]
) -> RegistryExtraction:
    """A registry stage's extraction of these rows (no index edges, no blobs)."""
    return RegistryExtraction(
        images=typed_frame(images, IMAGE_COLUMNS),
        tags=typed_frame(tags, TAG_COLUMNS),
        index_edges=typed_frame([], EDGE_COLUMNS),
        blobs=typed_frame([], BLOB_COLUMNS),
        status=typed_frame(status, STATUS_COLUMNS),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[pd.DataFrame, RegistryExtraction, DeleteRequest]:
    repos = [f"team/r{i}" for i in range(draw(st.integers(1, 4)))]
    rows, images, tags, status = [], [], [], []
    for repo in repos:
        fates = draw(st.lists(FATES, min_size=0, max_size=6))
        for n, fate in enumerate(fates):
            digest = f"sha256:{len(images):064x}"
            names = [f"t{n}a", f"t{n}b"] if fate == "untag" else [f"t{n}"]
            images.append({**IMAGE, "repository": repo, "digest": digest})
            for i, tag in enumerate(names):
                tags.append({"repository": repo, "tag": tag, "digest": digest})
                action = "untag" if fate == "untag" and i == 1 else fate.replace("untag", "keep")
                rows.append(
                    {
                        "repository": repo,
                        "digest": digest,
                        "tag": tag,
                        "media_type": MEDIA,
                        "commits": [],
                        "action": action,
                        "reason": "no-policy" if action == "delete" else "keep-tag",
                        "reasons": [],
                    }
                )
        complete = draw(st.booleans()) or draw(st.booleans())
        status.append(
            {"repository": repo, "complete": complete, "tags": 0, "error": "", "manifest_gets": 0}
        )
    plan = pd.DataFrame(
        rows,
        columns=["repository", "digest", "tag", "media_type", "commits", "action", "reason"],
    )
    scan = scan_of(images, tags, status)
    request = DeleteRequest(
        apply=draw(st.booleans()),
        max_delete_fraction=draw(st.sampled_from([0.1, 0.5, 0.8, 1.0])),
        force=draw(st.booleans()),
        refusal=draw(st.sampled_from(["", "no image in the cluster names this registry"])),
    )
    return plan, scan, request


@settings(max_examples=120, deadline=None)
@given(cases())
def test_the_preview_refuses_what_the_delete_step_refuses(
    case: tuple[pd.DataFrame, RegistryExtraction, DeleteRequest],
) -> None:
    plan, scan, request = case
    settled = settle_closures(plan, scan, request)
    assert set(refusals(plan, scan, request)) == set(refused_in(results_frame(settled.results)))


def test_what_was_not_confirmed_on_a_terminal_is_refused_by_the_delete_step() -> None:
    digests = [f"sha256:{n:064x}" for n in range(3)]
    plan = pd.DataFrame(
        {
            "repository": ["r"] * 3,
            "digest": digests,
            "tag": ["a", "b", "c"],
            "media_type": [MEDIA] * 3,
            "commits": [[]] * 3,
            "action": ["delete"] * 3,
            "reason": ["no-policy"] * 3,
        }
    )
    scan = scan_of(
        [{**IMAGE, "repository": "r", "digest": d} for d in digests],
        [{"repository": "r", "tag": t, "digest": d} for t, d in zip("abc", digests, strict=True)],
        [{"repository": "r", "complete": True, "tags": 3, "error": "", "manifest_gets": 0}],
    )
    request = DeleteRequest(apply=True, force=True, confirmed=frozenset({f"r@{digests[0]}"}))
    settled = settle_closures(plan, scan, request)
    assert [c.root for closures in settled.live.values() for c in closures] == [digests[0]]
    refused = [(r["digest"], r["detail"]) for r in settled.results]
    assert refused == [(digests[1], UNCONFIRMED), (digests[2], UNCONFIRMED)]
