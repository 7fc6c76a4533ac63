"""Start and stop Debian's CNCF Distribution registry (`docker-registry`) on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BINARY = "docker-registry"


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalRegistry:
    """A registry process storing under `root`; `url` is set once started."""

    root: Path
    port: int = 0
    htpasswd: Path | None = None
    extra_config: str = ""
    deletes: bool = True  # storage.delete.enabled
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config_text(self) -> str:
        auth = ""
        if self.htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: regsweep\n    path: {self.htpasswd}\n"
        return (
            "version: 0.1\n"
            "log: {level: warn, accesslog: {disabled: true}}\n"
            "storage:\n"
            f"  filesystem: {{rootdirectory: {self.root / 'data'}}}\n"
            f"  delete: {{enabled: {'true' if self.deletes else 'false'}}}\n"
            "  cache: {blobdescriptor: inmemory}\n"
            f"http: {{addr: '127.0.0.1:{self.port}'}}\n" + auth + self.extra_config
        )

    def start(self, timeout: float = 20.0) -> LocalRegistry:
        """Start the registry and wait until `/v2/` answers."""
        if shutil.which(BINARY) is None:
            raise RuntimeError(
                f"{BINARY} is not installed: run `apt-get install docker-registry` "
                "(make test and make demo do it for you)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config = self.root / "config.yml"
        config.write_text(self.config_text())
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{BINARY} exited with {self.process.returncode}; "
                    f"see {self.root / 'registry.log'}"
                )
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{BINARY} did not answer on {self.url} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL the registry process, as a crash or an OOM kill would end it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop the registry process (idempotent)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
