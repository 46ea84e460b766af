"""The module path assistant-stream 0.0.36 had for :class:`StateProxy`."""

from .state import StateProxy

__all__ = ["StateProxy"]
