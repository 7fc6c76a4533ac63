"""Durations in werf's (Go's) syntax: `168h`, `30m`, `1h30m`, `90s`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
MAX_HOURS = 100 * 365 * 24  # a century: any window longer is a typo, and timedelta overflows
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> timedelta:
    """Return the timedelta of a Go duration string; raise ValueError naming the bad text."""
    value = text.strip()
    if not value or value == "0":
        if value == "0":
            return timedelta(0)
        raise ValueError("empty duration")
    position = 0
    seconds = 0.0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value):
        raise ValueError(f"{text!r} is not a duration such as 168h, 30m or 1h30m")
    if seconds > MAX_HOURS * 3600:
        raise ValueError(f"{text!r} is longer than {MAX_HOURS}h (a century)")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Return `delta` in the same syntax, e.g. `168h` or `1h30m`."""
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{seconds}s" if seconds or not text else "")
