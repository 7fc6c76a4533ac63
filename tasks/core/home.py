"""Where regsweep keeps its own files: $REGSWEEP_HOME, default ~/.regsweep."""

from __future__ import annotations

import os
from pathlib import Path


def regsweep_home() -> Path:
    """The directory for run directories and caches."""
    return Path(os.environ.get("REGSWEEP_HOME", "~/.regsweep")).expanduser()
