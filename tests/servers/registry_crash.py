"""The crash that leaves tags naming nothing: the registry killed in the middle of a DELETE.

Distribution's DELETE of a manifest removes its revision link first and its tags after. An
intercept for `RegistryProxy` that, when the first DELETE of a manifest it accepts arrives,
does that first step itself, SIGKILLs the registry before the second, and starts it again
`restart_after` seconds later: the client's retry gets 404, the tags stay listed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flows.demo.registry_server import LocalRegistry
from tests.servers.http_proxy import Answer
from tests.servers.storage_view import _revision_link

Intercept = Callable[[str, str, dict[str, str]], Answer | None]


def kill_as_delete_arrives(
    registry: LocalRegistry, digest: str | None = None, restart_after: float = 1.5
) -> Intercept:
    """The intercept: fires once, on the DELETE of `digest` (any manifest when None)."""
    fired = threading.Event()

    def intercept(method: str, path: str, headers: dict[str, str]) -> Answer | None:
        if method != "DELETE" or fired.is_set() or "/manifests/sha256:" not in path:
            return None
        repository, _, target = path.split("/v2/", 1)[1].rpartition("/manifests/")
        if digest is not None and target != digest:
            return None
        fired.set()
        link = _revision_link(registry, repository, target)
        if link.exists():
            link.unlink()
        registry.kill()

        def restart() -> None:
            time.sleep(restart_after)
            registry.start()

        threading.Thread(target=restart, daemon=True).start()
        return None

    return intercept
