"""`python -m flows.cli`: the `regsweep` command."""

from flows.cli import main

main()
