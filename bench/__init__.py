"""symbp's benchmarks: side by side, in one process, reported as ratios."""
