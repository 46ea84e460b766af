"""Modules kept at the paths of assistant-stream 0.0.36, for code written against it.

They re-export what lives in the core (``tool_call_controller``) and the adapters
(``adapters.langgraph``); nothing in the package imports them.
"""
