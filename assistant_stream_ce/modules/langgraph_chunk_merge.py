"""A module path that assistant-stream 0.0.36 ships without public content; importing it keeps working.

Merging LangGraph message chunks lives in :mod:`assistant_stream_ce.adapters.langgraph`.
"""
