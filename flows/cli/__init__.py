"""The `regsweep` command line (thin: parse arguments, call stages or the flow, print): the
application in `app`, a module per command, the printing in `render`.

Imports are made where a command needs them: `--help`, `--version` and a configuration
error come back before pandas, pydantic or Prefect are loaded.
"""

from __future__ import annotations

import importlib

from flows.cli.app import app, main

# Each module registers its command with `app`, in the order `--help` lists them.
COMMANDS = ("plan", "run", "explain", "restore", "history", "check", "verify", "repair")
for _command in (*COMMANDS, "pulls", "config", "demo"):
    importlib.import_module(f"flows.cli.{_command}")

__all__ = ["app", "main"]
