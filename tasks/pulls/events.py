"""Notification bodies -> pull events. Two formats:

- CNCF Distribution's envelope (`application/vnd.docker.distribution.events.v1+json`,
  also GitLab's registry): `{"events": [{"action": "pull", "timestamp", "target":
  {"repository", "digest", "tag", "mediaType"}, "request": {"useragent", "addr",
  "method"}}]}`;
- Harbor's webhook: `{"type": "PULL_ARTIFACT", "occur_at": <epoch s>, "event_data":
  {"repository": {"repo_full_name"}, "resources": [{"digest", "tag"}]}}`.

Only manifest pulls count: a blob GET is part of a pull already counted, a HEAD is a
check (regsweep's scan sends them), and push or delete events are not pulls. Manifest
pushes are read apart (`parse_pushes`, Harbor's ``PUSH_ARTIFACT``): the delete step asks
for them right before each DELETE and heals a tag pushed onto a digest it deleted
(`tasks.delete.pushes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tasks.core import mediatypes
from tasks.core.reference import is_digest, is_repository_name
from tasks.pulls.errors import EventError

MANIFEST_TYPES = mediatypes.IMAGE_MANIFESTS | mediatypes.INDEXES


@dataclass(frozen=True)
class PullEvent:
    repository: str
    digest: str
    tag: str
    time: datetime
    user_agent: str
    address: str


@dataclass(frozen=True)
class PushEvent:
    """A manifest pushed: `tag` (empty for a push by digest) names `digest` from `time`."""

    repository: str
    digest: str
    tag: str
    time: datetime


def parse_pushes(body: Any, received: datetime) -> list[PushEvent]:
    """The manifest pushes in one notification body (see `parse_events`, which has checked
    the body's form)."""
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        out = []
        for event in body["events"]:
            target = event.get("target") if isinstance(event, dict) else None
            if not isinstance(target, dict) or event.get("action") != "push":
                continue
            if target.get("mediaType") not in MANIFEST_TYPES:
                continue  # a blob: part of a push, not a tag
            pull = _event(
                target.get("repository"),
                target.get("digest"),
                target.get("tag") or "",
                _time(event.get("timestamp"), received),
                "",
                "",
            )
            out.append(PushEvent(pull.repository, pull.digest, pull.tag, pull.time))
        return out
    if isinstance(body, dict) and body.get("type") == "PUSH_ARTIFACT":
        return [
            PushEvent(e.repository, e.digest, e.tag, e.time) for e in _artifacts(body, received)
        ]
    return []


def parse_events(body: Any, received: datetime) -> list[PullEvent]:
    """The manifest pulls in one notification body; raise `EventError` for a body that is
    neither format (or names a repository or digest that is not one)."""
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return [e for e in (_distribution(x, received) for x in body["events"]) if e]
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        return _harbor(body, received)
    raise EventError("not a Distribution notification envelope or a Harbor webhook payload")


def _distribution(event: Any, received: datetime) -> PullEvent | None:
    if not isinstance(event, dict):
        raise EventError("an event is not an object")
    target = event.get("target")
    request = event.get("request") or {}
    if not isinstance(target, dict) or not isinstance(request, dict):
        raise EventError("an event has no target object")
    if event.get("action") != "pull" or target.get("mediaType") not in MANIFEST_TYPES:
        return None
    if str(request.get("method") or "GET").upper() != "GET":
        return None
    return _event(
        target.get("repository"),
        target.get("digest"),
        target.get("tag") or "",
        _time(event.get("timestamp"), received),
        str(request.get("useragent") or ""),
        str(request.get("addr") or ""),
    )


def _harbor(body: dict[str, Any], received: datetime) -> list[PullEvent]:
    return _artifacts(body, received) if body["type"] == "PULL_ARTIFACT" else []


def _artifacts(body: dict[str, Any], received: datetime) -> list[PullEvent]:
    """One event per artifact of a Harbor payload."""
    data = body.get("event_data")
    if not isinstance(data, dict) or not isinstance(data.get("resources"), list):
        raise EventError("a Harbor payload without event_data.resources")
    repository = (data.get("repository") or {}).get("repo_full_name")
    occurred = body.get("occur_at")
    when = datetime.fromtimestamp(occurred, UTC) if isinstance(occurred, int | float) else received
    operator = str(body.get("operator") or "")
    out = []
    for resource in data["resources"]:
        if not isinstance(resource, dict):
            raise EventError("a Harbor resource is not an object")
        out.append(
            _event(
                repository, resource.get("digest"), resource.get("tag") or "", when, operator, ""
            )
        )
    return out


def _event(
    repository: Any, digest: Any, tag: Any, when: datetime, agent: str, address: str
) -> PullEvent:
    if not isinstance(repository, str) or not is_repository_name(repository):
        raise EventError(f"not a repository name: {str(repository)[:100]!r}")
    if not isinstance(digest, str) or not is_digest(digest):
        raise EventError(f"not a digest: {str(digest)[:100]!r}")
    return PullEvent(repository, digest, str(tag)[:128], when, agent[:200], address[:100])


def _time(value: Any, received: datetime) -> datetime:
    """The event's timestamp (RFC 3339), else when it was received."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return received
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return received
