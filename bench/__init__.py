"""Benchmark suite (`make bench`, `python -m bench --help`): every figure of docs/performance.md comes from here."""
