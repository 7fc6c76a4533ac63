"""What `regsweep plan` imports before its scan, and the background import of pandas.

A warm scan of a few thousand tags takes as long as importing pandas and pyarrow, so the
CLI starts the scan first and imports them on another thread (tasks.core.preload); the
Kubernetes client and SQLAlchemy are imported only by the stages that use them. Each check
runs in a fresh interpreter: this one has imported everything already.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.demo.images import push_image
from flows.demo.registry_server import LocalRegistry
from tasks.registry.client import RegistryClient

HEAVY = ("pandas", "pyarrow", "numpy", "sqlalchemy", "kubernetes", "prefect", "pygit2")


def _fresh(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_cli_and_the_scan_modules_import_none_of_the_heavy_libraries() -> None:
    loaded = _fresh(
        "import json, sys\n"
        "import flows.cli, flows.pipeline, tasks.registry.stage, tasks.core.config\n"
        f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))"
    )
    assert loaded == {"loaded": []}


def test_a_plan_imports_pandas_beside_its_scan_and_unused_stages_not_at_all(
    tmp_path: Path,
) -> None:
    with LocalRegistry(tmp_path) as registry:

        async def push() -> None:
            async with RegistryClient(registry.url) as client:
                await push_image(client, "app", ["v1"], created=datetime(2026, 1, 1, tzinfo=UTC))

        asyncio.run(push())
        config = tmp_path / "regsweep.yaml"
        config.write_text(
            f"registry: {{url: '{registry.url}', cache: '{tmp_path / 'cache'}'}}\n"
            "kubernetes: {enabled: false}\ncleanup: {disableGitHistoryBasedPolicy: true}\n"
        )
        seen = _fresh(
            "import json, sys, threading\n"
            "import tasks.registry.stage as stage\n"
            "scan = stage.read_registry\n"
            "seen = {}\n"
            "def spy(*args):\n"
            "    seen['threads'] = [t.name for t in threading.enumerate()]\n"
            "    return scan(*args)\n"
            "stage.read_registry = spy\n"
            "from datetime import UTC, datetime\n"
            "from flows.pipeline import compute_plan, local_stages\n"
            "from tasks.core.config import load_config\n"
            f"planned = compute_plan(load_config({str(config)!r}), datetime.now(UTC), "
            "local_stages())\n"
            "seen['rows'] = len(planned.plan.table)\n"
            f"seen['loaded'] = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "print(json.dumps(seen))"
        )
    assert seen["rows"] == 1
    # the scan began with the import of pandas started on its own thread, not done before
    assert "preload" in seen["threads"]  # type: ignore[operator]
    assert not {"sqlalchemy", "kubernetes", "prefect"} & set(seen["loaded"])  # type: ignore[arg-type]
    assert {"pandas", "pyarrow"} <= set(seen["loaded"])  # type: ignore[arg-type]


def test_a_failed_background_import_is_raised_where_the_module_is_needed() -> None:
    result = _fresh(
        "import json\n"
        "from tasks.core import preload\n"
        "preload.start(('no_such_module_for_regsweep',))\n"
        "try:\n"
        "    preload.wait()\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(json.dumps({'raised': exc.name}))\n"
    )
    assert result == {"raised": "no_such_module_for_regsweep"}


ALLOCATED = (
    "import json, pyarrow as pa, pandas as pd\n"
    "import tasks.core.frames\n"
    "pools = {'system': pa.system_memory_pool(), 'mimalloc': pa.mimalloc_memory_pool()}\n"
    "before = {name: pool.bytes_allocated() for name, pool in pools.items()}\n"
    "s = pd.Series([str(i) * 20 for i in range(100000)], dtype='str').str.upper()\n"
    "grown = [name for name, pool in pools.items() if pool.bytes_allocated() > before[name]]\n"
    "print(json.dumps({'pool': pa.default_memory_pool().backend_name, 'grown': grown}))"
)


def test_frames_are_allocated_by_the_system_allocator_not_mimallocs_huge_pages() -> None:
    # mimalloc's 2 MB pages, zeroed on first touch, were a third of a large plan's time
    assert _fresh(ALLOCATED) == {"pool": "system", "grown": ["system"]}


def test_an_allocator_the_user_chose_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    assert _fresh(ALLOCATED) == {"pool": "mimalloc", "grown": ["mimalloc"]}
