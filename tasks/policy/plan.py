"""The deletion plan: every keep rule applied to the extracted registry, Git and cluster.

Pure: DataFrames and the configuration in, the plan DataFrame out; no I/O, no clock.

``plan`` — one row per repository x digest x tag (tag empty for an untagged manifest)
    repository  str                  repository name
    digest      str                  manifest digest
    tag         str                  tag on the digest, empty when untagged
    media_type  str                  manifest media type
    created     datetime64[us, UTC]  config ``created`` (an index: its newest child)
    commits     object (list[str])   commit SHAs the image is linked to
    action      str                  ``keep``, ``delete`` (the digest, every tag on it) or
                                     ``untag`` (this tag; the digest stays for its kept tags)
    reason      str                  first keep reason in REASON_ORDER, or ``no-policy``
    reasons     object (list[str])   every keep reason that applies
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.core.config import Config, name_pattern
from tasks.core.duration import format_duration
from tasks.core.errors import ConfigError
from tasks.core.frames import arrow_strings, from_micros, gc_paused, to_micros
from tasks.core.reference import (
    canonical_registry,
    is_fallback_index_tag,
    referrer_tag_subject,
    registry_names,
    split_repository_reference,
)
from tasks.core.restored import RestoredImage
from tasks.policy.catalog import Catalog, Key, catalog
from tasks.policy.evidence import DeferredLines, Evidence, EvidenceLines
from tasks.policy.gitpolicy import evaluate_git_policies
from tasks.policy.history import CommitHistory
from tasks.policy.linking import CommitIndex, Links, link_images
from tasks.policy.werf_layout import WerfRepository, murmur3_32, werf_repositories
from tasks.pulls.records import PullRecords

Reason = Literal[
    "kubernetes",  # used by the cluster now
    "helm-history",  # an image of a recent Helm release revision (a rollback target)
    "pulled-within",  # pulled recently (pull records), or records do not cover the window
    "git-policy",  # reachable under a keepPolicies entry (git-policy[i] in the plan)
    "pushed-recently",  # kept by a cleanup.registryPolicies entry (most recent, or within)
    "keep-list",  # named in cleanup.keepList
    "restored",  # put back by `regsweep restore` within safety.keepRestoredFor
    "keep-tag",  # a tag matching cleanup.keepTags
    "built-within",  # created within keepImagesBuiltWithinLastNHours
    "unlinked",  # no commit link, with cleanup.unlinked: keep
    "index-child",  # listed by a kept index
    "stage-parent",  # werf: an ancestor stage of a kept stage (werf.io/parent-stage-id)
    "stage-source",  # werf: an import or dependency source of a stage kept by a non-Git rule
    "werf-record",  # werf: a meta, custom-tag, import or managed-image record werf keeps
    "referrer",  # a signature, attestation or SBOM of a kept image
    "shared-digest",  # another tag on the digest is kept
    "unreadable",  # a manifest or config regsweep cannot parse
    "protected",  # a vendor protection: GitLab/ACR tag, ACR lock, ECR archive, Harbor and
    # Docker Hub immutable tags (never sent)
]
REASON_ORDER: tuple[Reason, ...] = get_args(Reason)
"""Keep reasons, in the order the plan's `reason` column picks the first of."""
PLAN_COLUMNS = {
    "repository": "str",
    "digest": "str",
    "tag": "str",
    "media_type": "str",
    "created": "datetime64[us, UTC]",
    "commits": "object",
    "action": "str",
    "reason": "str",
    "reasons": "object",
}
PLAN_COLUMNS_ORDER = list(PLAN_COLUMNS)


@dataclass
class PlanInputs:
    """Everything the plan is computed from (git and cluster may be absent when disabled)."""

    images: pd.DataFrame
    tags: pd.DataFrame
    index_edges: pd.DataFrame
    refs: pd.DataFrame | None = None
    commits: pd.DataFrame | None = None
    cluster: pd.DataFrame | None = None
    keep_list: list[str] = field(default_factory=list)
    pulls: PullRecords | None = None  # None: no records (a pull rule then keeps, closed)
    protected: pd.DataFrame | None = None  # registry stage's `protected`: repository, tag, why
    pushed: pd.DataFrame | None = None  # registry stage's `pushed`: the vendor's push times
    restored: list[RestoredImage] = field(default_factory=list)  # `regsweep restore`'s records


@dataclass
class Plan:
    """The plan table plus the evidence behind every keep, for reports and `explain`."""

    table: pd.DataFrame
    evidence: Evidence
    unknown_commits: dict[Key, set[str]]
    notes: list[str] = field(default_factory=list)  # what the run's notes should say
    werf: list[str] = field(default_factory=list)  # repositories read the werf way


def build_plan(inputs: PlanInputs, config: Config, registry_host: str, now: datetime) -> Plan:
    """Return the plan for `inputs` under `config` at time `now` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with gc_paused():
        return _build_plan(inputs, config, registry_host, now)


class _Reasons:
    """Keep reasons as boolean matrices (image rows x reasons, tag rows x reasons) plus the
    evidence lines per image row. Reason columns are in REASON_ORDER, git-policy[i] by i."""

    def __init__(self, images: int, tags: int, policies: int) -> None:
        git = [f"git-policy[{i}]" for i in range(policies)]
        at = REASON_ORDER.index("git-policy")
        self.names = [*REASON_ORDER[:at], *git, *REASON_ORDER[at + 1 :]]
        self.column = {name: i for i, name in enumerate(self.names)}
        self.digest = np.zeros((images, len(self.names)), dtype=bool)
        self.tag = np.zeros((tags, len(self.names)), dtype=bool)
        self.evidence = EvidenceLines()

    def keep(self, row: int, reason: str, why: str) -> None:
        self.digest[row, self.column[reason]] = True
        self.evidence.add(row, why)

    def keep_many(self, rows: np.ndarray, reason: str, whys: list[str] | DeferredLines) -> None:
        """`keep` for each of `rows` (an index array): `whys[i]` the evidence of rows[i], or
        deferred lines of exactly these rows (formatted when read)."""
        self.digest[rows, self.column[reason]] = True
        if isinstance(whys, DeferredLines):
            self.evidence.add_deferred(whys)
        else:
            self.evidence.add_many(rows, whys)

    def keep_tag(self, tag_row: int, image_row: int, reason: str, why: str) -> None:
        self.tag[tag_row, self.column[reason]] = True
        self.evidence.add(image_row, why)

    def ordered(self, masks: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
        """The distinct reason lists among `masks` rows, and which one each row has."""
        packed = np.packbits(masks, axis=1)
        distinct, which = np.unique(
            np.ascontiguousarray(packed).view(f"V{packed.shape[1]}").ravel(), return_inverse=True
        )
        lists = []
        for value in distinct:
            bits = np.unpackbits(np.frombuffer(value.tobytes(), dtype=np.uint8))
            lists.append([self.names[i] for i in np.flatnonzero(bits[: len(self.names)])])
        return lists, which.ravel()


@dataclass
class _State:
    """What the rules read and decide, row-numbered as the catalog numbers images.

    The rules fill `reasons`; `decide_digests` turns them into `kept`, which the rules after
    it extend. `held` is the indexes whose children have been kept already."""

    inputs: PlanInputs
    config: Config
    registry_host: str
    now: datetime
    images: Catalog
    known: np.ndarray
    reasons: _Reasons
    tag_lookup: _TagLookup
    history: CommitHistory | None
    links: Links
    children: dict[int, list[int]]
    created: np.ndarray
    has_created: np.ndarray
    subjects: dict[int, list[tuple[str, int | None]]]
    kept: np.ndarray
    untag: np.ndarray  # tag rows: the tag goes, its digest stays (see decide_untags)
    werf: dict[str, WerfRepository] = field(default_factory=dict)  # repositories werf wrote
    # per werf image (repository, imageMetadataID): its stage rows and their commits
    werf_links: dict[tuple[str, str], dict[int, set[str]]] = field(default_factory=dict)
    # (werf image, stage row, commit): a keepPolicy reached the stage through that commit
    werf_hits: set[tuple[str, int, str]] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    _candidates: dict[tuple[int, str], set[int]] | None = None

    def policy_candidates(self) -> dict[tuple[int, str], set[int]]:
        """`_policy_candidates`, walked once for the push and the pull rules."""
        if self._candidates is None:
            self._candidates = _policy_candidates(self)
        return self._candidates

    @classmethod
    def start(cls, inputs: PlanInputs, config: Config, registry_host: str, now: datetime) -> _State:
        images = catalog(inputs.images, inputs.tags, inputs.index_edges)
        policies = config.effective_policies()
        history = CommitHistory.from_frame(inputs.commits) if inputs.commits is not None else None
        links = link_images(
            images, CommitIndex(history), config.link.label, config.link.tag_pattern
        )
        werf = werf_repositories(images, config.link.source)
        werf_links = _werf_links(werf, links, CommitIndex(history))
        children: dict[int, list[int]] = defaultdict(list)
        for parent, child in images.edges:
            children[parent].append(child)
        created, has_created = _created_micros(images, children)
        return cls(
            inputs=inputs,
            config=config,
            registry_host=registry_host,
            now=now,
            images=images,
            known=images.known_mask(),
            reasons=_Reasons(len(images), len(images.tag_rows), len(policies)),
            tag_lookup=_TagLookup(images),
            history=history,
            links=links,
            children=children,
            created=created,
            has_created=has_created,
            subjects=_referrers(images, children),
            kept=np.zeros(len(images), dtype=bool),
            untag=np.zeros(len(images.tag_rows), dtype=bool),
            werf=werf,
            werf_links=werf_links,
        )

    def keep_children_of_kept(self, only_new: bool = False) -> bool:
        """Keep every child of a kept index not handled yet, to a fixpoint (indexes nest);
        True when that kept an image that was not kept. With `only_new`, a child already
        kept is left as it is (once referrers are decided, their reasons are their
        subjects')."""
        frontier = [parent for parent in self.children if self.kept[parent]]
        frontier = [parent for parent in frontier if parent not in self.held]
        changed = False
        while frontier:
            parent = frontier.pop()
            self.held.add(parent)
            for child in self.children[parent]:
                if self.known[child] and not (only_new and self.kept[child]):
                    why = f"index-child: in kept index {self.images.digests[parent]}"
                    self.reasons.keep(child, "index-child", why)
                    if not self.kept[child]:
                        self.kept[child] = changed = True
                        if child in self.children:
                            frontier.append(child)
        return changed


def _werf_links(
    werf: dict[str, WerfRepository], links: Links, commits: CommitIndex
) -> dict[tuple[str, str], dict[int, set[str]]]:
    """Per werf image, its stage rows and the commits its meta records publish them at.

    In a repository werf wrote that is a stage's only link: its labels and tags are not
    read (werf's `werf-project-repo-commit` names the commit a stage was built at, not the
    commits that use it) and its records are linked to nothing. `links` gets the union, so
    a stage linked at all is not unlinked; a commit Git does not know is recorded as such
    (the Git guard counts it)."""
    out: dict[tuple[str, str], dict[int, set[str]]] = {}
    for repository in werf.values():
        for row in repository.rows():
            links.commits.pop(row, None)
            links.unknown.pop(row, None)
        for row, published in repository.published.items():
            for image, commit in sorted(published):
                sha, known = commits.resolve(commit)
                if sha is None:
                    continue
                out.setdefault((repository.name, image), {}).setdefault(row, set()).add(sha)
                links.commits.setdefault(row, set()).add(sha)
                if not known:
                    links.unknown.setdefault(row, set()).add(commit)
    return out


def _build_plan(inputs: PlanInputs, config: Config, registry_host: str, now: datetime) -> Plan:
    state = _State.start(inputs, config, registry_host, now)
    for rule in RULES:
        rule(state)
    return Plan(
        table=_table(state),
        evidence=Evidence(state.reasons.evidence, state.images),
        unknown_commits={
            state.images.key(row): values for row, values in state.links.unknown.items()
        },
        notes=[
            f"{repository.summary()}: decided as werf decides (link.source: {config.link.source})"
            for _, repository in sorted(state.werf.items())
        ],
        werf=sorted(state.werf),
    )


def keep_images_in_use(state: _State) -> None:
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


def keep_git_policies(state: _State) -> None:
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


def refuse_unlinked_delete_on_werf(state: _State) -> None:
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


def keep_pushed_recently(state: _State) -> None:
    """pushed-recently: in a repository a cleanup.registryPolicies entry matches (the first
    that does), of the images with a tag matching its `tags`, the `mostRecentlyPushedCount`
    newest and those pushed within `pushedWithin` (`_PushTimes`: the vendor's push time
    where it reports one, else `created`; an index is as new as its newest child; an image
    with no time is ranked last and is never "within"). Where the vendor's push times were
    read and its listing lacks an image, that image is kept: not known to be old."""
    cleanup = state.config.cleanup
    candidates = state.policy_candidates()
    if not candidates:
        return
    times = _PushTimes.of(state)
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
                    f"pushed-recently: {where}: {_ordinal(rank)} most recently pushed in "
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


@dataclass
class _PushTimes:
    """Per image row, the time the push rules rank by (epoch us, `known`): the vendor's push
    time where the registry stage read one (`PlanInputs.pushed`; `source` names its field),
    else `created`. In a repository whose push times were read, `created` does not count
    (a mirror's images carry their upstream build dates, reproducible builds 1970): an
    image the vendor lists no time for is `unlisted`. An index takes its newest child's
    time when that is newer."""

    micros: np.ndarray
    known: np.ndarray
    unlisted: np.ndarray
    source: np.ndarray  # per row: the vendor's field, "" for `created`

    @classmethod
    def of(cls, state: _State) -> _PushTimes:
        images = state.images
        size = len(images)
        micros, known = _created_column(images)
        source = np.full(size, "", dtype=object)
        covered = np.zeros(size, dtype=bool)
        pushed = state.inputs.pushed
        if pushed is not None and not pushed.empty:
            rows = images.rows_of(pushed)
            found = np.flatnonzero(rows >= 0)
            at = rows[found]
            times = pushed["pushed"]
            covered[at] = True
            known[at] = times.notna().to_numpy()[found]
            micros[at] = times.astype("int64").to_numpy()[found]
            source[at] = pushed["source"].to_numpy(dtype=object)[found]
        for parent, kids in state.children.items():  # in edge order: indexes may nest
            for kid in kids:
                if known[kid] and (not known[parent] or micros[kid] > micros[parent]):
                    micros[parent], known[parent] = micros[kid], True
                    source[parent] = source[kid]
        return cls(micros, known, covered & ~known, source)

    def by(self, row: int) -> str:
        """The evidence's ", by <the vendor's field>" where `row` ranks by the vendor's time."""
        return f", by {self.source[row]}" if self.source[row] else ""


def _policy_candidates(state: _State) -> dict[tuple[int, str], set[int]]:
    """(registry policy index, repository) -> the image rows with a tag matching that
    policy's `tags`, in the repositories where it is the first policy to match."""
    cleanup, images = state.config.cleanup, state.images
    candidates: dict[tuple[int, str], set[int]] = defaultdict(set)
    if not cleanup.registry_policies:
        return candidates
    patterns = [[name_pattern(t) for t in p.tags] for p in cleanup.registry_policies]
    policy_of = {r: cleanup.registry_policy_of(r) for r in set(images.tag_repositories)}
    names = zip(images.tag_rows, images.tag_names, images.tag_repositories, strict=True)
    for image, tag, repository in names:
        index = policy_of[repository]
        matches = index is not None and any(p.fullmatch(tag) for p in patterns[index])
        if matches and index is not None and state.known[image]:
            candidates[(index, repository)].add(image)
    return candidates


def keep_pulled_within(state: _State) -> None:
    """pulled-within: pulled in the window of cleanup.keepImagesPulledWithin (every image)
    or of a registry policy's pulledWithin, or among its mostRecentlyPulledCount most
    recently pulled. An index counts as pulled when it or a child was. Fail closed: where
    the receivers' uptime does not cover the whole window (or there are no records), "not
    pulled" is unknown and the image is kept, the evidence naming the gap."""
    cleanup, config = state.config.cleanup, state.config
    if not config.uses_pulls:
        return
    view = _PullView.of(state, state.inputs.pulls)
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


@dataclass
class _PullView:
    """The pull records in image rows: last pull (epoch us, -1 never) and the record it is
    from (row of `records.last`, -1 none) per image row, an index taking its newest
    child's. The pulls per day are looked up only for evidence lines (`pulls_since`)."""

    images: Catalog  # not the whole state: the deferred evidence lines keep this alive
    records: PullRecords | None
    last: np.ndarray
    record: np.ndarray
    _days: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _counts: dict[int, np.ndarray] = field(default_factory=dict)  # day start -> per row

    @classmethod
    def of(cls, state: _State, pulls: PullRecords | None) -> _PullView:
        size = len(state.images)
        last = np.full(size, -1, dtype=np.int64)
        record = np.full(size, -1, dtype=np.int64)
        if pulls is None:
            return cls(state.images, None, last, record)
        rows = state.images.rows_of(pulls.last)
        micros = pulls.last["last_pull"].astype("int64").to_numpy()
        found = np.flatnonzero(rows >= 0)
        last[rows[found]] = micros[found]
        record[rows[found]] = found
        for parent, kids in state.children.items():  # in edge order: indexes may nest
            for kid in kids:
                if last[kid] > last[parent]:
                    last[parent], record[parent] = last[kid], record[kid]
        return cls(state.images, pulls, last, record)

    def pulls_since(self, day_start_us: int, rows: np.ndarray) -> np.ndarray:
        """The pulls of each image row of `rows` on the record days from `day_start_us`."""
        if self._days is None:
            days = self.records.days if self.records is not None else None
            if days is None or days.empty:
                empty = np.zeros(0, dtype=np.int64)
                self._days = (empty, empty, empty)
            else:
                day_rows = self.images.rows_of(days)
                keep = day_rows >= 0
                self._days = (
                    day_rows[keep],
                    days["day"].astype("int64").to_numpy()[keep],
                    days["pulls"].to_numpy()[keep],
                )
        counts = self._counts.get(day_start_us)
        if counts is None:  # once per window, however many lines are read one at a time
            day_rows, day_micros, day_pulls = self._days
            recent = day_micros >= day_start_us
            counts = np.bincount(
                day_rows[recent], weights=day_pulls[recent], minlength=len(self.last)
            ).astype(np.int64)
            self._counts[day_start_us] = counts
        return np.asarray(counts[rows], dtype=np.int64)

    def agents(self, rows: np.ndarray) -> list[str]:
        """The user agent of the last pull of each image row ("" for none known)."""
        if self.records is None:
            return [""] * len(rows)
        listed = self.records.last["user_agents"].to_numpy()
        return [
            str(listed[at][0]) if at >= 0 and len(listed[at]) else ""
            for at in self.record[rows].tolist()
        ]

    def keep_in_window(
        self, state: _State, where: str, window: timedelta, candidates: np.ndarray
    ) -> None:
        since = state.now - window
        since_us = to_micros(since)
        label = f"{where} {format_duration(window)}"
        pulled = np.flatnonzero(candidates & (self.last >= since_us))
        day_start = to_micros(datetime(since.year, since.month, since.day, tzinfo=since.tzinfo))

        def lines(at: np.ndarray) -> list[str]:  # formatted when read (explain, a report)
            rows = pulled[at]
            whens = np.datetime_as_string(self.last[rows].astype("datetime64[us]"), unit="m")
            return [
                f"pulled-within: last pulled {when[:10]} {when[11:]} UTC"
                f"{' by ' + agent if agent else ''}, {count} pulls in the window ({label})"
                for when, agent, count in zip(
                    whens.tolist(),
                    self.agents(rows),
                    self.pulls_since(day_start, rows).tolist(),
                    strict=True,
                )
            ]

        deferred = DeferredLines(pulled, lines, "pulled-within: last pulled ")
        state.reasons.keep_many(pulled, "pulled-within", deferred)
        gaps = self.records.gaps(since, state.now) if self.records else [(since, state.now)]
        if not gaps:
            return
        start, end = gaps[0]
        why = (
            f"pulled-within: pull records do not cover the window ({label}): nothing "
            f"recorded {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC; kept until they do"
        )
        unpulled = np.flatnonzero(candidates & (self.last < since_us))
        state.reasons.keep_many(unpulled, "pulled-within", [why] * len(unpulled))

    def keep_most_recent(
        self, state: _State, where: str, count: int, candidates: np.ndarray
    ) -> None:
        if self.records is None:  # no records at all: which are the most recent is unknown
            for image in np.flatnonzero(candidates).tolist():
                state.reasons.keep(
                    image, "pulled-within", f"pulled-within: no pull records ({where}); kept"
                )
            return
        pulled = np.flatnonzero(candidates & (self.last >= 0))
        ranked = pulled[np.lexsort((pulled, -self.last[pulled]))][:count]
        for rank, image in enumerate(ranked.tolist(), start=1):
            when = from_micros(int(self.last[image]))
            state.reasons.keep(
                image,
                "pulled-within",
                f"pulled-within: {where}: {_ordinal(rank)} most recently pulled "
                f"(last {when:%Y-%m-%d %H:%M} UTC, mostRecentlyPulledCount {count})",
            )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def keep_listed(state: _State) -> None:
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


def keep_restored(state: _State) -> None:
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


def keep_matching_tags(state: _State) -> None:
    """keep-tag: a tag matching cleanup.keepTags (anchored)."""
    patterns = [name_pattern(p) for p in state.config.cleanup.keep_tags]
    if not patterns:
        return
    images = state.images
    for tag_row, (image, tag) in enumerate(zip(images.tag_rows, images.tag_names, strict=True)):
        if any(p.fullmatch(tag) for p in patterns):
            why = f"keep-tag: tag {tag} matches cleanup.keepTags"
            state.reasons.keep_tag(tag_row, image, "keep-tag", why)


def keep_built_recently(state: _State) -> None:
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


def keep_unlinked(state: _State) -> None:
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


def decide_digests(state: _State) -> None:
    """A digest is kept when any reason so far names it or one of its tags."""
    tag_rows = np.array(state.images.tag_rows, dtype=np.int64)
    state.kept = np.asarray(state.reasons.digest.any(axis=1))
    state.kept[tag_rows[state.reasons.tag.any(axis=1)]] = True


def keep_index_children(state: _State) -> None:
    """index-child: every manifest a kept index lists (a surviving index never names a
    deleted manifest)."""
    state.keep_children_of_kept()


def keep_werf_stage_graph(state: _State) -> None:
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


def keep_werf_records(state: _State) -> None:
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


def decide_referrers(state: _State) -> None:
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


def keep_protected(state: _State) -> None:
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


def keep_unreadable(state: _State) -> None:
    """unreadable: a manifest or config regsweep cannot parse is kept, whatever else says
    (older saved inputs have no error column)."""
    frame = state.images.images
    if "error" not in frame.columns:
        return
    errors = frame["error"].tolist()
    for image in np.flatnonzero(frame["error"].to_numpy(dtype=bool)).tolist():
        state.reasons.keep(image, "unreadable", f"unreadable: {errors[image]}")
        state.kept[image] = True


def decide_untags(state: _State) -> None:
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


RULES: tuple[Callable[[_State], None], ...] = (
    refuse_unlinked_delete_on_werf,
    keep_images_in_use,
    keep_pulled_within,
    keep_git_policies,
    keep_pushed_recently,
    keep_listed,
    keep_restored,
    keep_matching_tags,
    keep_built_recently,
    keep_unlinked,
    keep_protected,
    decide_digests,
    keep_index_children,
    keep_werf_stage_graph,
    keep_werf_records,
    decide_referrers,
    keep_unreadable,
    decide_untags,
)
"""The plan, top to bottom: keep rules first, then the decisions that follow from them."""


class _TagLookup:
    """(repository, tag) -> row of the tags frame, built on first use."""

    def __init__(self, images: Catalog) -> None:
        self._images = images
        self._rows: dict[tuple[str, str], int] | None = None

    def row(self, key: tuple[str, str]) -> int | None:
        if self._rows is None:
            names = zip(self._images.tag_repositories, self._images.tag_names, strict=True)
            self._rows = {name: row for row, name in enumerate(names)}
        return self._rows.get(key)

    def image(self, key: tuple[str, str]) -> int | None:
        row = self.row(key)
        return None if row is None else self._images.tag_rows[row]


def _created_column(images: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Per image row, its own `created` in epoch microseconds and whether it is known (none
    for rows the registry stage did not read)."""
    created = np.zeros(len(images), dtype=np.int64)
    has = np.zeros(len(images), dtype=bool)
    column = images.images["created"]
    has[: images.known] = column.notna().to_numpy()
    created[: images.known] = column.astype("int64").to_numpy()
    return created, has


def _created_micros(
    images: Catalog, children: dict[int, list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per image row, `created` in epoch microseconds and whether it is known; an index
    takes its newest child's time when that is newer (in edge order: indexes may nest)."""
    created, has = _created_column(images)
    for parent, kids in children.items():
        times = [int(created[k]) for k in kids if has[k]]
        if times and (not has[parent] or max(times) > created[parent]):
            created[parent] = max(times)
            has[parent] = True
    return created, has


def _referrers(
    images: Catalog, children: dict[int, list[int]]
) -> dict[int, list[tuple[str, int | None]]]:
    """Map each referrer row to its subjects' digests and rows (None when the registry has
    no such manifest); a manifest may refer to several (a signature tag moved onto another).
    Referrers: an OCI `subject`, a `sha256-<hex>.sig|.att|.sbom` tag, the referrers fallback
    index tagged `sha256-<hex>` and every manifest that index lists (`children`: the
    plan's parent row -> child rows)."""
    subjects: dict[int, list[tuple[str, int | None]]] = defaultdict(list)

    def add(image: int, subject: str, repository: str) -> None:
        link = (subject, images.find((repository, subject)))
        if link not in subjects[image]:
            subjects[image].append(link)

    own = arrow_strings(images.images["subject"])
    for image in np.flatnonzero(pc.not_equal(own, "").to_numpy(zero_copy_only=False)).tolist():
        add(image, own[image].as_py(), images.repositories[image])
    scheme = pc.starts_with(arrow_strings(images.tags["tag"]), "sha256-")
    fallback_indexes: list[int] = []
    for at in np.flatnonzero(scheme.to_numpy(zero_copy_only=False)).tolist():
        subject = referrer_tag_subject(images.tag_names[at])
        if subject is not None:
            image, repository = images.tag_rows[at], images.tag_repositories[at]
            add(image, subject, repository)
            if is_fallback_index_tag(images.tag_names[at]):
                fallback_indexes.append(image)
    for index in fallback_indexes:
        for child in children.get(index, []):
            for subject, _ in subjects[index]:
                add(child, subject, images.repositories[child])
    return dict(subjects)


def _table(state: _State) -> pd.DataFrame:
    """One row per tag and one per untagged known image, sorted for reading. String
    columns are taken and sorted in Arrow, from the registry stage's own columns."""
    images, reasons, kept = state.images, state.reasons, state.kept
    commits, created, has_created = state.links.commits, state.created, state.has_created
    tag_rows = np.array(images.tag_rows, dtype=np.int64)
    tagged = np.zeros(len(images), dtype=bool)
    tagged[tag_rows] = True
    untagged = np.flatnonzero(~tagged[: images.known])
    rows = np.concatenate([tag_rows, untagged])
    masks = reasons.digest[rows]
    masks[: len(tag_rows)] |= reasons.tag
    keep = kept[rows]
    untag = np.zeros(len(rows), dtype=bool)
    untag[: len(tag_rows)] = state.untag
    masks[keep & ~untag & ~masks.any(axis=1), reasons.column["shared-digest"]] = True
    lists, which = reasons.ordered(masks)

    frame, tags = images.images, images.tags
    phantoms = len(images) - images.known
    # Per catalog row, one array each: Arrow's take concatenates a chunked column first
    # (a copy more: a quarter of a gigabyte of fresh memory at a million rows)
    repositories = _by_row(frame["repository"], images.repositories[images.known :])
    digests = _by_row(frame["digest"], images.digests[images.known :])
    tag_names = arrow_strings(tags["tag"])
    if len(untagged):
        tag_names = pa.concat_arrays([tag_names, _empty_strings(len(untagged))])
    action = np.where(untag, 2, np.where(keep, 1, 0)).astype(np.int8)  # _ACTIONS' positions
    # Sorted by numbers where it can be: the repository's rank among the repositories and
    # the action's code, then the strings (4x faster than comparing four string columns)
    order = pc.sort_indices(
        pa.table(
            {
                "repository": _ranks(repositories)[rows],
                "action": action,
                "tag": tag_names,
                "digest": pa.chunked_array(
                    [arrow_strings(tags["digest"]), arrow_strings(frame["digest"]).take(untagged)]
                ),
            }
        ),
        sort_keys=[(name, "ascending") for name in ("repository", "action", "tag", "digest")],
    ).to_numpy()
    rows, which = rows[order], which[order]
    micros = pd.array(created[rows], dtype="Int64")
    micros[~has_created[rows]] = pd.NA
    reason = pa.array([names[0] if names else "no-policy" for names in lists], pa.large_string())
    table = {
        "repository": _strings(repositories.take(rows)),
        "digest": _strings(digests.take(rows)),
        "tag": _strings(tag_names.take(order)),
        "media_type": _strings(_by_row(frame["media_type"], [""] * phantoms).take(rows)),
        "created": pd.to_datetime(micros, unit="us", utc=True).astype(PLAN_COLUMNS["created"]),
    }
    table["commits"] = pd.Series([sorted(commits.get(r, ())) for r in rows.tolist()], dtype=object)
    table["action"] = _strings(_ACTIONS.take(action[order]))
    table["reason"] = _strings(reason.take(which))
    table["reasons"] = pd.Series([list(lists[w]) for w in which.tolist()], dtype=object)
    return pd.DataFrame(table)


_ACTIONS = pa.array(["delete", "keep", "untag"], pa.large_string())
"""The plan's actions in their sort order (alphabetical), by code."""


def _by_row(column: pd.Series, phantoms: list[str]) -> pa.Array:
    """A string column of the images frame per catalog row: the frame's values, then
    `phantoms`' for the rows only a tag or an index edge names."""
    values = arrow_strings(column)
    return pa.concat_arrays([values, pa.array(phantoms, pa.large_string())]) if phantoms else values


def _ranks(values: pa.Array) -> np.ndarray:
    """Per value, the rank of its distinct value in Arrow's string order."""
    encoded = pc.dictionary_encode(values)
    rank = np.empty(len(encoded.dictionary), dtype=np.int64)
    rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(len(rank))
    return np.asarray(rank[encoded.indices.to_numpy(zero_copy_only=False)], dtype=np.int64)


def _empty_strings(count: int) -> pa.Array:
    return pa.array(np.full(count, ""), type=pa.large_string())


def _strings(values: pa.Array) -> pd.Series:
    return pd.Series(pd.array(values, dtype="str"))
