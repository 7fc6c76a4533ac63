"""The plan's rules, in the order `tasks.policy.plan.RULES` runs them: each reads the
`PlanState` and adds keep reasons (with their evidence), or decides from those before it.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from tasks.core.config import name_pattern
from tasks.core.duration import format_duration
from tasks.core.errors import ConfigError
from tasks.core.frames import from_micros, to_micros
from tasks.core.reference import (
    canonical_registry,
    registry_names,
    split_repository_reference,
)
from tasks.policy.gitpolicy import evaluate_git_policies
from tasks.policy.recency import PullView, PushTimes, ordinal
from tasks.policy.state import PlanState
from tasks.policy.werf_layout import murmur3_32


def keep_images_in_use(state: PlanState) -> None:
    """kubernetes, helm-history: used by the cluster now, or a Helm rollback target."""
    inputs, images = state.inputs, state.images
    if inputs.cluster is None or not state.config.uses_kubernetes:
        return
    names = registry_names(state.registry_host, state.config.registry.aliases)
    used = inputs.cluster[inputs.cluster["registry"].isin(list(names))]
    for row in used.itertuples(index=False):
        reason = "helm-history" if row.source == "helm" else "kubernetes"
        where = f"{row.context}/{row.namespace} {row.kind} {row.object}"
        why = f"{reason}: {where} uses {row.image}"
        if row.digest:  # by digest: the image, whatever its tags
            image = images.find((row.repository, row.digest))
            if image is not None and state.known[image]:
                state.reasons.keep(image, reason, why)
        elif (tag_row := state.tag_lookup.row((row.repository, row.tag))) is not None:
            image = images.tag_rows[tag_row]  # by tag: that tag, and the image through it
            if state.known[image]:
                state.reasons.keep_tag(tag_row, image, reason, why)


def keep_git_policies(state: PlanState) -> None:
    """git-policy[i]: reachable from a live branch or tag under keepPolicies[i]; in a
    repository werf wrote, per werf image over the commits of its meta records, as werf
    ranks them (`tasks.policy.werf_layout`)."""
    refs, history = state.inputs.refs, state.history
    if not state.config.uses_git or refs is None or history is None:
        return
    policies = state.config.effective_policies()
    werf_rows = {row for repository in state.werf.values() for row in repository.rows()}
    plain = {r: c for r, c in state.links.commits.items() if r not in werf_rows}
    repositories = state.images.repositories
    git_keeps = evaluate_git_policies(refs, history, plain, repositories, policies, state.now)
    for image, keeps in git_keeps.items():
        for k in keeps:
            state.reasons.keep(image, f"git-policy[{k.policy}]", k.describe())
    managed = state.config.link.werf_images
    ids = {murmur3_32(name) for name in managed} if managed is not None else None
    for (_, werf_image), commits in sorted(state.werf_links.items()):
        if ids is not None and werf_image not in ids:
            continue  # an image werf.yaml no longer builds: werf drops its records
        found = evaluate_git_policies(refs, history, commits, repositories, policies, state.now)
        for image, keeps in found.items():
            for k in keeps:
                why = f"{k.describe()} (werf image {werf_image})"
                state.reasons.keep(image, f"git-policy[{k.policy}]", why)
                state.werf_hits.add((werf_image, image, k.commit))


def refuse_unlinked_delete_on_werf(state: PlanState) -> None:
    """A guard, not a rule: `cleanup.unlinked: delete` deleted every stage, record and live
    image of a werf repository read as plain OCI. Where werf's layout is recognised it is
    refused: regsweep decides such a repository as werf does, and `unlinked` does not
    apply there."""
    if state.config.cleanup.unlinked != "delete" or not state.werf:
        return
    names = ", ".join(sorted(state.werf))
    raise ConfigError(
        "link.source",
        f"cleanup.unlinked: delete is refused: {names} look(s) werf-managed (meta records, "
        "stages labelled werf), and regsweep reads them as werf does, where unlinked does not "
        "apply. Remove cleanup.unlinked: delete, or set link.source: oci to treat them as "
        "plain images (that deletes werf's records and the parent stages of live images)",
    )


def keep_pushed_recently(state: PlanState) -> None:
    """pushed-recently: in a repository a cleanup.registryPolicies entry matches (the first
    that does), of the images with a tag matching its `tags`, the `mostRecentlyPushedCount`
    newest and those pushed within `pushedWithin` (`PushTimes`: the vendor's push time
    where it reports one, else `created`; an index is as new as its newest child; an image
    with no time is ranked last and is never "within"). Where the vendor's push times were
    read and its listing lacks an image, that image is kept: not known to be old."""
    cleanup = state.config.cleanup
    candidates = state.policy_candidates()
    if not candidates:
        return
    times = PushTimes.of(state)
    for (index, repository), rows in sorted(candidates.items()):
        policy = cleanup.registry_policies[index]
        if not policy.uses_pushes:
            continue
        where = f"cleanup.registryPolicies[{index}]"
        members = np.sort(np.fromiter(rows, dtype=np.int64, count=len(rows)))
        unlisted = times.unlisted[members]
        for image in members[unlisted].tolist():
            state.reasons.keep(
                image,
                "pushed-recently",
                f"pushed-recently: {where}: {times.source[image]} lists no push time for it "
                "(pushed or changed while the listing was read?): kept, not known to be old",
            )
        if policy.most_recently_pushed_count:
            count = policy.most_recently_pushed_count
            listed = members[~unlisted]
            # known times first, newest first, then row order (lexsort: last key first)
            order = np.lexsort((listed, -times.micros[listed], ~times.known[listed]))
            for rank, image in enumerate(listed[order[:count]].tolist(), start=1):
                state.reasons.keep(
                    image,
                    "pushed-recently",
                    f"pushed-recently: {where}: {ordinal(rank)} most recently pushed in "
                    f"{repository} (mostRecentlyPushedCount {count}{times.by(image)})",
                )
        if policy.pushed_within is not None:
            since = to_micros(state.now - policy.pushed_within)
            window = format_duration(policy.pushed_within)
            recent = times.known[members] & (times.micros[members] >= since)
            for image in members[recent].tolist():
                when = from_micros(int(times.micros[image]))
                state.reasons.keep(
                    image,
                    "pushed-recently",
                    f"pushed-recently: {where}: pushed {when:%Y-%m-%d %H:%M} UTC"
                    f"{times.by(image)}, within pushedWithin {window}",
                )


def keep_pulled_within(state: PlanState) -> None:
    """pulled-within: pulled in the window of cleanup.keepImagesPulledWithin (every image)
    or of a registry policy's pulledWithin, or among its mostRecentlyPulledCount most
    recently pulled. An index counts as pulled when it or a child was. Fail closed: where
    the receivers' uptime does not cover the whole window (or there are no records), "not
    pulled" is unknown and the image is kept, the evidence naming the gap."""
    cleanup, config = state.config.cleanup, state.config
    if not config.uses_pulls:
        return
    view = PullView.of(state, state.inputs.pulls)
    if cleanup.keep_images_pulled_within is not None:
        window = cleanup.keep_images_pulled_within
        view.keep_in_window(state, "cleanup.keepImagesPulledWithin", window, state.known.copy())
    for (index, _repository), rows in sorted(state.policy_candidates().items()):
        policy = cleanup.registry_policies[index]
        where = f"cleanup.registryPolicies[{index}]"
        candidates = np.zeros(len(state.images), dtype=bool)
        candidates[list(rows)] = True
        if policy.pulled_within is not None:
            view.keep_in_window(state, where, policy.pulled_within, candidates)
        if policy.most_recently_pulled_count:
            view.keep_most_recent(state, where, policy.most_recently_pulled_count, candidates)


def keep_listed(state: PlanState) -> None:
    """keep-list: `repository:tag`, `repository@digest`, optionally prefixed by the host."""
    images, reasons = state.images, state.reasons
    host = canonical_registry(state.registry_host)
    for entry in state.inputs.keep_list:
        repo, tag, digest = split_repository_reference(entry, host)
        image = images.find((repo, digest)) if digest else None
        if image is not None and state.known[image]:
            reasons.keep(image, "keep-list", f"keep-list: {entry}")
        elif tag and (tag_row := state.tag_lookup.row((repo, tag))) is not None:
            reasons.keep_tag(tag_row, images.tag_rows[tag_row], "keep-list", f"keep-list: {entry}")


def keep_restored(state: PlanState) -> None:
    """restored: a digest `regsweep restore` put back, for safety.keepRestoredFor after."""
    window = state.config.safety.keep_restored_for
    for entry in state.inputs.restored:
        until = entry.moment + window
        image = state.images.find((entry.repository, entry.digest))
        if image is not None and state.known[image] and state.now < until:
            state.reasons.keep(
                image,
                "restored",
                f"restored: put back by `regsweep restore` at {entry.moment:%Y-%m-%d %H:%M} "
                f"UTC, kept until {until:%Y-%m-%d %H:%M} UTC (safety.keepRestoredFor "
                f"{format_duration(window)}; cleanup.keepList keeps it for good)",
            )


def keep_matching_tags(state: PlanState) -> None:
    """keep-tag: a tag matching cleanup.keepTags (anchored)."""
    patterns = [name_pattern(p) for p in state.config.cleanup.keep_tags]
    if not patterns:
        return
    images = state.images
    for tag_row, (image, tag) in enumerate(zip(images.tag_rows, images.tag_names, strict=True)):
        if any(p.fullmatch(tag) for p in patterns):
            why = f"keep-tag: tag {tag} matches cleanup.keepTags"
            state.reasons.keep_tag(tag_row, image, "keep-tag", why)


def keep_built_recently(state: PlanState) -> None:
    """built-within: created in the last N hours (an index is as new as its newest child)."""
    cleanup = state.config.cleanup
    if cleanup.disable_built_within_last_n_hours_policy:
        return
    since = to_micros(state.now - timedelta(hours=cleanup.keep_images_built_within_last_n_hours))
    recent = state.has_created & (state.created >= since)
    for repository in state.werf.values():  # werf's records follow their stage, not their age
        recent[list(repository.records())] = False
    for image in np.flatnonzero(recent).tolist():
        when = from_micros(int(state.created[image]))
        state.reasons.keep(
            image, "built-within", f"built-within: created {when:%Y-%m-%d %H:%M} UTC"
        )


def keep_unlinked(state: PlanState) -> None:
    """unlinked: no commit link, with cleanup.unlinked: keep (index children and referrers
    follow their holder or subject instead; a registry policy decides in the repositories
    it matches)."""
    if state.config.cleanup.unlinked != "keep":
        return
    unlinked = state.known.copy()
    unlinked[list(state.links.commits)] = False
    for repository in state.werf.values():  # werf decides there (keep_werf_stage_graph...)
        unlinked[list(repository.rows())] = False
    unlinked[[child for kids in state.children.values() for child in kids]] = False
    unlinked[list(state.subjects)] = False
    if state.config.cleanup.registry_policies:  # there, the registry policy decides instead
        matched = {
            repository
            for repository in set(state.images.repositories)
            if state.config.cleanup.registry_policy_of(repository) is not None
        }
        unlinked &= ~np.array([r in matched for r in state.images.repositories], dtype=bool)
    for image in np.flatnonzero(unlinked).tolist():
        state.reasons.keep(image, "unlinked", "unlinked: no commit link (cleanup.unlinked: keep)")


def decide_digests(state: PlanState) -> None:
    """A digest is kept when any reason so far names it or one of its tags."""
    tag_rows = np.array(state.images.tag_rows, dtype=np.int64)
    state.kept = np.asarray(state.reasons.digest.any(axis=1))
    state.kept[tag_rows[state.reasons.tag.any(axis=1)]] = True


def keep_index_children(state: PlanState) -> None:
    """index-child: every manifest a kept index lists (a surviving index never names a
    deleted manifest)."""
    state.keep_children_of_kept()


def keep_werf_stage_graph(state: PlanState) -> None:
    """stage-parent, stage-source: as werf's cleanup protects relatives: every kept stage
    keeps its ancestors (werf.io/parent-stage-id), and a stage kept by anything but the Git
    policy its import and dependency sources too (werf: the Git policy keeps those through
    their own meta records); to a fixpoint with index children."""
    if not state.werf:
        return
    reasons, labels = state.reasons, state.images.images["labels"].tolist()
    git = np.array([n.startswith("git-policy[") for n in reasons.names], dtype=bool)
    tag_rows = np.array(state.images.tag_rows, dtype=np.int64)
    by_tag = np.zeros(len(state.images), dtype=bool)  # kept through a tag (never the policy)
    by_tag[tag_rows[reasons.tag.any(axis=1)]] = True

    def keep(row: int, reason: str, why: str) -> None:
        if not reasons.digest[row, reasons.column[reason]]:
            reasons.keep(row, reason, why)
            state.kept[row] = True

    stage_of = {
        row: (repository, stage)
        for repository in state.werf.values()
        for stage, row in repository.stages.items()
    }
    # A worklist, not passes over every stage: each stage is handled once, and once more if
    # it gains a reason other than the Git policy (then its sources are kept too).
    handled: dict[int, bool] = {}  # stage row -> handled with its sources
    pending = [row for row in stage_of if state.kept[row]]
    while pending:
        while pending:
            row = pending.pop()
            with_sources = bool(by_tag[row] or (reasons.digest[row] & ~git).any())
            if row in handled and (handled[row] or not with_sources):
                continue
            handled[row] = with_sources
            repository, stage = stage_of[row]
            own = labels[row] if row < state.images.known and labels[row] else {}
            parents, sources = repository.stage_rows_of(own)
            for parent in parents:
                keep(parent, "stage-parent", f"stage-parent: parent of kept stage {stage}")
                pending.append(parent)
            for source in sources if with_sources else []:
                why = f"stage-source: import or dependency source of {stage}"
                keep(source, "stage-source", why)
                pending.append(source)
        if state.keep_children_of_kept():  # an index kept so holds its platforms' stages
            pending = [row for row in stage_of if state.kept[row] and row not in handled]


def keep_werf_records(state: PlanState) -> None:
    """werf-record: werf's records follow their stage, as werf cleans them: a meta record
    while a keepPolicy reaches its stage through its commit (werf's `cleanupImageMetadata`:
    a reference's walk hits a stage at the newest commit it visits of it, so on one branch
    only the newest record of a reused stage stays; the others go, and so do those of
    deleted stages, of stages only other rules keep, of commits Git does not know); a
    custom-tag or import record while its stage is kept; managed-image records always
    (werf drops one only with the image from werf.yaml); rejected-stage records never."""
    if not state.werf:
        return
    reasons = state.reasons

    def keep(row: int, why: str) -> None:
        reasons.keep(row, "werf-record", f"werf-record: {why}")
        state.kept[row] = True

    for repository in state.werf.values():
        for row, image, commit, stage in repository.meta:
            stage_row = repository.stages.get(stage)
            if stage_row is not None and (image, stage_row, commit) in state.werf_hits:
                keep(
                    row,
                    f"image {image} at commit {commit[:7]}, through which a keepPolicy "
                    f"reaches stage {stage}",
                )
        for row, stage in [*repository.custom.items(), *repository.imports.items()]:
            stage_row = repository.stages.get(stage)
            if stage_row is not None and state.kept[stage_row]:
                keep(row, f"record of kept stage {stage}")
        for row in repository.managed:
            keep(row, "managed-image record (werf drops it with the image from werf.yaml)")


def decide_referrers(state: PlanState) -> None:
    """referrer: a signature, attestation or SBOM shares its subjects' decision (kept while
    any subject is), and nothing else decides for it (its own tags included) - except a kept
    index holding one, and a vendor protection (`protected`, on it or on one of its tags:
    the vendor refuses the delete, so it is never sent). First forget what decided for them,
    then decide to a fixpoint: a subject may itself be a referrer, or be held by an index
    kept that way, whatever the order of the rows."""
    reasons, kept, subjects = state.reasons, state.kept, state.subjects
    stays = [reasons.column["index-child"], reasons.column["protected"]]
    tag_rows = np.array(state.images.tag_rows, dtype=np.int64)
    is_referrer = np.zeros(len(state.images), dtype=bool)
    is_referrer[list(subjects)] = True
    referrer_tags = is_referrer[tag_rows]
    tag_stays = reasons.tag[:, stays].copy()
    reasons.tag[referrer_tags] = False
    reasons.tag[:, stays] = tag_stays
    guarded = np.zeros(len(state.images), dtype=bool)
    guarded[tag_rows[tag_stays.any(axis=1)]] = True

    def standing(image: int) -> list[str]:
        return [e for e in reasons.evidence.lines(image) if e.startswith(_STANDING)]

    for image, of in subjects.items():
        held = reasons.digest[image, stays].copy()
        why = standing(image)
        reasons.digest[image] = False
        reasons.digest[image, stays] = held
        kept[image] = bool(held.any() or guarded[image])
        gone = ", ".join(subject for subject, _ in of)
        reasons.evidence.replace(
            image, [f"referrer: its subject {gone} is not kept or is gone", *why]
        )
    undecided = set(subjects)
    changed = bool(undecided)
    while changed:
        changed = False
        for image in sorted(undecided):
            alive = [subject for subject, row in subjects[image] if row is not None and kept[row]]
            if alive:
                undecided.discard(image)
                reasons.digest[image, reasons.column["referrer"]] = True
                reasons.evidence.replace(image, [f"referrer: of kept {alive[0]}", *standing(image)])
                kept[image] = changed = True
        changed = state.keep_children_of_kept(only_new=True) or changed


_STANDING = ("index-child", "protected")
"""Evidence of the reasons a referrer keeps of its own (see decide_referrers)."""


def keep_protected(state: PlanState) -> None:
    """protected: what the registry's vendor protects is never deleted: a tag (GitLab's
    protected tags, ACR's locked tags; its digest with it), or a digest with every tag on it
    (ACR's locked manifests, ECR's archived images)."""
    protected = state.inputs.protected
    if protected is None or protected.empty:
        return
    images = state.images
    digests = protected["digest"] if "digest" in protected else [""] * len(protected)
    for repository, tag, digest, why in zip(
        protected["repository"], protected["tag"], digests, protected["why"], strict=True
    ):
        if tag:
            tag_row = state.tag_lookup.row((repository, tag))
            if tag_row is not None:
                image = images.tag_rows[tag_row]
                state.reasons.keep_tag(tag_row, image, "protected", f"protected: tag {tag}: {why}")
        elif (row := images.find((repository, digest))) is not None and state.known[row]:
            state.reasons.keep(row, "protected", f"protected: {why}")


def keep_unreadable(state: PlanState) -> None:
    """unreadable: a manifest or config regsweep cannot parse is kept, whatever else says
    (older saved inputs have no error column)."""
    frame = state.images.images
    if "error" not in frame.columns:
        return
    errors = frame["error"].tolist()
    for image in np.flatnonzero(frame["error"].to_numpy(dtype=bool)).tolist():
        state.reasons.keep(image, "unreadable", f"unreadable: {errors[image]}")
        state.kept[image] = True


def decide_untags(state: PlanState) -> None:
    """untag: a tag no rule keeps, on a digest kept only for its other tags (keep-tag, a
    keep-list entry or a cluster or Helm reference by tag), goes; the digest stays. A digest
    a rule keeps as a whole (a commit link, a pull, its age, a registry policy, a holder, a
    reference by digest...) keeps every tag on it: which tag its users pull is not known.
    With cleanup.untag: off every tag on a kept digest is kept."""
    if state.config.cleanup.untag == "off" or not len(state.untag):
        return
    tag_rows = np.array(state.images.tag_rows, dtype=np.int64)
    whole = np.asarray(state.reasons.digest.any(axis=1))[tag_rows]
    state.untag = state.kept[tag_rows] & ~whole & ~state.reasons.tag.any(axis=1)
