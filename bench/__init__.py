"""Benchmarks; run them as modules (`python -m bench.copy`): as scripts, `copy.py` would
shadow the standard library's `copy` for everything in this folder."""
