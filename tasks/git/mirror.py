"""`git.url`: a bare mirror in a cache directory, created on first use and fetched every run.

The mirror maps the remote's branches to `refs/heads/*` and its tags to `refs/tags/*`, and
every fetch prunes what the remote deleted, so a deleted branch frees its images exactly as
with a fetched clone. A fetch that fails raises `FetchFailed`: the run stops before deletion
rather than judge images against a stale or partial history.

Credentials, tried in this order when the remote asks for them:
- HTTP(S): `REGSWEEP_GIT_USERNAME` (default ``git``) with `REGSWEEP_GIT_PASSWORD`, or the
  value of the Prefect Secret block named by `git.passwordSecret`;
- SSH: the private key file `REGSWEEP_GIT_SSH_KEY` (its ``.pub`` beside it when present,
  passphrase `REGSWEEP_GIT_SSH_PASSPHRASE`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType, FetchPrune

from tasks.git.errors import FetchFailed

log = logging.getLogger(__name__)

REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


@dataclass(frozen=True)
class GitCredentials:
    """What to answer when the remote asks; every field may be empty."""

    username: str = ""
    password: str = ""
    ssh_key: str = ""
    ssh_passphrase: str = ""

    @classmethod
    def from_environment(cls, password: str = "") -> GitCredentials:
        """Read the REGSWEEP_GIT_* variables; `password` (from a Secret block) comes second."""
        return cls(
            username=os.environ.get("REGSWEEP_GIT_USERNAME", ""),
            password=os.environ.get("REGSWEEP_GIT_PASSWORD", "") or password,
            ssh_key=os.environ.get("REGSWEEP_GIT_SSH_KEY", ""),
            ssh_passphrase=os.environ.get("REGSWEEP_GIT_SSH_PASSPHRASE", ""),
        )


class _Callbacks(pygit2.RemoteCallbacks):
    """Answer a credential request once; libgit2 asks again when the answer was refused."""

    def __init__(self, url: str, credentials: GitCredentials) -> None:
        super().__init__()
        self._url = redact(url)
        self._credentials = credentials
        self.asked = 0

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.UserPass | pygit2.Keypair:
        self.asked += 1
        creds = self._credentials
        if self.asked > 1:
            raise FetchFailed(f"git.url {self._url}: the remote refused the credentials")
        user = creds.username or username_from_url or "git"
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and creds.password:
            return pygit2.UserPass(user, creds.password)
        if allowed_types & CredentialType.SSH_KEY and creds.ssh_key:
            key = Path(creds.ssh_key).expanduser()
            public = key.with_name(key.name + ".pub")
            return pygit2.Keypair(
                username_from_url or "git",
                str(public) if public.exists() else None,
                str(key),
                creds.ssh_passphrase,
            )
        raise FetchFailed(
            f"git.url {self._url} asks for credentials: set REGSWEEP_GIT_PASSWORD "
            "(or git.passwordSecret) for HTTP(S), or REGSWEEP_GIT_SSH_KEY for SSH"
        )


def redact(url: str) -> str:
    """`url` without a password in its user part, for messages and logs."""
    return re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url)


def mirror_path(url: str, cache: Path) -> Path:
    """The cache directory for `url`: readable name plus a hash, one per URL."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40] or "repo"
    return cache / f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.git"


def sync_mirror(url: str, cache: Path, credentials: GitCredentials) -> Path:
    """Create or update the bare mirror of `url` under `cache`; return its path."""
    path = mirror_path(url, cache)
    try:
        if (path / "HEAD").exists():
            repo = pygit2.Repository(str(path))
            if repo.remotes["origin"].url != url:
                repo.remotes.set_url("origin", url)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            repo = pygit2.init_repository(str(path), bare=True)
            repo.remotes.create("origin", url, REFSPECS[0])
            repo.remotes.add_fetch("origin", REFSPECS[1])
        callbacks = _Callbacks(url, credentials)
        stats = repo.remotes["origin"].fetch(callbacks=callbacks, prune=FetchPrune.PRUNE)
    except pygit2.GitError as exc:
        raise FetchFailed(f"git.url {redact(url)}: fetch failed: {redact(str(exc))}") from exc
    log.info("git.url %s: fetched %d objects into %s", redact(url), stats.received_objects, path)
    return path
