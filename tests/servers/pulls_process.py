"""`regsweep pulls serve` as a process of its own, as a user starts it (tests, benchmarks)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx


def start_pulls_serve(
    config: Path, port: int, env: dict[str, str], stderr: int | IO[Any] = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """Start the service on 127.0.0.1:`port`; return it once `/healthz` answers 200."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "pulls",
            "serve",
            "-c",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("regsweep pulls serve did not start")
        time.sleep(0.1)
