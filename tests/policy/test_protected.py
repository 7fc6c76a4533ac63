"""The `protected` reason (issue #18): what the vendor protects (GitLab protected tags,
Harbor immutable tags, ACR locks, ECR's archive) is kept and never sent, whatever else the
plan decides - a signature's own protected tag included, though a referrer otherwise shares
its subject's decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy.helpers import Registry, decisions, plan_for
from tests.policy.test_pull_rules import dg

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=200)
DELETE_ALL: dict[str, Any] = {
    "cleanup": {"disableGitHistoryBasedPolicy": True, "unlinked": "delete"}
}


def signature_of(digest: str) -> str:
    return f"sha256-{digest[7:]}.sig"


def tag_rule(tag: str, digest: str = "") -> dict[str, str]:
    return {"repository": "app", "tag": tag, "digest": digest, "why": "immutable tag rule"}


def lock(digest: str) -> dict[str, str]:
    return {"repository": "app", "tag": "", "digest": digest, "why": "ACR lock"}


def test_a_protected_signature_tag_survives_its_deleted_subject() -> None:
    """The subject goes (nothing keeps it); its signature's tag is protected by the vendor,
    so the signature stays, with the reason `protected`, not `referrer`."""
    reg = Registry()
    reg.image(dg(1), ["old"], OLD)
    reg.image(dg(2), [signature_of(dg(1))], OLD, subject=dg(1))
    plan = plan_for(reg, None, NOW, DELETE_ALL, protected=[tag_rule(signature_of(dg(1)))])
    assert decisions(plan) == {dg(1): "delete", dg(2): "keep"}
    row = plan.table.set_index("digest").loc[dg(2)]
    assert (row["reason"], row["reasons"]) == ("protected", ["protected"])
    assert any("immutable tag rule" in e for e in plan.evidence[("app", dg(2))])


def test_a_locked_referrer_manifest_survives_its_deleted_subject() -> None:
    reg = Registry()
    reg.image(dg(1), ["old"], OLD)
    reg.image(dg(2), [], OLD, subject=dg(1))
    plan = plan_for(reg, None, NOW, DELETE_ALL, protected=[lock(dg(2))])
    assert decisions(plan) == {dg(1): "delete", dg(2): "keep"}
    assert plan.table.set_index("digest").loc[dg(2), "reason"] == "protected"


def test_a_referrer_of_a_protected_referrer_is_kept_with_it() -> None:
    """A signature of a locked SBOM follows the SBOM, which the lock keeps."""
    reg = Registry()
    reg.image(dg(1), ["old"], OLD)
    reg.image(dg(2), [], OLD, subject=dg(1))  # the SBOM, locked
    reg.image(dg(3), [], OLD, subject=dg(2))  # the SBOM's signature
    plan = plan_for(reg, None, NOW, DELETE_ALL, protected=[lock(dg(2))])
    assert decisions(plan) == {dg(1): "delete", dg(2): "keep", dg(3): "keep"}
    assert plan.table.set_index("digest").loc[dg(3), "reason"] == "referrer"


def test_a_protected_subject_keeps_its_signature() -> None:
    reg = Registry()
    reg.image(dg(1), ["v1"], OLD)
    reg.image(dg(2), [signature_of(dg(1))], OLD, subject=dg(1))
    plan = plan_for(reg, None, NOW, DELETE_ALL, protected=[tag_rule("v1")])
    assert decisions(plan) == {dg(1): "keep", dg(2): "keep"}


@settings(max_examples=60, deadline=None)
@given(
    subjects=st.lists(st.booleans(), min_size=1, max_size=5),
    protect=st.lists(st.sampled_from(["none", "tag", "lock"]), min_size=1, max_size=5),
    keep_subject=st.lists(st.booleans(), min_size=1, max_size=5),
)
def test_nothing_protected_is_ever_deleted_or_untagged(
    subjects: list[bool], protect: list[str], keep_subject: list[bool]
) -> None:
    """Invariant: every protected tag stays on the registry (its row is `keep`), and every
    locked digest is kept, whatever the subjects, signatures and keep rules around it."""
    reg = Registry()
    protected: list[dict[str, str]] = []
    keep_tags = []
    for i, has_signature in enumerate(subjects):
        subject = reg.image(dg(10 + i), [f"v{i}", f"build-{i}"], OLD)
        if keep_subject[i % len(keep_subject)]:
            keep_tags.append(f"v{i}")
        how = protect[i % len(protect)]
        target = subject
        tag = f"build-{i}"
        if has_signature:
            target = reg.image(dg(50 + i), [signature_of(subject)], OLD, subject=subject)
            tag = signature_of(subject)
        if how == "tag":
            protected.append(tag_rule(tag))
        elif how == "lock":
            protected.append(lock(target))
    config = {"cleanup": {**DELETE_ALL["cleanup"], "keepTags": keep_tags}}
    plan = plan_for(reg, None, NOW, config, protected=protected)
    rows = plan.table.set_index(["digest", "tag"])["action"]
    by_digest = decisions(plan)
    for rule in protected:
        if rule["tag"]:
            digest = next(t["digest"] for t in reg.tags if t["tag"] == rule["tag"])
            assert rows.loc[(digest, rule["tag"])] == "keep", rule
        else:
            assert by_digest[rule["digest"]] == "keep", rule
