"""Notification bodies -> pull events: what counts, and what is refused (400)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tasks.core import mediatypes
from tasks.pulls.errors import EventError
from tasks.pulls.events import parse_events

NOW = datetime(2026, 11, 30, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def event(**change: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "action": "pull",
        "timestamp": "2026-11-29T10:00:00.123456789Z",
        "target": {
            "repository": "team/app",
            "digest": DIGEST,
            "tag": "v1",
            "mediaType": mediatypes.OCI_MANIFEST,
        },
        "request": {"method": "GET", "useragent": "containerd/1.7", "addr": "10.0.0.1:1"},
    }
    for key, value in change.items():
        if key in ("mediaType", "repository", "digest"):
            base["target"][key] = value
        elif key in ("method", "useragent"):
            base["request"][key] = value
        else:
            base[key] = value
    return base


def test_a_manifest_get_is_a_pull_with_its_time_agent_and_address() -> None:
    [pull] = parse_events({"events": [event()]}, NOW)
    assert (pull.repository, pull.digest, pull.tag) == ("team/app", DIGEST, "v1")
    assert pull.user_agent == "containerd/1.7" and pull.address == "10.0.0.1:1"
    # Distribution writes nanoseconds: read to the microsecond
    assert pull.time == datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"action": "push"},
        {"action": "delete"},
        {"mediaType": mediatypes.OCI_LAYER},  # a blob of a pull already counted
        {"method": "HEAD"},  # a check, not a pull
    ],
    ids=["push", "delete", "blob", "head"],
)
def test_what_is_not_a_manifest_pull_is_ignored(change: dict[str, Any]) -> None:
    assert parse_events({"events": [event(**change)]}, NOW) == []


def test_an_empty_envelope_is_no_pulls() -> None:
    assert parse_events({"events": []}, NOW) == []


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"hello": "world"},
        {"events": [7]},
        {"events": [event(digest="sha256:../../etc/passwd")]},
        {"events": [event(repository="UPPER/../x")]},
        {"type": "PULL_ARTIFACT", "event_data": {}},
    ],
    ids=["list", "other-json", "event-not-object", "bad-digest", "bad-repository", "harbor-bare"],
)
def test_a_body_we_cannot_read_is_refused(body: Any) -> None:
    with pytest.raises(EventError):
        parse_events(body, NOW)


def test_a_missing_timestamp_takes_the_time_received() -> None:
    body = event()
    del body["timestamp"]
    [pull] = parse_events({"events": [body]}, NOW)
    assert pull.time == NOW
