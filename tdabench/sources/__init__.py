"""Benchmark sources: GPTDynamics copies, the built-in bank, synthetic benchmarks, and the split rule."""
