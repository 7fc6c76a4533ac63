"""Errors every stage may raise (each stage's own errors are in its `errors.py`)::

ConfigError        the configuration (a file, a flag, a Secret block it names) is unreadable
                   or invalid; `field` names the path. Exit 2, nothing done.
"""

from __future__ import annotations


class ConfigError(Exception):
    """An invalid configuration. `field` is the dotted path, e.g. `cleanup.keepTags[0]`."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
