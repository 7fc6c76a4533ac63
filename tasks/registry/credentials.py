"""Registry credentials: environment variables, else docker `config.json` (`auths`).

Credentials never go in the configuration file, plans, artifacts or logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from tasks.policy.errors import ConfigError
from tasks.registry.client import Credentials
from tasks.secrets import secret_value_json


def load_credentials(host: str) -> Credentials | None:
    """Return credentials for `host`: REGSWEEP_REGISTRY_USERNAME/PASSWORD, else the docker
    config in $DOCKER_CONFIG (default ~/.docker), else None (anonymous)."""
    user = os.environ.get("REGSWEEP_REGISTRY_USERNAME")
    password = os.environ.get("REGSWEEP_REGISTRY_PASSWORD")
    if user and password is not None:
        return Credentials(user, password)
    path = Path(os.environ.get("DOCKER_CONFIG", "~/.docker")).expanduser() / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    auths = config.get("auths") or {}
    for key in (host, f"https://{host}", f"http://{host}"):
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                continue
            return Credentials(user, password)
    return None


def secret_credentials(block_name: str) -> Credentials:
    """Credentials from a Prefect Secret block whose value is {"username": .., "password": ..}
    (named by `registry.credentialsSecret`)."""
    value = secret_value_json(block_name, "registry.credentialsSecret")
    if not (
        isinstance(value, dict)
        and isinstance(value.get("username"), str)
        and isinstance(value.get("password"), str)
    ):
        raise ConfigError(
            "registry.credentialsSecret",
            f'Prefect Secret block {block_name!r} must hold {{"username": ..., "password": ...}}',
        )
    return Credentials(value["username"], value["password"])
