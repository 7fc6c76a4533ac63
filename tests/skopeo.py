"""skopeo, a registry client nobody on this project wrote, as the judge of what we kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile


def skopeo_tags(url: str, repository: str) -> list[str]:
    """The tags skopeo lists in `repository` (none when the repository is gone)."""
    host = url.split("://", 1)[1]
    done = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", f"docker://{host}/{repository}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        if "unknown" in done.stderr.lower() or "not found" in done.stderr.lower():
            return []
        raise AssertionError(f"skopeo list-tags {repository}: {done.stderr}")
    return sorted(json.loads(done.stdout).get("Tags") or [])


def skopeo_copy_all(url: str, reference: str) -> subprocess.CompletedProcess[str]:
    """`skopeo copy --all docker://HOST/REFERENCE dir:...`: every platform and blob."""
    host = url.split("://", 1)[1]
    target = tempfile.mkdtemp(prefix="skopeo-")
    try:
        return subprocess.run(
            [
                "skopeo",
                "copy",
                "--all",
                "--src-tls-verify=false",
                f"docker://{host}/{reference}",
                f"dir:{target}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(target, ignore_errors=True)


def assert_every_tag_pulls(url: str, repositories: list[str]) -> dict[str, list[str]]:
    """Every tag skopeo lists in `repositories` copies completely (children, blobs); return
    the tags per repository."""
    tags = {repository: skopeo_tags(url, repository) for repository in repositories}
    for repository, names in tags.items():
        for tag in names:
            done = skopeo_copy_all(url, f"{repository}:{tag}")
            assert done.returncode == 0, f"{repository}:{tag} does not pull: {done.stderr}"
    return tags
