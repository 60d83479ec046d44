"""Plain helpers shared by the test fixtures and the benchmarks (no pytest imports)."""
