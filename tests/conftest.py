"""Session fixtures that start the real parts: registry, Kubernetes API fixture, Prefect."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="regsweep-tests-")
os.environ.setdefault("PREFECT_HOME", os.path.join(_HOME, "prefect"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ["REGSWEEP_HOME"] = os.path.join(_HOME, "regsweep")
for _name in [n for n in os.environ if n.startswith(("REGSWEEP_GIT_", "REGSWEEP_REGISTRY_"))]:
    del os.environ[_name]  # credentials of the machine running the tests must not leak in
os.environ.pop("KUBECONFIG", None)
os.environ["DOCKER_CONFIG"] = os.path.join(_HOME, "docker")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from flows.demo.gitrepo import GitRepoBuilder  # noqa: E402
from flows.demo.kube_api import KubeAPIFixture  # noqa: E402
from flows.demo.registry_server import LocalRegistry  # noqa: E402


@pytest.fixture(autouse=True)
def held_to_the_descriptions(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every exchange a vendor fake answered in the test, validated against the vendor's
    published API description (tests/contracts): a divergence fails the test. Tests that
    send what the real API never would, on purpose, say so with `off_contract`."""
    from tests.contracts.validate import RECORDED, contract

    RECORDED.clear()
    yield
    recorded, RECORDED[:] = list(RECORDED), []
    if request.node.get_closest_marker("off_contract"):
        return
    found = [line for vendor, ex in recorded for line in contract(vendor).divergences(ex)]
    assert not found, "the vendor fakes diverged from the descriptions:\n" + "\n".join(found)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def prefect_env(prefect_harness: None) -> dict[str, str]:
    """The environment of a CLI child process that records its runs in the session's
    Prefect server: without it, each `regsweep run` would start a temporary server of its
    own (12-15 s). tests/flows/test_operator_cli.py keeps one run that does, from a bare
    shell."""
    from prefect.settings import PREFECT_API_URL

    return dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()))


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A fresh real registry (own storage, free port) per test."""
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture
def kube() -> Iterator[KubeAPIFixture]:
    """A started Kubernetes API fixture; add objects before listing."""
    fixture = KubeAPIFixture().start()
    yield fixture
    fixture.stop()


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepoBuilder:
    return GitRepoBuilder(tmp_path / "git")
