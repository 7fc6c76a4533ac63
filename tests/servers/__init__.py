"""Servers the tests and benchmarks start on loopback (not part of the demo or the product)."""
