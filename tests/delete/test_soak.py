"""Several nights of a team's life with regsweep on the real registry and the real Prefect
flow (`tests.lifetime`), with a crash mid-DELETE, a push during the delete step, a Pod
started after the dry run and a Helm rollback in them; skopeo checks the invariants after
every night. 30 nights: benchmarks/soak.py."""

from __future__ import annotations

from pathlib import Path

from flows.demo.kube_api import KubeAPIFixture
from flows.demo.registry_server import LocalRegistry
from tasks.delete.ledger import read_ledger
from tests.lifetime import Faults, Life, summary

NIGHTS = 6
FAULTS = Faults(
    crash=frozenset({2}),
    push_race=frozenset({3}),
    late_pod=frozenset({4}),
    rollback=frozenset({5}),
)


def test_six_nights_with_a_crash_a_race_a_late_pod_and_a_rollback(
    prefect_harness: None, registry: LocalRegistry, kube: KubeAPIFixture, tmp_path: Path
) -> None:
    life = Life(tmp_path / "life", registry, kube, FAULTS, feature_days=2, release_every=2)
    try:
        nights = []
        for n in range(NIGHTS):
            night = life.night(n)
            print(night.line())
            nights.append(night)
    finally:
        life.close()
    assert all(not n.broken for n in nights), [n.line() for n in nights if n.broken]
    figures = summary(nights)
    print(figures)
    assert life.late, "the late Pod happened"
    assert nights[3].outcomes.get("skipped-moved", 0), "the race happened and was seen"
    crash = nights[2]
    print(crash.notes)
    assert any(note.startswith("tag naming nothing") for note in crash.notes), crash.notes
    # The crash's dangling tag was found and repaired, and the metrics said so
    assert crash.dangling["found"] >= 1 and crash.dangling == {
        "found": crash.dangling["found"],
        "repaired": crash.dangling["found"],
    }
    # Every record of the night, its repairs included, is the night's run's.
    assert {r.flow_run_id for r in read_ledger(crash.ledger)} == {crash.run_id}
    assert nights[-1].exit_code == 0
    # Bounded: what is stored stops growing with what is pushed.
    assert nights[-1].manifests < 0.6 * nights[-1].pushed_total, figures
