"""Benchmarks: measured figures for docs/benchmarks.md, run by hand, never by the test suite."""
