"""The two libraries behind one small interface, so that every workload runs the same code on both.

A workload gets a :class:`Library` and asks it for a run (``create_run``) or
for the wire bytes of a run (``wire``): the data-stream frames each library
would put on the socket, through the path its own HTTP response takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

Callback = Callable[[Any], Awaitable[None]]


class Wire(Protocol):
    """The frames of one run: ``frame(item)`` of each item ``items`` yields, then ``last()``.

    The consumer reads ``items`` itself, as a response's writer does: no coroutine of the
    harness's own between it and the library (the hand-off floor has none either).
    """

    items: AsyncIterator[Any]

    def frame(self, item: Any) -> bytes: ...

    def last(self) -> bytes: ...


class Library(Protocol):
    key: str
    label: str
    backends: tuple[str, ...]

    def create_run(self, callback: Callback, state: Any = None) -> Any: ...

    def wire(self, callback: Callback, state: Any = None) -> Any: ...


class _OursWire:
    """Chunks of a structured run through a data-stream frame writer, as our response does."""

    def __init__(self, chunks: AsyncIterator[Any], writer: Any) -> None:
        self.items = chunks
        self.frame = writer.encode
        self._writer = writer

    def last(self) -> bytes:
        frame: bytes = self._writer.finish("completed")
        return frame


class Ours:
    key = "ours"
    label = "assistant-stream-ce"
    backends = ("asyncio", "trio")

    def __init__(self) -> None:
        from assistant_stream_ce import create_run
        from assistant_stream_ce.serialization.data_stream import DataStreamEncoder

        self._create_run = create_run
        self._encoder = DataStreamEncoder()

    def create_run(self, callback: Callback, state: Any = None) -> Any:
        return self._create_run(callback, state=state)

    @asynccontextmanager
    async def wire(self, callback: Callback, state: Any = None) -> AsyncIterator[Wire]:
        writer = self._encoder.open()
        async with self._create_run(callback, state=state) as chunks:
            yield _OursWire(aiter(chunks), writer)


class _RefWire:
    """0.0.36's ``encode_stream`` strings, encoded to bytes as its StreamingResponse does."""

    def __init__(self, frames: AsyncIterator[str]) -> None:
        self.items = frames
        self.frame = str.encode

    def last(self) -> bytes:
        return b""


class Ref:
    key = "ref"
    label = "assistant-stream 0.0.36"
    backends = ("asyncio",)

    def __init__(self) -> None:
        from assistant_stream import create_run
        from assistant_stream.serialization.data_stream import DataStreamEncoder

        self._create_run = create_run
        self._encoder = DataStreamEncoder()

    def create_run(self, callback: Callback, state: Any = None) -> Any:
        return self._create_run(callback, state=state)

    @asynccontextmanager
    async def wire(self, callback: Callback, state: Any = None) -> AsyncIterator[Wire]:
        run = self._create_run(callback, state=state)
        frames = self._encoder.encode_stream(run)
        try:
            yield _RefWire(frames)
        finally:
            # encode_stream's loop does not close the run it reads: close both, outer first.
            await frames.aclose()
            await run.aclose()


def load(key: str) -> Library:
    """The library named ``key`` ("ours" or "ref")."""
    if key == "ours":
        return Ours()
    if key == "ref":
        return Ref()
    raise ValueError(f"unknown library {key!r}")
