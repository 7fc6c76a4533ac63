"""Registry credentials: environment variables, else docker `config.json` (`credHelpers`,
`auths`, `credsStore`), or a Prefect Secret block named in the configuration.

Credentials never go in the configuration file, plans, artifacts or logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from pathlib import Path

from tasks.core.errors import ConfigError
from tasks.core.secrets import secret_value_json
from tasks.registry.client import Credentials
from tasks.registry.errors import CredentialHelperFailed


def load_credentials(host: str) -> Credentials | None:
    """Return credentials for `host`: REGSWEEP_REGISTRY_USERNAME/PASSWORD, else the docker
    config in $DOCKER_CONFIG (default ~/.docker): `credHelpers[host]`, then `auths[host]`,
    then `credsStore`; else None (anonymous)."""
    user = os.environ.get("REGSWEEP_REGISTRY_USERNAME")
    password = os.environ.get("REGSWEEP_REGISTRY_PASSWORD")
    if user and password is not None:
        return Credentials(user, password)
    path = Path(os.environ.get("DOCKER_CONFIG", "~/.docker")).expanduser() / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    keys = (host, f"https://{host}", f"http://{host}")
    helpers = config.get("credHelpers") or {}
    helper = next((helpers[k] for k in keys if isinstance(helpers.get(k), str)), None)
    if helper:
        return _from_helper(helper, host)
    auths = config.get("auths") or {}
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                continue
            return Credentials(user, password)
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, host)
    return None


def _from_helper(name: str, host: str) -> Credentials | None:
    """Ask `docker-credential-<name> get` (the docker credential-helper protocol): the server
    URL on stdin, {"Username", "Secret"} on stdout; "not found" means anonymous."""
    program = f"docker-credential-{name}"
    try:
        done = subprocess.run(
            [program, "get"], input=host, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredentialHelperFailed(
            f"credential helper {program} for {host} failed: {exc}"
        ) from exc
    if done.returncode != 0:
        if "credentials not found" in (done.stdout + done.stderr).lower():
            return None
        raise CredentialHelperFailed(
            f"credential helper {program} for {host} exited {done.returncode}"
        )  # its output may hold secrets: never echoed
    try:
        answer = json.loads(done.stdout)
        return Credentials(str(answer["Username"]), str(answer["Secret"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialHelperFailed(
            f"credential helper {program} answered no credentials"
        ) from exc


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
