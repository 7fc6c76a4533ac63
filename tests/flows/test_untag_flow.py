"""`cleanup.untag` through the flow and the CLI: `regsweep plan` shows the untags, a run
untags (overwrite) or reports why it cannot (api on Distribution 2.8, exit 0), and `regsweep
restore --ledger` alone re-tags."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from flows.cleanup import cleanup
from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.registry.client import RegistryClient
from tests.cli import run_cli
from tests.skopeo import assert_every_tag_pulls, skopeo_tags

OLD = datetime.now(UTC) - timedelta(days=30)


def configure(registry: LocalRegistry, root: Path, untag: str) -> Path:
    async def push() -> None:
        async with RegistryClient(registry.url) as client:
            await push_image(client, "app", ["v1.0.0", "latest", "pr-7"], created=OLD)
            await push_image(client, "app", ["v0.9.0"], created=OLD, seed="old")
            await push_image(client, "app", ["pr-6"], created=OLD, seed="gone")

    asyncio.run(push())
    config = root / "regsweep.yaml"
    document = {
        "registry": {"url": registry.url, "repositories": ["app"], "cache": str(root / "cache")},
        "kubernetes": {"enabled": False},
        "cleanup": {
            "disableGitHistoryBasedPolicy": True,
            "unlinked": "delete",
            "keepTags": ["/v.*/"],
            "untag": untag,
        },
    }
    config.write_text(yaml.safe_dump(document))
    return config


def test_a_run_untags_and_restore_re_tags_from_the_ledger_alone(
    prefect_harness: None, registry: LocalRegistry, tmp_path: Path
) -> None:
    config = configure(registry, tmp_path, "overwrite")
    planned = run_cli("plan", "-c", str(config), "-o", "json")
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    rows = {row["tag"]: row["action"] for row in document["plan"]}
    assert rows == {
        "v1.0.0": "keep",
        "latest": "untag",
        "pr-7": "untag",
        "v0.9.0": "keep",
        "pr-6": "delete",
    }
    [summary] = document["summary"]
    assert (summary["kept"], summary["deleted"], summary["untagged"]) == (2, 1, 2)
    table = run_cli("plan", "-c", str(config))
    assert "untagged" in table.stdout
    explained = run_cli("explain", "-c", str(config), "app:latest")
    assert "  UNTAG (no-policy)" in explained.stdout
    assert "untag: no rule keeps tag latest; the digest stays for v1.0.0" in explained.stdout

    ledger = tmp_path / "ledger.jsonl"
    result = cleanup(config_path=str(config), apply=True, ledger=str(ledger))
    assert result.outcomes == {"untagged": 2, "deleted": 1}
    assert assert_every_tag_pulls(registry.url, ["app"]) == {"app": ["v0.9.0", "v1.0.0"]}

    restored = run_cli("restore", "--ledger", str(ledger))
    assert restored.returncode == 0, restored.stderr
    assert "re-tagged app@" in restored.stdout and "tag latest: restored" in restored.stdout
    assert skopeo_tags(registry.url, "app") == ["latest", "pr-6", "pr-7", "v0.9.0", "v1.0.0"]


def test_api_untag_on_distribution_2_8_keeps_the_tags_and_the_run_succeeds(
    prefect_env: dict[str, str], registry: LocalRegistry, tmp_path: Path
) -> None:
    config = configure(registry, tmp_path, "api")
    result = cleanup(config_path=str(config), apply=True, ledger=str(tmp_path / "l.jsonl"))
    assert result.outcomes == {"skipped-unsupported": 2, "deleted": 1}
    assert not result.problems and not result.refusals
    assert skopeo_tags(registry.url, "app") == ["latest", "pr-7", "v0.9.0", "v1.0.0"]
    ledger = str(tmp_path / "m.jsonl")
    done = run_cli("run", "-c", str(config), "--apply", "--ledger", ledger, env=prefect_env)
    assert done.returncode == 0, done.stderr
    assert "cleanup.untag: overwrite" in done.stdout + done.stderr
