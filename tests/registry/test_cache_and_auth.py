"""The manifest/config cache, the rate limit, and the auth setups on the real registry:
token auth (a token-server fixture) with credentials from the environment or a Prefect
Secret block."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from flows.cli.render import exit_code
from flows.demo.registry_server import LocalRegistry
from tasks.core.config import parse_config
from tasks.registry.cache import ContentCache
from tasks.registry.client import Credentials, RegistryClient
from tasks.registry.credentials import load_credentials
from tasks.registry.errors import AuthenticationFailed, CredentialHelperFailed
from tasks.registry.extract import scan_registry
from tasks.registry.frames import RegistryExtraction
from tasks.registry.manifest import sha256_digest
from tasks.registry.stage import read_registry
from tests.servers.http_proxy import RegistryProxy
from tests.servers.storage_seed import seed_storage
from tests.servers.token_server import TokenServer


def test_cache_verifies_content_and_drops_corrupt_entries(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    assert cache.is_empty()
    data = b'{"schemaVersion": 2}'
    digest = sha256_digest(data)
    cache.put(digest, b"not the content")  # refused: bytes do not match the digest
    assert cache.get(digest) is None
    cache.put(digest, data)
    assert cache.get(digest) == data  # from memory until written
    cache.close()  # written in the background; close waits for it
    path = tmp_path / "sha256" / digest[7:9] / digest[7:]
    assert path.read_bytes() == data
    assert ContentCache(tmp_path).get(digest) == data
    path.write_bytes(b"torn")
    assert cache.get(digest) is None
    assert not path.exists()


def test_warm_rescan_sends_heads_only_and_reads_the_same(tmp_path: Path) -> None:
    seed_storage(tmp_path / "data", repositories=2, tags=60)
    cache = ContentCache(tmp_path / "cache")
    with LocalRegistry(tmp_path) as registry, RegistryProxy(registry.url) as proxy:

        async def scan() -> RegistryExtraction:
            async with RegistryClient(proxy.url, cache=cache) as client:
                return await scan_registry(client, ["bench/*"])

        cold = asyncio.run(scan())
        cold_gets = proxy.count("GET")
        warm = asyncio.run(scan())
        warm_gets = proxy.count("GET") - cold_gets
    # Warm: the catalog, two tag lists and one referrers-API probe per repository (404 on
    # Distribution 2.8) are the only GETs; every tag is one HEAD.
    assert warm_gets == 1 + 2 + 2
    assert proxy.count("HEAD") == len(warm.tags)
    for name in ("images", "tags", "index_edges", "blobs"):
        a = getattr(cold, name).sort_values(list(getattr(cold, name).columns[:3]))
        b = getattr(warm, name).sort_values(list(getattr(warm, name).columns[:3]))
        assert a.reset_index(drop=True).equals(b.reset_index(drop=True)), name


def test_rate_limit_spaces_requests() -> None:
    starts: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        starts.append(time.monotonic())
        return httpx.Response(200, json={"repositories": []})

    async def go() -> None:
        async with RegistryClient(
            "http://reg.test", transport=httpx.MockTransport(handler), requests_per_second=50
        ) as client:
            await asyncio.gather(*(client.request("GET", "/v2/", scope="") for _ in range(10)))

    began = time.monotonic()
    asyncio.run(go())
    # 50/s: the i-th request cannot start before i x 20 ms. Only lower bounds: a slow
    # machine delays requests further, never earlier.
    for i, start in enumerate(sorted(starts)):
        assert start - began >= i * 0.020 - 0.001, (i, start - began)


NO_GIT = {"cleanup": {"disableGitHistoryBasedPolicy": True}}


@pytest.fixture
def tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenServer]:
    """A token server on https with its own CA, which the clients here then trust."""
    with TokenServer(tmp_path / "cert.pem") as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server


def _token_registry(tmp_path: Path, tokens: TokenServer) -> LocalRegistry:
    seed_storage(tmp_path / "reg" / "data", repositories=1, tags=5)
    return LocalRegistry(tmp_path / "reg", extra_config=tokens.registry_config())


def test_token_auth_with_credentials_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tokens: TokenServer
) -> None:
    with _token_registry(tmp_path, tokens) as reg:
        config = parse_config({"registry": {"url": reg.url, "repositories": ["bench/*"]}} | NO_GIT)
        with pytest.raises(AuthenticationFailed):
            read_registry(config)
        monkeypatch.setenv("REGSWEEP_REGISTRY_USERNAME", tokens.username)
        monkeypatch.setenv("REGSWEEP_REGISTRY_PASSWORD", tokens.password)
        assert len(read_registry(config).tags) == 5
    assert "registry:catalog:*" in tokens.issued


def test_token_auth_with_credentials_from_a_prefect_secret_block(
    prefect_harness: None, tmp_path: Path, tokens: TokenServer
) -> None:
    from prefect.blocks.system import Secret

    with _token_registry(tmp_path, tokens) as reg:
        Secret(value={"username": tokens.username, "password": tokens.password}).save(
            "regsweep-test-registry", overwrite=True
        )
        config = parse_config(
            {
                "registry": {
                    "url": reg.url,
                    "repositories": ["bench/*"],
                    "credentialsSecret": "regsweep-test-registry",
                }
            }
            | NO_GIT
        )
        assert len(read_registry(config).tags) == 5


HELPER = """#!/bin/sh
# A docker credential helper speaking the protocol: `get`, server URL on stdin.
read host
if [ "$host" = "$KNOWN_HOST" ]; then
  printf '{"ServerURL": "%s", "Username": "ci", "Secret": "s3cret"}' "$host"
else
  echo "credentials not found in native keychain"; exit 1
fi
"""


def _helper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, known_host: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("KNOWN_HOST", known_host)


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_token_auth_with_a_docker_credential_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, tokens: TokenServer
) -> None:
    with _token_registry(tmp_path, tokens) as reg:
        _helper_on_path(tmp_path, monkeypatch, reg.host)
        docker = tmp_path / "docker"
        docker.mkdir()
        entry = {reg.host: "fake"} if key == "credHelpers" else "fake"
        (docker / "config.json").write_text(json.dumps({key: entry}))
        monkeypatch.setenv("DOCKER_CONFIG", str(docker))
        assert load_credentials(reg.host) == Credentials("ci", "s3cret")
        assert load_credentials("elsewhere.test") is None  # helper: "not found"
        config = parse_config({"registry": {"url": reg.url, "repositories": ["bench/*"]}} | NO_GIT)
        assert len(read_registry(config).tags) == 5


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo 'secret-ish noise'; exit 7", "exited 7"),
        ("echo 'not json'", "answered no credentials"),
    ],
)
def test_a_failing_credential_helper_is_a_registry_error_not_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, message: str
) -> None:
    """The configuration is fine; the helper is not: exit 3 naming the helper, its output
    (which may hold secrets) never echoed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-broken"
    helper.write_text(f"#!/bin/sh\n{script}\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "broken"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(CredentialHelperFailed, match=message) as raised:
        load_credentials("reg.test")
    assert "noise" not in str(raised.value)
    assert exit_code(raised.value) == 3


def test_credentials_never_reach_logs_or_frames(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tokens: TokenServer,
) -> None:
    with _token_registry(tmp_path, tokens) as reg:
        monkeypatch.setenv("REGSWEEP_REGISTRY_USERNAME", tokens.username)
        monkeypatch.setenv("REGSWEEP_REGISTRY_PASSWORD", tokens.password)
        config = parse_config({"registry": {"url": reg.url, "repositories": ["bench/*"]}} | NO_GIT)
        with caplog.at_level("DEBUG"):
            extraction = read_registry(config)
    frames = "".join(getattr(extraction, f).to_csv() for f in ("images", "tags", "status"))
    secrets = [tokens.password, base64.b64encode(b"ci:s3cret").decode()]
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in frames
    assert caplog.records  # the client did log (requests), just not the secrets


def test_basic_auth_registry_with_htpasswd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bcrypt

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("ci:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    seed_storage(tmp_path / "reg" / "data", repositories=1, tags=5)
    with LocalRegistry(tmp_path / "reg", htpasswd=htpasswd) as registry:
        config = parse_config(
            {"registry": {"url": registry.url, "repositories": ["bench/*"]}} | NO_GIT
        )
        with pytest.raises(AuthenticationFailed):
            read_registry(config)  # no credentials configured
        monkeypatch.setenv("REGSWEEP_REGISTRY_USERNAME", "ci")
        monkeypatch.setenv("REGSWEEP_REGISTRY_PASSWORD", "wrong")
        with pytest.raises(AuthenticationFailed):
            read_registry(config)
        monkeypatch.setenv("REGSWEEP_REGISTRY_PASSWORD", "s3cret")
        assert len(read_registry(config).tags) == 5


def test_credentials_never_reach_a_run_directory_an_artifact_or_a_failure(
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tokens: TokenServer,
) -> None:
    """The whole flow with token auth, applied, then a run that fails (the token service
    refuses a wrong password): neither the run directories (plan, saved inputs, ledger),
    the Prefect artifacts and results, nor the error carries the password or its Basic form."""
    from prefect.client.orchestration import get_client

    from flows.cleanup import cleanup

    with _token_registry(tmp_path, tokens) as reg:
        monkeypatch.setenv("REGSWEEP_REGISTRY_USERNAME", tokens.username)
        monkeypatch.setenv("REGSWEEP_REGISTRY_PASSWORD", tokens.password)
        monkeypatch.setenv("REGSWEEP_HOME", str(tmp_path / "home"))
        config = tmp_path / "regsweep.yaml"
        config.write_text(
            f"registry: {{url: '{reg.url}', repositories: ['bench/*']}}\n"
            "kubernetes: {enabled: false}\n"
            "cleanup: {disableGitHistoryBasedPolicy: true, unlinked: delete,"
            " keepImagesBuiltWithinLastNHours: 0}\nsafety: {maxDeleteFraction: 1}\n"
        )
        result = cleanup(config_path=str(config), apply=True, now=datetime.now(UTC).isoformat())
        assert result.outcomes.get("deleted", 0) >= 5  # every digest, index children too
        monkeypatch.setenv("REGSWEEP_REGISTRY_PASSWORD", "wrong-" + tokens.password)
        with pytest.raises(Exception) as failed:
            cleanup(config_path=str(config), now=(datetime.now(UTC) + timedelta(1)).isoformat())
    secrets = [tokens.password, base64.b64encode(f"ci:{tokens.password}".encode()).decode()]
    written = b"".join(p.read_bytes() for p in (tmp_path / "home").rglob("*") if p.is_file())
    with get_client(sync_client=True) as client:
        artifacts = " ".join(
            f"{a.key} {a.data} {a.description}" for a in client.read_artifacts(limit=200)
        )
    for secret in secrets:
        assert secret.encode() not in written
        assert secret not in artifacts
        assert secret not in repr(result)
        assert secret not in str(failed.value)


def test_the_v2_probe_of_run_and_check_passes_a_token_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tokens: TokenServer
) -> None:
    """`GET /v2/` (run's preflight, check's first line) on a bearer-token registry: a token
    asked for no scope at all (not `scope=`), and the probe answers."""
    from tasks.registry.stage import probe_registry

    monkeypatch.setenv("REGSWEEP_REGISTRY_USERNAME", tokens.username)
    monkeypatch.setenv("REGSWEEP_REGISTRY_PASSWORD", tokens.password)
    with _token_registry(tmp_path, tokens) as reg:
        config = parse_config({"registry": {"url": reg.url, "repositories": ["bench/*"]}} | NO_GIT)
        before = len(tokens.issued)
        probe_registry(config)  # raises unless /v2/ answered 200 with the token
    assert tokens.issued[before:] == []  # the token was asked for no scope, not `scope=`
