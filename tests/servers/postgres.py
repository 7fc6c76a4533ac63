"""A throwaway PostgreSQL server (Debian's `postgresql` package, which `make test` installs)
in a temporary directory, on a free port, trusting local connections; run as the
`postgres` user when we are root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from flows.demo.registry_server import free_port


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"{name} not found: `make system-packages` installs postgresql")
    return found


class Postgres:
    """`start()` it; `url` then connects as the `postgres` superuser over TCP."""

    def __init__(self) -> None:
        # Its own directory under /tmp: pytest's are private to root, and the server runs
        # as `postgres`.
        self.root = Path(tempfile.mkdtemp(prefix="regsweep-postgres-"))
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        # Output to a file, not a pipe: the server inherits it and would hold a pipe open.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        with (self.root / "commands.log").open("ab") as log:
            subprocess.run([*prefix, *command], check=True, stdout=log, stderr=log, timeout=120)

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        (self.root / "commands.log").touch()
        if os.geteuid() == 0:
            shutil.chown(self.root / "commands.log", "postgres", "postgres")
        data = str(self.root / "data")
        self._run(_binary("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _binary("pg_ctl"),
            "-D",
            data,
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        try:
            self._run(_binary("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
