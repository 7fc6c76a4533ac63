"""Credentials kept in a Prefect Secret block, named (never contained) by the configuration."""

from __future__ import annotations

from typing import Any, cast

from tasks.core.errors import ConfigError


def secret_value_json(block_name: str, field: str) -> Any:
    """Return the value of the Prefect Secret block `block_name` (a string or JSON value).

    `field` is the configuration key that named the block, for the error when it is missing.
    """
    from prefect.blocks.system import Secret

    try:
        block = cast(Secret[Any], Secret.load(block_name, _sync=True))  # type: ignore[call-arg]
    except ValueError as exc:  # Prefect: "Unable to find block document named ..."
        raise ConfigError(field, f"no Prefect Secret block named {block_name!r} ({exc})") from exc
    return block.get()


def secret_value(block_name: str, field: str) -> str:
    """Return the value of the Prefect Secret block `block_name` as a string."""
    return str(secret_value_json(block_name, field))
