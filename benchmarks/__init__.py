"""Benchmarks of assistant-stream-ce beside assistant-stream 0.0.36; run them with ``bash benchmarks/run.sh``."""
