"""The demo: a chat page served by the package, streaming a scripted run in the format of your choice.

Run it with ``assistant-stream-ce demo`` (or ``python -m assistant_stream_ce demo``).
"""

from .app import create_app

__all__ = ["create_app"]
