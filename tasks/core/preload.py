"""Import the frame libraries in the background while a scan waits on the network.

pandas and pyarrow take about half a second to import, as long as a warm scan of a
few thousand tags. `regsweep plan` starts their import before the scan and the scan
waits for it only when it builds its frames. Whoever starts a preload must not import
these modules on another thread until `wait()` returns: two threads importing one
package can meet half-initialised modules.
"""

from __future__ import annotations

import importlib
import threading

FRAME_LIBRARIES = ("pandas", "pyarrow")

_lock = threading.Lock()
_thread: threading.Thread | None = None
_failure: BaseException | None = None


def start(modules: tuple[str, ...] = FRAME_LIBRARIES) -> None:
    """Begin importing `modules` on a daemon thread (once per process)."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _thread = threading.Thread(target=_import, args=(modules,), name="preload", daemon=True)
        _thread.start()


def wait() -> None:
    """Return once a started preload has finished; an import error surfaces here, where
    the importing code would have met it."""
    thread = _thread
    if thread is not None:
        thread.join()
    if _failure is not None:
        raise _failure


def _import(modules: tuple[str, ...]) -> None:
    global _failure
    try:
        for name in modules:
            importlib.import_module(name)
    except BaseException as exc:  # handed to wait(); a daemon thread has nobody else to tell
        _failure = exc
