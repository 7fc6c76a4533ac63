"""The vendors' own push times (issue #17): where a registry policy has a push rule, the scan
reads them from each backend's API (loopback fakes from the published API descriptions, in
front of the real registry: a manifest's push time there is when the real registry wrote
it), and the plan ranks by them instead of `created`. skopeo judges what is left."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from flows.demo.registry_server import LocalRegistry
from flows.pipeline import compute_plan, local_stages
from flows.report import stage_notes
from tasks.core.config import Config, load_config
from tasks.delete.loader import DeleteRequest
from tasks.delete.stage import run_deletion
from tasks.registry.errors import InvalidResponse
from tasks.registry.vendors import acr, dockerhub, ecr, github, gitlab, harbor
from tasks.registry.vendors.base import vendor_time
from tests.registry.vendors import push, serving, vendor_config
from tests.servers.acr_api import AcrFake
from tests.servers.dockerhub_api import DockerHubFake
from tests.servers.ecr_api import EcrFake
from tests.servers.github_packages import GitHubPackagesFake
from tests.servers.gitlab_api import GitLabFake
from tests.servers.harbor_api import HarborFake
from tests.servers.http_proxy import RegistryProxy
from tests.servers.storage_view import backdate
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

NOW = datetime.now(UTC)
D = timedelta(days=1)
TOKEN = "fake-token-for-the-loopback-fakes"
# tag -> pushed this long ago (every image has the same `created`: it cannot rank them)
AGES = {"a": 50 * D, "b": 1 * D, "c": 40 * D, "d": 2 * D}


@dataclass(frozen=True)
class Backend:
    kind: str
    repository: str
    source: str  # the vendor's field, as the evidence names it
    serve: Callable[
        [LocalRegistry, pytest.MonkeyPatch], AbstractContextManager[tuple[str, RegistryProxy]]
    ]
    page: tuple[object, str]  # (module, its page size constant): a page per item in the test


@contextmanager
def _proxy_only(
    fake: HarborFake | AcrFake,
) -> Iterator[tuple[str, RegistryProxy]]:
    with fake.oci() as oci:
        yield "", oci


def _harbor(
    registry: LocalRegistry, _: pytest.MonkeyPatch
) -> AbstractContextManager[tuple[str, RegistryProxy]]:
    return _proxy_only(HarborFake(registry))


def _acr(
    registry: LocalRegistry, _: pytest.MonkeyPatch
) -> AbstractContextManager[tuple[str, RegistryProxy]]:
    return _proxy_only(AcrFake(registry))


@contextmanager
def _ecr(registry: LocalRegistry, env: pytest.MonkeyPatch) -> Iterator[tuple[str, RegistryProxy]]:
    env.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFORTHELOOPBACK")
    env.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    env.delenv("AWS_PROFILE", raising=False)
    with serving(EcrFake(registry).start()) as (fake, oci):
        yield fake.url, oci


@contextmanager
def _github(
    registry: LocalRegistry, env: pytest.MonkeyPatch
) -> Iterator[tuple[str, RegistryProxy]]:
    env.setenv("REGSWEEP_GITHUB_TOKEN", TOKEN)
    with serving(GitHubPackagesFake(registry, TOKEN, {"acme": "orgs"}).start()) as (fake, oci):
        yield fake.url, oci


@contextmanager
def _gitlab(
    registry: LocalRegistry, env: pytest.MonkeyPatch
) -> Iterator[tuple[str, RegistryProxy]]:
    env.setenv("REGSWEEP_GITLAB_TOKEN", TOKEN)
    with serving(GitLabFake(registry, TOKEN, {"acme/mirror": 7}).start()) as (fake, oci):
        yield f"{fake.url}/api/v4", oci


@contextmanager
def _dockerhub(
    registry: LocalRegistry, env: pytest.MonkeyPatch
) -> Iterator[tuple[str, RegistryProxy]]:
    env.setenv("REGSWEEP_DOCKERHUB_USERNAME", "acme-bot")
    env.setenv("REGSWEEP_DOCKERHUB_TOKEN", TOKEN)
    with serving(DockerHubFake(registry, "acme-bot", TOKEN, {}).start()) as (fake, oci):
        yield fake.url, oci


BACKENDS = [
    Backend("harbor", "library/mirror", "Harbor push_time", _harbor, (harbor, "PAGE_SIZE")),
    Backend("acr", "acme/mirror", "ACR lastUpdateTime", _acr, (acr, "PAGE")),
    Backend("ecr", "acme/mirror", "ECR imagePushedAt", _ecr, (ecr, "IMAGES_PAGE")),
    Backend("github", "acme/mirror", "GitHub created_at", _github, (github, "PER_PAGE")),
    Backend("gitlab", "acme/mirror", "GitLab created_at", _gitlab, (gitlab, "TAG_DETAILS_AT_ONCE")),
    Backend(
        "dockerhub",
        "acme/mirror",
        "Docker Hub tag_last_pushed",
        _dockerhub,
        (dockerhub, "PAGE_SIZE"),
    ),
]


def mirror_config(
    root: Path, oci: RegistryProxy, backend: Backend, api: str, **policy: object
) -> Path:
    path = vendor_config(root, oci, backend.kind, api, [backend.repository], "/none/")
    document = yaml.safe_load(path.read_text())
    rules = policy or {"mostRecentlyPushedCount": 1, "pushedWithin": "72h"}
    document["cleanup"]["registryPolicies"] = [{"repositories": [backend.repository], **rules}]
    document["cleanup"]["disableBuiltWithinLastNHoursPolicy"] = True
    path.write_text(yaml.safe_dump(document))
    return path


def push_mirror(registry: LocalRegistry, repository: str) -> dict[str, str]:
    """One image per tag of AGES (same `created`), each backdated to its push age; tag ->
    digest."""
    digests = push(registry.url, {f"{repository}:{tag}": [tag] for tag in AGES})
    found = {name.rsplit(":", 1)[1]: digest for name, digest in digests.items()}
    for tag, digest in found.items():
        backdate(registry, repository, digest, NOW - AGES[tag])
    return found


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.kind for b in BACKENDS])
def test_the_vendors_push_times_decide_and_skopeo_pulls_what_is_kept(
    backend: Backend, registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the most recently pushed image and those pushed in the last 72 h: by the vendor's
    times that is b (1 day) and d (2 days); a and c go. By `created` (the same for all) it
    would have been one image."""
    monkeypatch.setattr(*backend.page, 1)
    digests = push_mirror(registry, backend.repository)
    with backend.serve(registry, monkeypatch) as (api, oci):
        config = load_config(mirror_config(tmp_path, oci, backend, api))
        planned = compute_plan(config, NOW, local_stages())
        pushed = planned.registry.pushed
        assert set(pushed["digest"]) >= set(digests.values())
        assert set(pushed["source"]) == {backend.source}
        table = planned.plan.table.set_index("tag")
        assert table.loc[["b", "d"], "reason"].tolist() == ["pushed-recently"] * 2
        assert table.loc[["a", "c"], "action"].tolist() == ["delete"] * 2
        assert (
            f"by {backend.source}" in planned.plan.evidence[(backend.repository, digests["b"])][0]
        )
        request = DeleteRequest(apply=True, ledger_path=str(tmp_path / "l.jsonl"), force=True)
        results = run_deletion(config, planned.plan.table, planned.registry, request)
        assert set(results["outcome"]) <= {"deleted", "skipped-unsupported"}
    assert skopeo_tags(registry.url, backend.repository) == ["b", "d"]
    assert_every_tag_pulls(registry.url, [backend.repository])


def test_no_push_rule_asks_no_vendor_for_push_times(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitLab's push times cost a request per tag: with only a pull rule, none is sent."""
    backend = BACKENDS[4]
    push_mirror(registry, backend.repository)
    monkeypatch.setenv("REGSWEEP_GITLAB_TOKEN", TOKEN)
    fake = GitLabFake(registry, TOKEN, {"acme/mirror": 7})
    with serving(fake.start()) as (_, oci):
        path = mirror_config(tmp_path, oci, backend, f"{fake.url}/api/v4", pulledWithin="24h")
        planned = compute_plan(load_config(path), NOW, local_stages())
    assert planned.registry.pushed.empty
    assert not [p for m, p in fake.requests if m == "GET" and "/tags/" in p]


@pytest.mark.off_contract("a bad push_time on purpose: what the code does with one")
def test_a_listing_without_a_time_keeps_the_image_and_a_bad_time_stops_the_repository(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """Harbor lists `a` (50 days) without a push_time: kept, not known to be old. Then a
    push_time that is not a time: the repository is incomplete and nothing is deleted."""
    backend = BACKENDS[0]
    digests = push_mirror(registry, backend.repository)
    fake = HarborFake(registry, push_times={digests["a"]: None})
    with fake.oci() as oci:
        config = load_config(mirror_config(tmp_path, oci, backend, ""))
        planned = compute_plan(config, NOW, local_stages())
        table = planned.plan.table.set_index("tag")
        assert table.loc[["a", "b", "d"], "action"].tolist() == ["keep"] * 3
        assert table.loc["c", "action"] == "delete"
        why = planned.plan.evidence[(backend.repository, digests["a"])][0]
        assert "Harbor push_time lists no push time for it" in why
        assert (
            "push times: Harbor push_time for 1 repository(ies), 4 image(s); 1 not in the "
            "vendor's listing (kept: not known to be old)"
        ) in stage_notes(config, planned.registry)
        fake.push_times[digests["a"]] = "yesterday"
        nothing_deleted(config, tmp_path, backend, "'yesterday' is not an ISO 8601 time")
    assert skopeo_tags(registry.url, backend.repository) == ["a", "b", "c", "d"]


@pytest.mark.off_contract("a created_at that is no time, on purpose: what the code does with one")
def test_a_gitlab_tag_time_that_is_not_one_leaves_the_repository_untouched(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitLab's push times come a request per tag: one bad answer among them makes the
    repository incomplete, and nothing there is deleted."""
    backend = BACKENDS[4]
    push_mirror(registry, backend.repository)
    monkeypatch.setenv("REGSWEEP_GITLAB_TOKEN", TOKEN)
    fake = GitLabFake(registry, TOKEN, {"acme/mirror": 7}, bad_times={"c"})
    with serving(fake.start()) as (_, oci):
        config = load_config(mirror_config(tmp_path, oci, backend, f"{fake.url}/api/v4"))
        why = "acme/mirror:c created_at: 'soon' is not an ISO 8601 time"
        nothing_deleted(config, tmp_path, backend, why)
    assert skopeo_tags(registry.url, backend.repository) == ["a", "b", "c", "d"]


def nothing_deleted(config: Config, root: Path, backend: Backend, why: str) -> None:
    """Plan and apply: the repository is incomplete, reading the vendor's push times, for
    `why`, and no deletion is sent there."""
    planned = compute_plan(config, NOW, local_stages())
    status = planned.registry.status.set_index("repository").loc[backend.repository]
    assert not status["complete"]
    assert f"push times ({backend.source})" in status["error"]
    assert why in status["error"]
    request = DeleteRequest(apply=True, ledger_path=str(root / "l.jsonl"), force=True)
    results = run_deletion(config, planned.plan.table, planned.registry, request)
    assert "deleted" not in set(results["outcome"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-29T10:00:00.000Z", datetime(2026, 11, 29, 10, tzinfo=UTC)),
        ("2026-11-29T10:00:00.1234567Z", datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-29T11:00:00+01:00", datetime(2026, 11, 29, 10, tzinfo=UTC)),
        (datetime(2026, 11, 29, 10, tzinfo=UTC), datetime(2026, 11, 29, 10, tzinfo=UTC)),
        (None, None),
        ("", None),
        ("0001-01-01T00:00:00Z", None),  # Go's zero time: "unset", never "very old"
        ("1970-01-01T00:00:00Z", None),
    ],
)
def test_vendor_times_are_read_or_unset(value: object, expected: datetime | None) -> None:
    assert vendor_time(value, "x") == expected


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2026-11-29T10:00:00", 1764410400, ["t"], "9" * 100_000, ["t"] * 100_000],
    ids=["words", "no-zone", "epoch-number", "list", "huge-string", "huge-list"],
)
def test_a_vendor_time_that_cannot_be_read_is_refused(value: object) -> None:
    """Refused with the value quoted, cut short: a hostile API cannot flood the report."""
    with pytest.raises(InvalidResponse, match=r"^x: ") as raised:
        vendor_time(value, "x")
    assert len(str(raised.value)) < 120
