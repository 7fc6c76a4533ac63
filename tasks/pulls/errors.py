"""Errors of the pull-record stage::

PullsError          pull records cannot be received or read
├── EventError      a notification body that is not a Distribution envelope or a
│                   Harbor PULL_ARTIFACT payload (the service answers 400)
└── StoreError      the database cannot be opened, written or read
"""

from __future__ import annotations


class PullsError(Exception):
    """Base class of the pull-record stage's errors."""


class EventError(PullsError):
    """A notification body we cannot read; nothing of it is written."""


class StoreError(PullsError):
    """The pull-record database failed."""
