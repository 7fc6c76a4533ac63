"""Someone else's damage, seen through every command a user has: a tag whose revision link
was removed by hand (no ledger of ours explains it). `plan` warns and names it, `check`
fails its `tags` line, `run --apply` leaves it and exits 4 (verify: not whole), `verify`
exits 4, `repair --apply` removes it, and then all of them are quiet. The real registry."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flows.demo.registry_server import LocalRegistry
from tasks.registry.client import RegistryClient
from tests.cli import run_cli
from tests.delete.helpers import setup
from tests.servers.storage_view import _revision_link
from tests.skopeo import skopeo_tags


def test_a_tag_broken_by_hand_through_every_command(
    prefect_env: dict[str, str], registry: LocalRegistry, tmp_path: Path
) -> None:
    async def push() -> dict[str, str]:
        async with RegistryClient(registry.url) as client:
            return await setup(client)

    digests = asyncio.run(push())
    _revision_link(registry, "r", digests["c"]).unlink()
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        f"registry: {{url: '{registry.url}', repositories: [r], cache: false}}\n"
        "kubernetes: {enabled: false}\n"
        "cleanup: {disableGitHistoryBasedPolicy: true}\n"
    )
    env = {**prefect_env, "REGSWEEP_HOME": str(tmp_path / "home")}

    plan = run_cli("plan", "-c", str(config), env=env)
    assert plan.returncode == 0, plan.stderr
    assert "tags naming nothing that no ledger of ours explains: r (c)" in plan.stderr
    check = run_cli("check", "-c", str(config), env=env)
    assert check.returncode == 3
    assert "FAIL tags: tags naming nothing that no ledger of ours explains: r (c)" in check.stdout
    run = run_cli("run", "-c", str(config), "--apply", env=env, timeout=300)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "not whole after the run: dangling r:c" in run.stdout
    assert "c" in skopeo_tags(registry.url, "r")  # left: nothing of ours explains it

    repair = run_cli("repair", "-c", str(config), "--apply", env=env)
    assert repair.returncode == 0, repair.stderr
    assert run_cli("verify", "-c", str(config), env=env).returncode == 0
    assert run_cli("check", "-c", str(config), env=env).returncode == 0
    again = run_cli("plan", "-c", str(config), env=env)
    assert "naming nothing" not in again.stderr
