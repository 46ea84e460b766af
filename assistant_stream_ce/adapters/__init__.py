"""Streams from elsewhere into a run: LangGraph events and model-provider SDK streams.

One module per framework or provider SDK, each an optional extra.
"""
