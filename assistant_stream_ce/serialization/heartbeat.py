"""Idle keepalives: the tokens each format's clients ignore, and the heartbeat option.

The responses write keepalives themselves (``heartbeat=`` on every response).
:func:`add_keepalive` does the same for a stream of encoded frames that some
other code sends, as assistant-stream 0.0.36's helper of the same name did.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Final

import anyio

from .._run import DEFAULT_GRACE_PERIOD, close_quietly
from ._exchange import resolve_heartbeat
from ._feed import DetachedFeed, Put
from ._frames import SSE_KEEPALIVE

__all__ = [
    "DATA_STREAM_KEEPALIVE_LINE",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "SSE_HEARTBEAT_LINE",
    "HeartbeatOption",
    "add_keepalive",
    "add_sse_heartbeat",
    "resolve_heartbeat_interval",
]

DEFAULT_HEARTBEAT_INTERVAL: Final = 15.0
"""Seconds of silence before a keepalive, when a response's ``heartbeat`` is ``True``."""

SSE_HEARTBEAT_LINE: Final = SSE_KEEPALIVE
"""An SSE comment (``: heartbeat``), which every SSE client skips."""

DATA_STREAM_KEEPALIVE_LINE: Final = "\n"
"""A blank line, which the data stream clients skip."""

HeartbeatOption = float | int | bool | None
"""Seconds between keepalives; ``True`` for the default, ``None``, ``False`` or ``0`` for none."""


def resolve_heartbeat_interval(heartbeat: HeartbeatOption) -> float | None:
    """The keepalive interval in seconds for ``heartbeat``, or None for none.

    A negative, infinite or NaN interval is a ValueError.
    """
    return resolve_heartbeat(heartbeat, DEFAULT_HEARTBEAT_INTERVAL)


def add_keepalive(stream: AsyncIterable[str], interval: float, token: str) -> AsyncIterator[str]:
    """``stream``'s items, with ``token`` in between whenever it has been silent for ``interval`` seconds.

    Each item resets the clock. ``aclose()`` (or a cancelled ``__anext__``)
    cancels a read of ``stream`` that is under way and closes ``stream``.
    """

    async def produce(put: Put[str]) -> None:
        activity = anyio.Event()

        async def tick() -> None:
            nonlocal activity
            while True:
                with anyio.move_on_after(interval) as idle:
                    await activity.wait()
                if idle.cancelled_caught:
                    await put(token)
                else:
                    activity = anyio.Event()

        iterator = aiter(stream)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(tick)
                async for item in iterator:
                    await put(item)
                    activity.set()
                tg.cancel_scope.cancel()
        finally:
            await close_quietly(iterator, DEFAULT_GRACE_PERIOD)

    return DetachedFeed(produce, DEFAULT_GRACE_PERIOD)


def add_sse_heartbeat(stream: AsyncIterable[str], interval: float) -> AsyncIterator[str]:
    """:func:`add_keepalive` with the SSE comment as the token (the name assistant-stream 0.0.35 had)."""
    return add_keepalive(stream, interval, SSE_HEARTBEAT_LINE)
