"""Benchmarks of the real bot driven through the simulator API (run: python -m bench.run)."""
