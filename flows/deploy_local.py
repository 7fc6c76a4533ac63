"""Deploy `deployments/prefect.yaml` to a Prefect server, run it once on a process worker.

`make deploy-local` starts a local Prefect server and the demo's local parts, then calls
`deploy_and_run`; the test suite calls it against its embedded server. The worker, the
deployment and the flow run are all real Prefect: `prefect deploy`, `prefect worker start`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

POOL = "regsweep-process"
DEPLOYMENT = "regsweep-cleanup/nightly-cleanup"
PROJECT = Path(__file__).resolve().parent.parent
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _prefect(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def deploy_and_run(api_url: str, parameters: dict[str, Any], timeout: float = 600) -> Any:
    """Create the process pool, deploy, run the deployment once, work it, wait; return the
    finished flow run (its `state`, `id`, ...)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    env = dict(
        os.environ,
        PREFECT_API_URL=api_url,
        REGSWEEP_PROJECT_DIR=str(PROJECT),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    _prefect("work-pool", "create", POOL, "--type", "process", "--overwrite", env=env)
    _prefect(
        "--no-prompt",
        "deploy",
        "--prefect-file",
        "deployments/prefect.yaml",
        "--name",
        "nightly-cleanup",
        env=env,
    )
    flow_run = cast(FlowRun, run_deployment(DEPLOYMENT, parameters=parameters, timeout=0))
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--run-once"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout
    try:
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                current = client.read_flow_run(flow_run.id)
                if current.state is not None and current.state.type.value in TERMINAL:
                    return current
                time.sleep(1)
        raise TimeoutError(f"flow run {flow_run.id} did not finish within {timeout}s")
    finally:
        if worker.poll() is None:
            worker.terminate()
        output, _ = worker.communicate(timeout=60)
        if os.environ.get("REGSWEEP_SHOW_WORKER"):
            print(output)


def main() -> int:
    """`make deploy-local`: local Prefect server + demo parts, deploy, run once, report."""
    from rich.console import Console

    from flows.demo.kube_api import KubeAPIFixture
    from flows.demo.registry_server import LocalRegistry, free_port
    from flows.demo.scenario import build_scenario, now_for_demo

    console = Console()
    workdir = PROJECT / ".deploy"
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    os.environ.setdefault("REGSWEEP_HOME", str(workdir / "home"))
    os.environ["PREFECT_API_URL"] = api_url  # this process talks to the server it starts
    env = dict(os.environ, PREFECT_HOME=str(workdir / "prefect"))
    for part in ("registry", "scenario"):  # fresh local parts each time, as `make demo`
        shutil.rmtree(workdir / part, ignore_errors=True)
    workdir.mkdir(exist_ok=True)
    server_log = (workdir / "prefect-server.log").open("ab")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    registry = LocalRegistry(workdir / "registry")
    kube = KubeAPIFixture()
    try:
        _wait_healthy(api_url)
        console.print(f"Prefect server {api_url.removesuffix('/api')} (UI), data in {workdir}")
        registry.start()
        now = now_for_demo()
        scenario = build_scenario(workdir / "scenario", registry.url, kube, now)
        kube.start().write_kubeconfig(workdir / "scenario" / "kubeconfig")
        run = deploy_and_run(
            api_url, {"config_path": str(scenario.config_path), "now": now.isoformat()}
        )
        state = run.state.name if run.state else "unknown"
        console.print(f"deployment {DEPLOYMENT} on pool {POOL}: flow run {run.id} {state}")
        return 0 if state == "Completed" else 1
    finally:
        kube.stop()
        registry.stop()
        server.terminate()
        server.wait(timeout=30)


def _wait_healthy(api_url: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"Prefect server at {api_url} not healthy within {timeout}s")


if __name__ == "__main__":
    sys.exit(main())
