"""A hostile registry cannot reach our files or our credentials (issue #14, items 1, 2, 5).

The real registry serves `evil` and `other`; a proxy in front of it rewrites its answers for
`evil` (or the catalog) as an attacker would. Each attack must leave every file outside the
cache as it was, mark only the attacked scope incomplete (with the reason), and scan `other`
completely.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.core import mediatypes
from tasks.core.config import parse_config
from tasks.registry.client import Credentials, RegistryClient
from tasks.registry.errors import InvalidResponse
from tasks.registry.frames import RegistryExtraction
from tasks.registry.retry import RetryPolicy
from tasks.registry.stage import read_registry
from tests.servers.http_proxy import Answer, RegistryProxy

OLD = datetime.now(UTC) - timedelta(days=30)


def traversals(name: str) -> list[str]:
    """Digest-shaped strings (`sha256:` + 64 characters) that climb 1..5 levels from the
    cache's `sha256/<2 chars>/` directory to `name`."""
    out = []
    for depth in range(1, 6):
        tail = "../" * depth + name
        out.append("sha256:" + tail.rjust(64, "/"))
    return out


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """$REGSWEEP_HOME-like directory: the cache inside, and files an attacker wants gone."""
    root = tmp_path / "home"
    (root / "cache").mkdir(parents=True)
    (root / "runs").mkdir()
    (root / "ledger.jsonl").write_text('{"state": "pending"}\n')
    (root / "runs" / "ledger.jsonl").write_text('{"state": "done"}\n')
    (tmp_path / "regsweep.yaml").write_text("registry: {url: x}\n")
    (tmp_path / "victim").write_text("precious\n")
    return root


def snapshot(tmp_path: Path, home: Path) -> dict[str, bytes]:
    """Every file under tmp_path except the cache's own entries."""
    cache = home / "cache"
    return {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in tmp_path.rglob("*")
        if p.is_file() and cache not in p.parents and "registry" not in p.parts
    }


@pytest.fixture
def two_repositories(registry: LocalRegistry) -> Iterator[LocalRegistry]:
    async def go() -> None:
        async with RegistryClient(registry.url) as client:
            await push_image(client, "evil", ["t1"], created=OLD, seed="e")
            await push_image(client, "other", ["o1"], created=OLD, seed="o")

    asyncio.run(go())
    yield registry


def scan(url: str, home: Path, repositories: list[str] | None = None) -> RegistryExtraction:
    config = parse_config(
        {
            "registry": {
                "url": url,
                "repositories": repositories or ["evil", "other"],
                "cache": str(home / "cache"),
            },
            "cleanup": {"disableGitHistoryBasedPolicy": True},
        }
    )
    return read_registry(config)


def manifest_answer(body: dict[str, object], media_type: str) -> Answer:
    raw = json.dumps(body).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return 200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, raw


def assert_contained(extraction: RegistryExtraction, attacked: set[str]) -> None:
    status = extraction.status.set_index("repository")
    for repository in attacked:
        assert not status.loc[repository, "complete"], status
        assert "refusing" in status.loc[repository, "error"], status.loc[repository, "error"]
    assert status.loc["other", "complete"]
    tags = extraction.tags
    assert list(tags.loc[tags["repository"] == "other", "tag"]) == ["o1"]


Attack = Callable[[str], Callable[[str, str, dict[str, str]], Answer | None]]


def head_digest(evil: str) -> Callable[[str, str, dict[str, str]], Answer | None]:
    def answer(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if method == "HEAD" and path.startswith("/v2/evil/manifests/"):
            return 200, {"Docker-Content-Digest": evil, "Content-Length": "0"}, b""
        return None

    return answer


def config_descriptor(evil: str) -> Callable[[str, str, dict[str, str]], Answer | None]:
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_MANIFEST,
        "config": {"mediaType": mediatypes.DOCKER_CONFIG, "digest": evil, "size": 2},
        "layers": [],
    }

    def answer(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if path.startswith("/v2/evil/manifests/"):
            return manifest_answer(body, mediatypes.DOCKER_MANIFEST)
        return None

    return answer


def index_child(evil: str) -> Callable[[str, str, dict[str, str]], Answer | None]:
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [{"mediaType": mediatypes.OCI_MANIFEST, "digest": evil, "size": 2}],
    }

    def answer(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if path.startswith("/v2/evil/manifests/"):
            return manifest_answer(body, mediatypes.OCI_INDEX)
        return None

    return answer


def referrers_answer(evil: str) -> Callable[[str, str, dict[str, str]], Answer | None]:
    body = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [{"digest": evil}]}

    def answer(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if path.startswith("/v2/evil/referrers/"):
            raw = json.dumps(body).encode()
            return 200, {"Content-Type": mediatypes.OCI_INDEX}, raw
        return None

    return answer


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize(
    "attack",
    [head_digest, config_descriptor, index_child, referrers_answer],
    ids=["head-digest-header", "config-descriptor", "index-child", "referrers-answer"],
)
def test_a_digest_chosen_by_the_registry_never_touches_a_file_outside_the_cache(
    tmp_path: Path, home: Path, two_repositories: LocalRegistry, attack: Attack, warm: bool
) -> None:
    """Item 1: a `sha256:` + 64 characters containing `../`, in every place a digest comes
    from. The cache used to open that path and unlink it when the hash did not match."""
    before = snapshot(tmp_path, home)
    with RegistryProxy(two_repositories.url) as proxy:
        if warm:  # a first, honest scan fills the cache: the next scans are warm (HEAD)
            assert scan(proxy.url, home).status["complete"].all()
        for target in ("ledger.jsonl", "victim", "regsweep.yaml", "runs/ledger.jsonl"):
            for evil in traversals(target):
                proxy.intercept = attack(evil)
                extraction = scan(proxy.url, home)
                if attack is head_digest and not warm:
                    continue  # a cold scan GETs and hashes the body: the header is not used
                assert_contained(extraction, {"evil"})
        paths = [e.path for e in proxy.exchanges]
    assert snapshot(tmp_path, home) == before
    assert not any("/../" in p or p.endswith("/..") for p in paths), paths


@pytest.mark.parametrize(
    "bad",
    ["../../etc", "a/../other", "bad\r\nname", "x" * 10_000, "%2e%2e/etc", "Upper/case"],
    ids=["dotdot", "dotdot-inside", "crlf", "10k", "encoded-dots", "upper-case"],
)
def test_a_bad_catalog_name_is_refused_and_other_repositories_are_scanned(
    home: Path, two_repositories: LocalRegistry, bad: str
) -> None:
    """Item 5: names from the catalog are checked against the distribution grammar before
    any URL is built from them (httpx would collapse `a/../other` into `other`)."""

    def catalog(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if path.startswith("/v2/_catalog"):
            raw = json.dumps({"repositories": [bad, "other"]}).encode()
            return 200, {"Content-Type": "application/json"}, raw
        return None

    with RegistryProxy(two_repositories.url) as proxy:
        proxy.intercept = catalog
        extraction = scan(proxy.url, home, ["*"])
        paths = [e.path for e in proxy.exchanges]
    status = extraction.status.set_index("repository")
    assert not status.loc[bad, "complete"]
    assert "refusing repository name" in status.loc[bad, "error"]
    assert status.loc["other", "complete"]
    assert not any("etc" in p or ".." in p or "%2e" in p for p in paths), paths
    assert sum(p.startswith("/v2/other/tags/list") for p in paths) == 1  # not scanned twice


def test_a_bad_tag_marks_only_its_repository_incomplete(
    home: Path, two_repositories: LocalRegistry
) -> None:
    """Item 5: one CR/LF in one tag used to abort every repository with a traceback."""

    def tags(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if path.startswith("/v2/evil/tags/list"):
            raw = json.dumps({"name": "evil", "tags": ["t1", "bad\r\nX-Injected: 1"]}).encode()
            return 200, {"Content-Type": "application/json"}, raw
        return None

    with RegistryProxy(two_repositories.url) as proxy:
        proxy.intercept = tags
        extraction = scan(proxy.url, home)
    assert_contained(extraction, {"evil"})


# -- item 2: where the password may go --------------------------------------------------


@pytest.mark.parametrize(
    ("registry_url", "realm", "allowed"),
    [
        ("https://reg.test", "https://auth.test/token", True),
        ("http://reg.test:5000", "http://reg.test:5000/token", True),
        ("https://reg.test", "http://reg.test/token", False),  # downgraded
        ("https://reg.test", "http://evil.test/token", False),
        ("http://reg.test:5000", "http://reg.test:5001/token", False),  # another origin
        ("http://reg.test:5000", "http://evil.test/token", False),
        ("https://reg.test", "ftp://reg.test/token", False),
        ("https://reg.test", "/token", False),
    ],
    ids=[
        "https",
        "http-own-origin",
        "downgrade",
        "http-elsewhere",
        "http-other-port",
        "http-registry-http-elsewhere",
        "ftp",
        "relative",
    ],
)
def test_credentials_go_only_to_a_trusted_token_realm(
    registry_url: str, realm: str, allowed: bool
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"token": "t", "expires_in": 300})
        if request.headers.get("Authorization") == "Bearer t":
            return httpx.Response(200, json={"repositories": []})
        challenge = f'Bearer realm="{realm}",service="reg",scope="registry:catalog:*"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    async def go() -> None:
        async with RegistryClient(
            registry_url,
            credentials=Credentials("ci", "s3cret"),
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(max_retries=0),
        ) as client:
            await client.request("GET", "/v2/_catalog", scope="registry:catalog:*")

    if allowed:
        asyncio.run(go())
        assert any(r.url.path.endswith("/token") for r in seen)
    else:
        with pytest.raises(InvalidResponse, match="refusing to send the registry credentials"):
            asyncio.run(go())
        assert not any(r.url.path.endswith("/token") for r in seen)
        assert not any("Basic" in r.headers.get("Authorization", "") for r in seen)


def test_the_cache_alone_refuses_every_digest_that_is_not_64_hex(tmp_path: Path) -> None:
    """The cache is the second line: even a digest that slipped past the edge never becomes
    a path outside its root (get would unlink a file whose hash did not match)."""
    from tasks.registry.cache import ContentCache

    root = tmp_path / "home" / "cache"
    victims = [tmp_path / "home" / "ledger.jsonl", tmp_path / "victim"]
    for victim in victims:
        victim.parent.mkdir(parents=True, exist_ok=True)
        victim.write_text("precious\n")
    cache = ContentCache(root)
    honest = b'{"schemaVersion": 2}'
    cache.put("sha256:" + hashlib.sha256(honest).hexdigest(), honest)  # a used cache
    cache.close()
    for name in ("ledger.jsonl", "victim"):
        for evil in [*traversals(name), "sha256:" + "A" * 64, "sha512:" + "a" * 64]:
            assert cache.get(evil) is None
            cache.put(evil, b"precious\n")
    cache.close()
    assert all(v.exists() and v.read_text() == "precious\n" for v in victims)
    assert len([p for p in root.rglob("*") if p.is_file()]) == 1  # the honest entry only
