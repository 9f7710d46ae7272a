"""Benchmarks: `make bench` (`python -m bench`); one module per scenario family, a shared runner."""
