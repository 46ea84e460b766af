"""The embedded store: frames in this process's memory, for one instance.

Expiry needs no background task. A stream expires ``ttl_ms`` after its last
write; every call that names it checks that, a reader waiting on it stops
waiting at that moment, and expired streams that nobody names any more are
swept by later calls: by every ``acquire``, or, with ``gc_interval_ms``, by
any call once that interval has passed since the last sweep. Memory is freed
by the traffic that could fill it, and nothing outlives the caller's tasks.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio

from ..errors import DEFAULT_TTL_MS, ResumableStreamError, parse_cursor, validate_stream_id
from ..types import CancellationSignal, ResumableStreamEntry, ResumableStreamRole, ResumableStreamStatus

__all__ = ["InMemoryResumableStreamStore", "create_in_memory_resumable_stream_store"]


@dataclass
class _Stream:
    ttl_ms: int
    expires_at: float
    frames: list[bytes] = field(default_factory=list)
    status: Literal["streaming", "done", "error"] = "streaming"
    error: str | None = None
    changed: anyio.Event | None = None
    cancel: anyio.Event | None = None
    cancel_requested: bool = False

    def end(self, status: Literal["done", "error"], error: str | None = None) -> None:
        """Finish the stream (if it was not already): its readers drain it and stop."""
        if self.status == "streaming":
            self.status, self.error = status, error
        self.notify()

    def notify(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = None


def _missing(stream_id: str) -> ResumableStreamError:
    return ResumableStreamError("missing", f"Stream not found: {stream_id}")


class InMemoryResumableStreamStore:
    """Frames kept in memory until ``ttl_ms`` after a stream's last write."""

    def __init__(
        self,
        *,
        default_ttl_ms: int = DEFAULT_TTL_MS,
        now: Callable[[], float] | None = None,
        max_chunk_bytes: int | None = None,
        max_entries_per_stream: int | None = None,
        max_streams: int | None = None,
        gc_interval_ms: int | None = None,
    ) -> None:
        self._ttl_ms = default_ttl_ms
        self._now = now or (lambda: time.monotonic() * 1000)
        self._max_chunk_bytes = max_chunk_bytes
        self._max_entries = max_entries_per_stream
        self._max_streams = max_streams
        self._gc_interval_ms = gc_interval_ms
        self._swept_at = -math.inf
        self._streams: dict[str, _Stream] = {}

    def _sweep(self, now: float) -> None:
        """Remove every expired stream; readers of one that was still streaming get "Stream expired"."""
        self._swept_at = now
        for stream_id in [key for key, stream in self._streams.items() if stream.expires_at <= now]:
            self._streams.pop(stream_id).end("error", "Stream expired")

    def _live(self, stream_id: str) -> _Stream | None:
        """The stream, unless it is missing or expired (then it is removed)."""
        validate_stream_id(stream_id)
        now = self._now()
        if self._gc_interval_ms is not None and now >= self._swept_at + self._gc_interval_ms:
            self._sweep(now)
        stream = self._streams.get(stream_id)
        if stream is not None and stream.expires_at <= now:
            del self._streams[stream_id]
            stream.end("error", "Stream expired")
            return None
        return stream

    def _existing(self, stream_id: str) -> _Stream:
        stream = self._live(stream_id)
        if stream is None:
            raise _missing(stream_id)
        return stream

    async def acquire(self, stream_id: str, *, ttl_ms: int | None = None) -> ResumableStreamRole:
        await anyio.lowlevel.checkpoint()
        if self._gc_interval_ms is None:
            self._sweep(self._now())
        if self._live(stream_id) is not None:
            return "consumer"
        if self._max_streams is not None and len(self._streams) >= self._max_streams:
            raise ResumableStreamError("unavailable", "maxStreams exceeded")
        ttl = self._ttl_ms if ttl_ms is None else ttl_ms
        self._streams[stream_id] = _Stream(ttl_ms=ttl, expires_at=self._now() + ttl)
        return "producer"

    async def append(self, stream_id: str, chunk: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        validate_stream_id(stream_id)
        if self._max_chunk_bytes is not None and len(chunk) > self._max_chunk_bytes:
            raise ResumableStreamError("unavailable", f"Chunk exceeds maxChunkBytes: {len(chunk)}")
        stream = self._existing(stream_id)
        if stream.status != "streaming":
            raise ResumableStreamError("finalized", f"Stream already finalized: {stream_id}")
        if self._max_entries is not None and len(stream.frames) >= self._max_entries:
            raise ResumableStreamError("unavailable", f"Stream exceeded maxEntriesPerStream: {stream_id}")
        stream.frames.append(bytes(chunk))
        stream.expires_at = self._now() + stream.ttl_ms
        stream.notify()

    async def finalize(self, stream_id: str, status: Literal["done", "error"], error: str | None = None) -> None:
        await anyio.lowlevel.checkpoint()
        stream = self._existing(stream_id)
        if stream.status == "streaming":
            stream.expires_at = self._now() + stream.ttl_ms
            stream.end(status, (error or "Stream errored") if status == "error" else None)

    async def read(
        self, stream_id: str, cursor: str, signal: CancellationSignal
    ) -> AsyncIterator[ResumableStreamEntry]:
        position = parse_cursor(cursor)
        stream = self._existing(stream_id)
        # The reader follows this stream object: a delete or an expiry ends it instead of losing it.
        while not signal.is_set():
            while position < len(stream.frames):
                position += 1
                yield ResumableStreamEntry(str(position), stream.frames[position - 1])
                if signal.is_set():
                    return
            if stream.status == "done":
                return
            if stream.status == "error":
                raise ResumableStreamError("failed", stream.error or "Stream errored")
            await self._wait(stream, signal)
            self._live(stream_id)  # ends the stream if it expired while this reader waited

    async def _wait(self, stream: _Stream, signal: CancellationSignal) -> None:
        """Until the stream changes, the reader's signal is set, or the stream expires."""
        if stream.changed is None:
            stream.changed = anyio.Event()
        changed = stream.changed
        with anyio.move_on_after(max(0.0, (stream.expires_at - self._now()) / 1000)):
            async with anyio.create_task_group() as tg:

                async def until_signal() -> None:
                    await signal.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(until_signal)
                await changed.wait()
                tg.cancel_scope.cancel()

    async def status(self, stream_id: str) -> ResumableStreamStatus:
        await anyio.lowlevel.checkpoint()
        stream = self._live(stream_id)
        return "missing" if stream is None else stream.status

    async def delete(self, stream_id: str) -> None:
        """Remove the stream; its open readers end after the frames it had."""
        await anyio.lowlevel.checkpoint()
        if self._live(stream_id) is not None:
            self._streams.pop(stream_id).end("done")

    def dispose(self) -> None:
        """Accepted for 0.0.36 code: this store runs no background task, so there is nothing to stop."""

    async def request_cancel(self, stream_id: str) -> None:
        """Ask the producer of ``stream_id`` to stop."""
        await anyio.lowlevel.checkpoint()
        stream = self._existing(stream_id)
        stream.cancel_requested = True
        if stream.cancel is not None:
            stream.cancel.set()

    async def wait_cancel(self, stream_id: str) -> None:
        """Return once a cancel was requested for ``stream_id``."""
        stream = self._existing(stream_id)
        if stream.cancel_requested:
            return
        if stream.cancel is None:
            stream.cancel = anyio.Event()
        await stream.cancel.wait()


def create_in_memory_resumable_stream_store(
    *,
    default_ttl_ms: int = DEFAULT_TTL_MS,
    now: Callable[[], float] | None = None,
    max_chunk_bytes: int | None = None,
    max_entries_per_stream: int | None = None,
    max_streams: int | None = None,
    gc_interval_ms: int | None = None,
) -> InMemoryResumableStreamStore:
    """An in-memory store; ``now`` is a clock in milliseconds, ``gc_interval_ms`` how often calls sweep."""
    return InMemoryResumableStreamStore(
        default_ttl_ms=default_ttl_ms,
        now=now,
        max_chunk_bytes=max_chunk_bytes,
        max_entries_per_stream=max_entries_per_stream,
        max_streams=max_streams,
        gc_interval_ms=gc_interval_ms,
    )
