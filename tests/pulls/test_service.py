"""`regsweep pulls serve` against the real registry (issue #17): Distribution posts its
notifications to the service, skopeo pulls, the record appears; regsweep's own scans, HEADs,
pushes and ignored user agents leave none; a wrong token is 401 and a malformed body 400,
and neither writes anything. SQLite here; the same store on PostgreSQL in test_store.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry, free_port
from tasks.pulls.records import GAP_TOLERANCE, PullRecords
from tasks.pulls.service import REFUSAL_UNCOVERS, make_app
from tasks.pulls.store import DigestPulls, PullStore
from tasks.registry.client import RegistryClient
from tasks.registry.extract import scan_registry
from tests.servers.prometheus import Prometheus
from tests.servers.pulls_process import start_pulls_serve

TOKEN = "pull-token-for-tests"
NOW = datetime.now(UTC)


class Service:
    """The service in a thread, on a free port, as uvicorn runs it."""

    def __init__(
        self, database: str, ignore: list[str] | None = None, heartbeat_seconds: float = 10.0
    ) -> None:
        self.port = free_port()
        self.database = database
        self.app = make_app(PullStore(database), TOKEN, ignore or [], heartbeat_seconds)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Service:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the pulls service did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)

    def records(self) -> list[DigestPulls]:
        async def read() -> list[DigestPulls]:
            store = PullStore(self.database)
            try:
                return await (await store.open()).digests()
            finally:
                await store.close()

        return asyncio.run(read())

    def written(self) -> int:
        return int(self.app.receiver.written)


def notifications(service: Service) -> str:
    return (
        "notifications:\n  endpoints:\n    - name: regsweep\n"
        f"      url: {service.url}/events\n"
        f"      headers: {{Authorization: ['Bearer {TOKEN}']}}\n"
        "      timeout: 2s\n      threshold: 3\n      backoff: 200ms\n"
    )


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Service, LocalRegistry]]:
    with Service(f"sqlite:///{tmp_path / 'pulls.db'}", ignore=["trivy/*"]) as service:
        registry = LocalRegistry(tmp_path / "registry", extra_config=notifications(service))
        registry.start()
        try:
            yield service, registry
        finally:
            registry.stop()


def wait_for(condition: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def skopeo_inspect(registry: LocalRegistry, reference: str) -> None:
    """A pull as a client makes it: skopeo GETs the manifest."""
    subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.host}/{reference}",
        ],
        check=True,
        timeout=60,
        capture_output=True,
    )


def test_a_pull_by_skopeo_is_recorded_and_our_own_scan_is_not(
    parts: tuple[Service, LocalRegistry],
) -> None:
    service, registry = parts

    async def push_and_scan() -> str:
        async with RegistryClient(registry.url) as client:
            digest = await push_image(client, "app", ["v1"], created=NOW)
            await scan_registry(client, ["app"])  # HEADs and GETs, as regsweep
            return digest

    digest = asyncio.run(push_and_scan())
    time.sleep(1.5)  # give the registry time to deliver whatever it would
    assert service.records() == []  # pushes and our own reads are not pulls
    skopeo_inspect(registry, "app:v1")
    wait_for(lambda: service.records())
    [record] = service.records()
    assert (record.repository, record.digest) == ("app", digest)
    assert any(agent.startswith("skopeo") for agent in record.user_agents)
    assert abs((record.last_pull - datetime.now(UTC)).total_seconds()) < 60


def test_wrong_token_is_401_and_malformed_is_400_and_nothing_is_written(
    parts: tuple[Service, LocalRegistry], tmp_path: Path
) -> None:
    service, _ = parts
    digest = "sha256:" + "ab" * 32
    event = {
        "events": [
            {
                "action": "pull",
                "timestamp": NOW.isoformat(),
                "target": {
                    "repository": "app",
                    "digest": digest,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                },
                "request": {"method": "GET", "useragent": "containerd/1.7"},
            }
        ]
    }
    url = f"{service.url}/events"
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(url, json=event).status_code == 401
    assert httpx.post(url, json=event, headers={"Authorization": "Bearer no"}).status_code == 401
    assert httpx.post(url, content=b"{not json", headers=good).status_code == 400
    assert httpx.post(url, json={"hello": 1}, headers=good).status_code == 400
    broken = json.loads(json.dumps(event))
    broken["events"][0]["target"]["digest"] = "sha256:../../etc"
    assert httpx.post(url, json=broken, headers=good).status_code == 400
    time.sleep(0.5)
    assert service.records() == [] and service.written() == 0
    scanner = json.loads(json.dumps(event))
    scanner["events"][0]["request"]["useragent"] = "trivy/0.50"
    answer = httpx.post(url, json=scanner, headers=good)
    assert answer.status_code == 200 and answer.json() == {"pulls": 0, "ignored": 1}
    assert httpx.post(url, json=event, headers=good).json() == {"pulls": 1, "ignored": 0}
    wait_for(lambda: service.records())
    assert [(r.repository, r.digest) for r in service.records()] == [("app", digest)]

    # What it answered, as Prometheus reads it (and promtool judges the exposition)
    scraped = httpx.get(f"{service.url}/metrics")
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=scraped.content, capture_output=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with Prometheus(tmp_path / "prometheus", {"pulls": service.url[7:]}) as prometheus:
        found = prometheus.wait_for("regsweep_pulls_notifications_total")
        answered = {r["metric"]["status"]: float(r["value"][1]) for r in found}
        assert answered == {"200": 2, "400": 3, "401": 2}
        written = prometheus.query("regsweep_pulls_events_written_total")
        assert float(written[0]["value"][1]) == 1
        covered = prometheus.query("time() - regsweep_pulls_covered_timestamp_seconds")
        assert 0 <= float(covered[0]["value"][1]) < 30


def test_harbor_pull_artifact_payload_is_recorded(parts: tuple[Service, LocalRegistry]) -> None:
    service, _ = parts
    digest = "sha256:" + "cd" * 32
    payload = {
        "type": "PULL_ARTIFACT",
        "occur_at": int(NOW.timestamp()),
        "operator": "robot$ci",
        "event_data": {
            "resources": [{"digest": digest, "tag": "v2", "resource_url": "h/lib/web:v2"}],
            "repository": {"name": "web", "namespace": "lib", "repo_full_name": "lib/web"},
        },
    }
    answer = httpx.post(
        f"{service.url}/events", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 200
    wait_for(lambda: service.records())
    [record] = service.records()
    assert (record.repository, record.digest, record.user_agents) == (
        "lib/web",
        digest,
        ["robot$ci"],
    )


def test_a_burst_is_accepted_at_once_and_written_in_batches(
    parts: tuple[Service, LocalRegistry],
) -> None:
    service, _ = parts
    events = [
        {
            "action": "pull",
            "timestamp": NOW.isoformat(),
            "target": {
                "repository": f"burst/r{i % 50}",
                "digest": f"sha256:{i:064x}",
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            },
            "request": {"method": "GET", "useragent": "containerd/1.7"},
        }
        for i in range(5000)
    ]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client() as client:
        for start in range(0, len(events), 100):  # Distribution sends small envelopes
            body = {"events": events[start : start + 100]}
            assert (
                client.post(f"{service.url}/events", json=body, headers=headers).status_code == 200
            )
    wait_for(lambda: service.written() == 5000)
    assert len(service.records()) == 5000


def test_the_cli_serves_until_stopped_and_refuses_to_start_without_a_token(
    tmp_path: Path,
) -> None:
    import os
    import signal

    from tests.cli import run_cli

    database = f"sqlite:///{tmp_path / 'pulls.db'}"
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        "registry: {url: 'http://127.0.0.1:9'}\nkubernetes: {enabled: false}\n"
        f"cleanup: {{disableGitHistoryBasedPolicy: true}}\npulls: {{database: '{database}'}}\n"
    )
    bare = {k: v for k, v in os.environ.items() if k != "REGSWEEP_PULLS_TOKEN"}
    refused = run_cli("pulls", "serve", "-c", str(config), env=bare)
    assert refused.returncode == 2 and "REGSWEEP_PULLS_TOKEN" in refused.stderr
    port = free_port()
    process = start_pulls_serve(
        config, port, bare | {"REGSWEEP_PULLS_TOKEN": TOKEN}, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        event = {
            "events": [
                {
                    "action": "pull",
                    "target": {
                        "repository": "app",
                        "digest": "sha256:" + "ef" * 32,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                    },
                    "request": {"method": "GET", "useragent": "kubelet/1.31"},
                }
            ]
        }
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{url}/events", json=event, headers=headers).status_code == 200
        assert httpx.post(f"{url}/events", json=event).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    # the operator sees the refusal, from where, and what it means for the records
    assert (
        "refused 1 notification(s), the last 401 (a wrong or missing bearer token) from "
        in (err.decode())
        and "do not cover from" in err.decode()
    )

    async def read() -> tuple[int, int]:
        store = await PullStore(database).open()
        try:
            return len(await store.digests()), len(await store.uptime())
        finally:
            await store.close()

    # written on the way out; the uptime too, the interval the refusal ended
    assert asyncio.run(read()) == (1, 1), err.decode()


def pull_event(digest: str) -> dict[str, object]:
    return {
        "events": [
            {
                "action": "pull",
                "target": {
                    "repository": "app",
                    "digest": digest,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                },
                "request": {"method": "GET", "useragent": "containerd/1.7"},
            }
        ]
    }


def read_records(database: str) -> PullRecords:
    async def read() -> PullRecords:
        store = await PullStore(database).open()
        try:
            return await store.records()
        finally:
            await store.close()

    return asyncio.run(read())


def read_uptime(database: str) -> list[tuple[datetime, datetime]]:
    async def read() -> list[tuple[datetime, datetime]]:
        store = PullStore(database)  # not open(): that would create the tables
        try:
            return await store.uptime()
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    """The service on a fresh SQLite file, its heartbeat every 0.1 s."""
    path = tmp_path / "pulls.db"
    with Service(f"sqlite:///{path}", heartbeat_seconds=0.1) as service:
        yield service, path


def post_pull(service: Service, digest_byte: str, token: str | None = TOKEN) -> httpx.Response:
    """A Distribution notification of one pull of `sha256:<digest_byte x 32>`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    event = pull_event("sha256:" + digest_byte * 32)
    return httpx.post(f"{service.url}/events", json=event, headers=headers)


def covered(uptime: list[tuple[datetime, datetime]], since: datetime, until: datetime) -> bool:
    """True when some interval of `uptime` overlaps (since, until)."""
    return any(started < until and seen > since for started, seen in uptime)


@pytest.mark.parametrize("refusal", ["wrong token", "malformed"])
def test_a_refused_notification_is_a_gap_in_the_records_until_one_is_accepted(
    quick: tuple[Service, Path], refusal: str
) -> None:
    """A refused notification may have carried pulls nobody sends again: from
    REFUSAL_UNCOVERS before it (longer than the readers' tolerance, so a receiver up for a
    while leaves a gap the plan sees at once) until a notification is accepted, no interval
    of the uptime covers, and the pulls accepted on either side are recorded."""
    service, _ = quick
    database = service.database
    assert post_pull(service, "a1").is_success
    wait_for(lambda: service.written() == 1)
    time.sleep(0.5)
    [(up_from, up_to)] = read_uptime(database)
    assert up_to > up_from + timedelta(seconds=0.3)  # the heartbeat moves it on
    refused_at = datetime.now(UTC)
    if refusal == "wrong token":
        answer = post_pull(service, "a2", token=None)
    else:
        answer = httpx.post(
            f"{service.url}/events",
            content=b'{"events": [{"action": "pull"',
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert answer.status_code in (400, 401)
    uncovered_from = max(up_from, refused_at - REFUSAL_UNCOVERS)
    # and it stays so while nothing is accepted
    wait_for(lambda: not covered(read_uptime(database), uncovered_from, refused_at), 2)
    time.sleep(0.5)
    accepted_at = datetime.now(UTC)
    assert not covered(read_uptime(database), uncovered_from, accepted_at)
    assert post_pull(service, "a3").is_success
    wait_for(lambda: service.written() == 2)
    time.sleep(0.5)
    records = read_records(database)
    assert not covered(records.uptime, uncovered_from, accepted_at)
    assert covered(records.uptime, accepted_at, datetime.now(UTC) - timedelta(seconds=0.3))
    assert len(records.uptime) == 2
    assert sorted(records.last["digest"]) == ["sha256:" + "a1" * 32, "sha256:" + "a3" * 32]
    assert REFUSAL_UNCOVERS > GAP_TOLERANCE


def test_while_the_store_fails_the_uptime_stops_and_the_pulls_are_written_after(
    quick: tuple[Service, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A pull accepted while the database refuses writes is kept and retried, and the
    uptime does not move past it until it is written: the heartbeat goes on, but the
    records never claim a time whose pulls they do not hold."""
    service, path = quick
    database = service.database
    assert post_pull(service, "b1").is_success
    wait_for(lambda: service.written() == 1)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE pull_days")  # every batch's transaction now fails
    failing_from = datetime.now(UTC)
    assert post_pull(service, "b2").is_success
    time.sleep(1.5)  # fifteen heartbeats, seven retries
    [(_, last_seen)] = read_uptime(database)
    assert last_seen <= failing_from
    assert service.written() == 1
    failures = [r for r in caplog.records if "could not be written" in r.getMessage()]
    assert len(failures) == 1  # logged once per LOG_EVERY_SECONDS, not once a retry
    read_records(database)  # open() creates the missing table again: writes work
    wait_for(lambda: service.written() == 2)
    time.sleep(0.5)
    now = datetime.now(UTC)
    records = read_records(database)
    [(_, last_seen)] = records.uptime
    assert last_seen > failing_from + timedelta(seconds=1)
    assert records.gaps(now - timedelta(seconds=5), now) == []  # nothing was lost
    assert sorted(records.last["digest"]) == ["sha256:" + "b1" * 32, "sha256:" + "b2" * 32]


def test_the_plan_keeps_what_skopeo_pulled_and_fails_closed_on_a_window_it_cannot_see(
    parts: tuple[Service, LocalRegistry],
) -> None:
    """End to end: pulls recorded from the real registry's notifications decide the plan.
    A window the receiver covered: pulled kept, not pulled deleted. A window longer than its
    uptime: nothing is known to be unpulled, so nothing goes."""
    from flows.pipeline import compute_plan, local_stages
    from tasks.core.config import parse_config

    service, registry = parts

    async def push() -> dict[str, str]:
        async with RegistryClient(registry.url) as client:
            return {
                t: await push_image(client, "app", [t], created=NOW, seed=t)
                for t in ("pulled", "unpulled")
            }

    digests = asyncio.run(push())
    skopeo_inspect(registry, "app:pulled")
    wait_for(lambda: service.records())

    def plan(window: str) -> dict[str, str]:
        config = parse_config(
            {
                "registry": {"url": registry.url, "repositories": ["app"]},
                "kubernetes": {"enabled": False},
                "pulls": {"database": service.database},
                "cleanup": {
                    "disableGitHistoryBasedPolicy": True,
                    "disableBuiltWithinLastNHoursPolicy": True,
                    "unlinked": "delete",
                    "keepImagesPulledWithin": window,
                },
            }
        )
        table = compute_plan(config, datetime.now(UTC), local_stages()).plan.table
        return dict(zip(table["digest"], table["action"], strict=True))

    assert plan("20s") == {digests["pulled"]: "keep", digests["unpulled"]: "delete"}
    assert plan("2h") == {digests["pulled"]: "keep", digests["unpulled"]: "keep"}


def test_a_store_that_cannot_be_read_stops_the_plan_with_exit_3(
    parts: tuple[Service, LocalRegistry], tmp_path: Path
) -> None:
    from tests.cli import run_cli

    _, registry = parts
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        f"registry: {{url: '{registry.url}', repositories: [app]}}\n"
        "kubernetes: {enabled: false}\n"
        "pulls: {database: 'postgresql://reader@127.0.0.1:9/pulls'}\n"
        "cleanup: {disableGitHistoryBasedPolicy: true, keepImagesPulledWithin: 720h}\n"
    )
    done = run_cli("plan", "-c", str(config))
    assert done.returncode == 3, done.stderr
    assert "pull records: cannot open" in done.stderr and "Traceback" not in done.stderr


def test_past_max_queued_while_the_store_fails_notifications_are_503_and_a_gap(
    quick: tuple[Service, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pulls waiting for a failing store are bounded: past MAX_QUEUED the service answers
    503 (the sender keeps the notification and retries) and, as for any refusal, stops
    claiming the time around it."""
    import tasks.pulls.service

    monkeypatch.setattr(tasks.pulls.service, "MAX_QUEUED", 1)
    service, path = quick
    database = service.database
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE pull_days")
    assert post_pull(service, "c1").is_success
    wait_for(lambda: service.app.receiver.failed)  # taken off the queue, and failed
    answer = post_pull(service, "c2")
    assert answer.status_code == 503 and b"not recording" in answer.content
    read_records(database)  # the table again: the waiting pull is written
    wait_for(lambda: service.written() == 1)
    assert post_pull(service, "c3").is_success
    wait_for(lambda: service.written() == 2)
    time.sleep(0.3)
    records = read_records(database)
    assert sorted(records.last["digest"]) == ["sha256:" + "c1" * 32, "sha256:" + "c3" * 32]
    assert len(records.uptime) == 2  # the 503 ended the first interval


def test_the_records_never_claim_a_time_whose_pulls_they_lack(
    quick: tuple[Service, Path],
) -> None:
    """The race between a run reading the records and the service writing them: pulls land
    in batches while the plan's read is under way, and what one read returns must hold
    every pull accepted before the latest time its uptime claims (else a pull in that time
    looks like none, inside covered time). A large day table makes the read long enough
    that batches and heartbeats land in the middle of it."""
    service, path = quick
    with closing(sqlite3.connect(path)) as connection:
        connection.executemany(
            "INSERT INTO pull_days VALUES ('old', ?, '2026-01-01', 1)",
            ((f"sha256:{n:064x}",) for n in range(150_000)),
        )
        connection.commit()
    posted: list[tuple[str, datetime]] = []  # digest, a time after its 200
    stop = threading.Event()

    def post() -> None:
        with httpx.Client() as client:
            for n in itertools.count():
                if stop.is_set():
                    return
                digest = f"sha256:{n + 1:064x}"
                answer = client.post(
                    f"{service.url}/events",
                    json=pull_event(digest),
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                assert answer.status_code == 200
                posted.append((digest, datetime.now(UTC)))
                time.sleep(0.002)

    poster = threading.Thread(target=post, daemon=True)
    poster.start()
    try:
        wait_for(lambda: len(posted) > 10)
        for _ in range(3):
            before = list(posted)
            records = read_records(service.database)
            claimed = max(seen for _, seen in records.uptime)
            present = set(records.last["digest"])
            lacking = [d for d, done in before if done < claimed and d not in present]
            assert lacking == [], f"{len(lacking)} pulls inside claimed time are missing"
    finally:
        stop.set()
        poster.join(10)
    assert len(posted) > 100
