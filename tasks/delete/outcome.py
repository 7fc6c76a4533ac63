"""What became of each manifest the plan deletes and each tag it untags: the `outcome`
column of the results."""

from __future__ import annotations

from typing import Literal, get_args

Outcome = Literal[
    "deleted",  # the DELETE was carried out
    "gone",  # already deleted (by an earlier attempt or someone else)
    "would-delete",  # dry run
    "skipped-moved",  # a tag changed since the scan (see tasks.delete.recheck)
    "skipped-in-use",  # the cluster uses it now
    "skipped-incomplete",  # its repository's listing was incomplete: not touched
    "refused",  # a guard refused its repository (or the run); deletes disabled
    "failed",  # the DELETE (or its re-check) failed; the manifest may still exist
    "not-attempted",  # not sent: a holder of it survived, or the registry stopped answering
    "untagged",  # an untag: the tag was deleted, its digest stays
    "would-untag",  # an untag, dry run
    "skipped-unsupported",  # an untag the registry cannot do (cleanup.untag: api), or a
    # manifest its vendor has no way to delete (Docker Hub: an untagged one): not a failure
    "repaired",  # tags that named nothing (a deletion cut short) removed (tasks.delete.reconcile)
    "would-repair",  # the same, dry run
    "damaged",  # a tag that names nothing and no ledger of ours explains: left, reported
    "healed",  # a tag pushed onto a manifest while the step deleted it: put back (pushes.py)
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
FAILED_OUTCOMES = frozenset({"failed", "not-attempted"})
REFUSED_OUTCOMES = frozenset({"refused"})
