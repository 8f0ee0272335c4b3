"""The export benchmark: `python -m bench.export_bench` (see bench/README.md). Not a test, not shipped."""
