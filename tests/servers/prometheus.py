"""Debian's Prometheus Pushgateway and Prometheus (`prometheus-pushgateway`, `prometheus`;
`make system-packages` installs them), each a process on a free loopback port: the judges of
the metrics a run pushes and the pull receiver serves. Prometheus scrapes its targets every
second, keeping the pushed `job` and grouping labels (`honor_labels`), as Prometheus'
documentation says to for a Pushgateway."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Self

import httpx

from flows.demo.registry_server import free_port


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: `make system-packages` installs it")
    return found


class _Process:
    name = ""
    ready_path = "/-/ready"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{self.name}.log").open("wb")
        self._process = subprocess.Popen(
            [_binary(self.name), *self.arguments()], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        log_text = (self.root / f"{self.name}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.name} did not start: {log_text}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Pushgateway(_Process):
    name = "prometheus-pushgateway"

    def arguments(self) -> list[str]:
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: every
        # test's pushes would live on into the next run. Memory only, as upstream's default.
        return [f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file="]

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text


class Prometheus(_Process):
    """Scrapes each of `targets` (job name -> host:port) every second."""

    name = "prometheus"

    def __init__(self, root: Path, targets: dict[str, str]) -> None:
        super().__init__(root)
        self.targets = targets

    def arguments(self) -> list[str]:
        config = self.root / "prometheus.yml"
        jobs = "".join(
            f"  - job_name: {job}\n    honor_labels: true\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
            for job, target in self.targets.items()
        )
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n" + jobs
        )
        return [
            f"--config.file={config}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` evaluates to now (each: metric labels, value)."""
        answer = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        body = answer.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
        """`query(promql)` once it returns something (a scrape or two away)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.query(promql)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)
