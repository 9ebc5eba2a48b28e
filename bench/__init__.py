"""Benchmarks of the workbench against bare `isaaclab train` (never part of the test suite)."""
