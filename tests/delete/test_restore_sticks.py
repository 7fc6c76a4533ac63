"""A restore sticks: an image put back with `regsweep restore` is kept by the next runs for
safety.keepRestoredFor (reason `restored`), the command says so and how to keep it for good,
and after the grace period the plan decides it as before. The CLI as a user runs it, on the
real registry."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

from flows.demo.registry_server import LocalRegistry
from tasks.registry.client import RegistryClient
from tests.cli import run_cli
from tests.delete.helpers import NOW, scan_and_delete, setup
from tests.skopeo import skopeo_tags


def _plan(config: Path, env: dict[str, str], now: str) -> dict[str, str]:
    done = run_cli("plan", "-c", str(config), "--output", "json", "--now", now, env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["plan"]
    return {row["tag"]: f"{row['action']} {row['reason']}" for row in rows}


def test_a_restored_image_is_kept_for_the_grace_period_then_decided_again(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    async def push_and_delete() -> None:
        async with RegistryClient(registry.url) as client:
            await setup(client)
            await scan_and_delete(client, {"b"}, tmp_path / "ledger.jsonl")

    env = {**os.environ, "REGSWEEP_HOME": str(tmp_path / "home")}
    asyncio.run(push_and_delete())
    assert "b" not in skopeo_tags(registry.url, "r")
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        f"registry: {{url: '{registry.url}', repositories: [r], cache: false}}\n"
        "kubernetes: {enabled: false}\n"
        "cleanup: {disableGitHistoryBasedPolicy: true, unlinked: delete, keepTags: [keep-me],"
        " keepImagesBuiltWithinLastNHours: 1}\n"
        "safety: {maxDeleteFraction: 1, keepRestoredFor: 72h}\n"
    )
    done = run_cli(
        "restore", "--ledger", str(tmp_path / "ledger.jsonl"), "-c", str(config), env=env
    )
    assert done.returncode == 0, done.stderr
    assert "restored r@sha256:" in done.stdout
    assert "safety.keepRestoredFor (72h) from now" in done.stdout
    assert "cleanup.keepList" in done.stdout
    print(done.stdout)
    assert "b" in skopeo_tags(registry.url, "r")

    tomorrow = (NOW + timedelta(days=1)).isoformat()
    assert _plan(config, env, tomorrow)["b"] == "keep restored"
    assert _plan(config, env, tomorrow)["a"] == "delete no-policy"  # the others as before
    later = (NOW + timedelta(days=4)).isoformat()
    assert _plan(config, env, later)["b"] == "delete no-policy"
    # Another machine's (or another home's) restore does not keep it here.
    elsewhere = {**env, "REGSWEEP_HOME": str(tmp_path / "other")}
    assert _plan(config, elsewhere, tomorrow)["b"] == "delete no-policy"
