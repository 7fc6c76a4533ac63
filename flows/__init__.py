"""Prefect flows and the `regsweep` command line."""
