"""`git.url`: mirrored into a cache, fetched (and pruned) every run, failing closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.demo.gitrepo import GitRepoBuilder
from tasks.core.config import parse_config
from tasks.core.errors import ConfigError
from tasks.git.errors import FetchFailed
from tasks.git.mirror import GitCredentials, mirror_path, redact, sync_mirror
from tasks.git.stage import read_git
from tests.servers.git_http import GitHTTPServer

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def _origin(git_repo: GitRepoBuilder) -> str:
    base = git_repo.commit("main", NOW - timedelta(days=3))
    feature = git_repo.commit("feature", NOW - timedelta(days=1), parents=[base])
    git_repo.tag("v1", base, NOW - timedelta(days=2))
    git_repo.push("main", "feature")
    return feature


def _config(url: str, cache: Path, secret: str | None = None) -> dict[str, object]:
    git: dict[str, object] = {"url": url, "cache": str(cache)}
    if secret:
        git["passwordSecret"] = secret
    return {"registry": {"url": "http://127.0.0.1:5000"}, "git": git}


def test_local_url_mirrors_then_fetches_with_prune(
    git_repo: GitRepoBuilder, tmp_path: Path
) -> None:
    feature = _origin(git_repo)
    config = parse_config(_config(str(git_repo.origin_path), tmp_path / "cache"))
    first = read_git(config)
    assert set(zip(first.refs["name"], first.refs["kind"], strict=True)) == {
        ("main", "branch"),
        ("feature", "branch"),
        ("v1", "tag"),
    }
    git_repo.delete_remote_branch("feature")
    head = git_repo.commit("main", NOW)
    git_repo.push("main")
    second = read_git(config)
    assert set(second.refs["name"]) == {"main", "v1"}  # the deleted branch is pruned
    assert head in set(second.commits["sha"])
    assert feature in set(first.commits["sha"]) - set(second.commits["sha"])
    assert mirror_path(str(git_repo.origin_path), tmp_path / "cache").is_dir()


def test_http_with_password_from_environment(
    git_repo: GitRepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _origin(git_repo)
    with GitHTTPServer(git_repo.origin_path.parent, "ci", "s3cret") as server:
        url = f"{server.url}/origin.git"
        config = parse_config(_config(url, tmp_path / "cache"))
        with pytest.raises(FetchFailed, match="asks for credentials"):
            read_git(config)
        monkeypatch.setenv("REGSWEEP_GIT_USERNAME", "ci")
        monkeypatch.setenv("REGSWEEP_GIT_PASSWORD", "wrong")
        with pytest.raises(FetchFailed, match="refused the credentials"):
            read_git(config)
        monkeypatch.setenv("REGSWEEP_GIT_PASSWORD", "s3cret")
        refs = read_git(config).refs
    assert set(refs["name"]) == {"main", "feature", "v1"}
    assert any(r.startswith("POST /origin.git/git-upload-pack") for r in server.requests)


def test_http_with_password_from_prefect_secret_block(
    prefect_harness: None,
    git_repo: GitRepoBuilder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.blocks.system import Secret

    _origin(git_repo)
    Secret(value="t0ken").save("regsweep-test-git", overwrite=True)
    monkeypatch.setenv("REGSWEEP_GIT_USERNAME", "ci")
    with GitHTTPServer(git_repo.origin_path.parent, "ci", "t0ken") as server:
        url = f"{server.url}/origin.git"
        refs = read_git(parse_config(_config(url, tmp_path / "c", "regsweep-test-git"))).refs
        assert set(refs["name"]) == {"main", "feature", "v1"}
        with pytest.raises(ConfigError, match=r"git\.passwordSecret"):
            read_git(parse_config(_config(url, tmp_path / "c", "no-such-block")))


def test_unreachable_url_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="fetch failed"):
        sync_mirror("http://127.0.0.1:9/nothing.git", tmp_path, GitCredentials())


def test_url_only_options_need_git_url() -> None:
    with pytest.raises(ConfigError, match=r"only to git\.url"):
        parse_config({"registry": {"url": "http://r"}, "git": {"path": ".", "cache": "/tmp"}})


def test_password_in_url_never_reaches_messages(tmp_path: Path) -> None:
    url = "http://ci:hunter2@127.0.0.1:9/nothing.git"
    assert redact(url) == "http://ci:***@127.0.0.1:9/nothing.git"
    with pytest.raises(FetchFailed) as info:
        sync_mirror(url, tmp_path, GitCredentials())
    assert "hunter2" not in str(info.value)
