"""katatest benchmarks."""
