"""Errors of the policy stage::

ConfigError        the configuration file is unreadable or invalid; `field` names the path
"""

from __future__ import annotations


class ConfigError(Exception):
    """An invalid configuration. `field` is the dotted path, e.g. `cleanup.keepTags[0]`."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
