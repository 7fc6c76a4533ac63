"""`regsweep explain` of a deleted image says how close each keepPolicy came (tried as a new
user would, it said only "its commits are not among the images any keepPolicy keeps"):
the rank on a branch against what the policy keeps, a window missed by how much, a branch
a policy's limit leaves out, a branch gone from origin. The CLI on the real registry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from flows.cleanup import cleanup
from flows.demo.gitrepo import GitRepoBuilder
from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.registry.client import RegistryClient
from tests.cli import run_cli

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
LABEL = "org.opencontainers.image.revision"


def _explain(config: Path, image: str) -> str:
    done = run_cli("explain", "-c", str(config), image, "--now", NOW.isoformat())
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    return done.stdout


def test_explain_says_which_policy_came_closest(
    prefect_harness: None, registry: LocalRegistry, git_repo: GitRepoBuilder, tmp_path: Path
) -> None:
    main = [git_repo.commit("main", NOW - (4 - i) * DAY) for i in range(4)]
    old = git_repo.commit("feature-old", NOW - 20 * DAY, parents=[main[0]])
    gone = git_repo.commit("feature-gone", NOW - DAY, parents=[main[0]])
    git_repo.push("main", "feature-old", "feature-gone")
    git_repo.delete_remote_branch("feature-gone")

    async def push() -> None:
        async with RegistryClient(registry.url) as client:
            for i, sha in enumerate(main):
                await push_image(
                    client,
                    "app",
                    [f"main-{i}"],
                    created=NOW - 30 * DAY,
                    labels={LABEL: sha},
                    seed=sha,
                )
            for name, sha in (("old", old), ("gone", gone)):
                await push_image(
                    client, "app", [name], created=NOW - 30 * DAY, labels={LABEL: sha}, seed=sha
                )

    asyncio.run(push())
    config = tmp_path / "regsweep.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "registry": {"url": registry.url, "repositories": ["app"], "cache": False},
                "git": {"path": str(git_repo.checkout_path)},
                "kubernetes": {"enabled": False},
                "cleanup": {
                    "keepImagesBuiltWithinLastNHours": 1,
                    "keepPolicies": [
                        {
                            "references": {"branch": "/.*/", "limit": {"in": "168h"}},
                            "imagesPerReference": {"last": 1},
                        },
                        {
                            "references": {"branch": "main"},
                            "imagesPerReference": {"last": 2, "in": "48h", "operator": "Or"},
                        },
                    ],
                },
            }
        )
    )
    third = _explain(config, "app:main-1")
    assert "DELETE" in third
    assert (
        "why not: 3rd newest image on branch main; keeps 2 there or outside the 48h window "
        "by 1 day" in third
    )
    assert "(cleanup.keepPolicies[1])" in third
    stale = _explain(config, "app:old")
    assert (
        "why not: branch feature-old reaches it, but cleanup.keepPolicies[0] does not "
        "select feature-old: older than 168h by 13 days" in stale
    )
    orphan = _explain(config, "app:gone")
    assert "why not: no live branch or tag reaches its commits" in orphan
    assert "deleted from origin" in orphan

    # what explain cannot show says why: outside the scanned repositories, or not there
    outside = run_cli("explain", "-c", str(config), "other/app:v1", "--now", NOW.isoformat())
    assert outside.returncode == 2
    assert "other/app is outside registry.repositories (app)" in " ".join(outside.stderr.split())
    missing = run_cli("explain", "-c", str(config), "app:nope", "--now", NOW.isoformat())
    assert missing.returncode == 2 and "(no such tag or digest)" in missing.stderr

    # A run's list of deletions names, for each, the closest of those lines: explain's first
    dry = cleanup(config_path=str(config), now=NOW.isoformat())
    closest = {row["tags"]: row["closest"] for row in dry.deletions}
    assert set(closest) == {"main-0", "main-1", "old", "gone"}
    for tag, text in (("main-1", third), ("old", stale), ("gone", orphan)):
        first = next(line for line in text.splitlines() if "why not: " in line)
        assert closest[tag] == first.split("why not: ", 1)[1].strip(), (tag, text)
