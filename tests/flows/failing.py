"""A real apply that fails in its delete step, the registry untouched: its ledger's directory
is a file. Remove the returned file and the same run can go on (a retry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cleanup import cleanup
from flows.demo.scenario import Scenario


def apply_failing_at_the_ledger(scenario: Scenario, tmp_path: Path) -> Path:
    """Run `scenario`'s apply with a ledger that cannot be written (OSError); return the
    file standing where the ledger's directory should be."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(OSError):
        cleanup(
            config_path=str(scenario.config_path),
            apply=True,
            now=scenario.now.isoformat(),
            ledger=str(blocker / "ledger.jsonl"),
        )
    return blocker
