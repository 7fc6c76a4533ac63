"""30 nights of a team's life with regsweep (`tests.lifetime`): CI pushes, merges, deleted
branches, weekly releases, deploys and two rollbacks, `run --apply` each night through the
real Prefect flow against the real registry, with a registry killed mid-DELETE, a push during
the delete step and a Pod started after the dry run on chosen nights. Prints each night's
line and the invariants skopeo checked after it; the targets: no invariant broken, and the
registry bounded (most of what was pushed is gone by the last night).

REGSWEEP_BENCH_SMOKE=1 lives one quiet night (what `make test` does, so the script cannot
rot: printed, not judged); tests/delete/test_soak.py lives 6 nights with every fault.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import SMOKE, Results, peak_rss_mib

NIGHTS = 1 if SMOKE else 30
SEED_NOTE = "deterministic: the same nights every run (no randomness in tests.lifetime)"


def main() -> None:
    home = tempfile.mkdtemp(prefix="regsweep-soak-")
    os.environ.setdefault("PREFECT_HOME", str(Path(home) / "prefect"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["REGSWEEP_HOME"] = str(Path(home) / "regsweep")
    os.environ.pop("KUBECONFIG", None)
    from prefect.testing.utilities import prefect_test_harness

    from flows.demo.kube_api import KubeAPIFixture
    from flows.demo.registry_server import LocalRegistry
    from tests.lifetime import Faults, Life, summary

    faults = (
        Faults()
        if SMOKE
        else Faults(
            crash=frozenset({4, 17}),
            push_race=frozenset({9, 23}),
            late_pod=frozenset({12}),
            rollback=frozenset({15, 26}),
        )
    )
    results = Results()
    started = time.perf_counter()
    # A Prefect server given in PREFECT_API_URL records the nights (its UI shows them);
    # else a temporary one for this run
    server = (
        contextlib.nullcontext()
        if os.environ.get("PREFECT_API_URL")
        else prefect_test_harness(server_startup_timeout=120)
    )
    with server, LocalRegistry(Path(home) / "registry") as registry:
        kube = KubeAPIFixture().start()
        life = Life(
            Path(home) / "life",
            registry,
            kube,
            faults,
            feature_days=2 if SMOKE else 3,
            release_every=2 if SMOKE else 7,
        )
        nights = []
        try:
            for n in range(NIGHTS):
                night = life.night(n)
                print(night.line(), flush=True)
                nights.append(night)
        finally:
            life.close()
            kube.stop()
    figures = summary(nights)
    print(f"{NIGHTS} nights in {time.perf_counter() - started:.0f} s ({SEED_NOTE})")
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    results.add("broken_invariants", float(figures["broken"]), "<=", 0)  # type: ignore[arg-type]
    results.add("pushed_images_gone", float(figures["gone_fraction"]), ">=", 0.5)  # type: ignore[arg-type]
    if SMOKE and figures["broken"]:  # a smoke run judges the invariants, not the sizes
        sys.exit(1)
    results.exit()


if __name__ == "__main__":
    main()
