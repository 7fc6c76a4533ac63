"""Errors of the delete stage::

DeletionError            base
├── DeletionRefused      a safety guard stopped the run before any DELETE
│                        (maxDeleteFraction, deletion disabled on the registry)
├── DeletionIncomplete   some deletions failed; the ledger and results say which
├── RestoreError         a restore cannot be done completely, so nothing was restored
└── LedgerError          the file is not a ledger, or a line of it is damaged or edited:
                         nothing is restored (exit 2, like any bad input)
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


class LedgerError(DeletionError):
    """A ledger that cannot be trusted; the message names the file and the line."""
