"""Benchmarks that measure Comity against a baseline in the same run."""
