"""A module path that assistant-stream 0.0.36 ships without public content; importing it keeps working."""
