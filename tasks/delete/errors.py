"""Errors of the delete stage::

DeletionError            base
├── DeletionRefused      a safety guard stopped the run before any DELETE
│                        (maxDeleteFraction, deletion disabled on the registry)
├── DeletionIncomplete   some deletions failed; the ledger and results say which
└── RestoreError         a restore cannot be done completely, so nothing was restored
"""

from __future__ import annotations


class DeletionError(Exception):
    """Base class of delete-stage errors."""


class DeletionRefused(DeletionError):
    """A guard refused the deletion; nothing was deleted in the refused scope."""


class DeletionIncomplete(DeletionError):
    """Some deletions failed."""


class RestoreError(DeletionError):
    """Restore is impossible without leaving a partial result."""
