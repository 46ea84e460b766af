"""Modules kept at the paths of assistant-stream 0.0.36."""
