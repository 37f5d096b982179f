"""Benchmarks (`make bench`): measured figures with their same-run baselines, never asserted in tests."""
