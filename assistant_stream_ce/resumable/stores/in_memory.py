"""The embedded store: frames in this process's memory, for one instance."""

from __future__ import annotations

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

    def notify(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = None


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
    ) -> None:
        self._ttl_ms = default_ttl_ms
        self._now = now or (lambda: time.monotonic() * 1000)
        self._max_chunk_bytes = max_chunk_bytes
        self._max_entries = max_entries_per_stream
        self._max_streams = max_streams
        self._streams: dict[str, _Stream] = {}

    def _live(self, stream_id: str) -> _Stream | None:
        validate_stream_id(stream_id)
        stream = self._streams.get(stream_id)
        if stream is not None and stream.expires_at <= self._now():
            del self._streams[stream_id]
            stream.notify()
            return None
        return stream

    def _sweep(self) -> None:
        now = self._now()
        for stream_id in [key for key, stream in self._streams.items() if stream.expires_at <= now]:
            self._streams.pop(stream_id).notify()

    def _writable(self, stream_id: str) -> _Stream:
        stream = self._live(stream_id)
        if stream is None:
            raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
        if stream.status != "streaming":
            raise ResumableStreamError("finalized", f"resumable stream already finished: {stream_id}")
        stream.expires_at = self._now() + stream.ttl_ms
        return stream

    async def acquire(self, stream_id: str, *, ttl_ms: int | None = None) -> ResumableStreamRole:
        await anyio.lowlevel.checkpoint()
        self._sweep()
        if self._live(stream_id) is not None:
            return "consumer"
        if self._max_streams is not None and len(self._streams) >= self._max_streams:
            raise ResumableStreamError("unavailable", f"too many resumable streams (max {self._max_streams})")
        ttl = self._ttl_ms if ttl_ms is None else ttl_ms
        self._streams[stream_id] = _Stream(ttl_ms=ttl, expires_at=self._now() + ttl)
        return "producer"

    async def append(self, stream_id: str, chunk: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        stream = self._writable(stream_id)
        if self._max_chunk_bytes is not None and len(chunk) > self._max_chunk_bytes:
            raise ResumableStreamError("unavailable", f"frame of {len(chunk)} bytes exceeds {self._max_chunk_bytes}")
        if self._max_entries is not None and len(stream.frames) >= self._max_entries:
            raise ResumableStreamError("unavailable", f"stream {stream_id} exceeds {self._max_entries} frames")
        stream.frames.append(bytes(chunk))
        stream.notify()

    async def finalize(self, stream_id: str, status: Literal["done", "error"], error: str | None = None) -> None:
        await anyio.lowlevel.checkpoint()
        stream = self._live(stream_id)
        if stream is None or stream.status != "streaming":
            return
        stream.status = status
        stream.error = (error or "stream failed") if status == "error" else None
        stream.expires_at = self._now() + stream.ttl_ms
        stream.notify()

    async def read(
        self, stream_id: str, cursor: str, signal: CancellationSignal
    ) -> AsyncIterator[ResumableStreamEntry]:
        position = parse_cursor(cursor)
        while not signal.is_set():
            stream = self._live(stream_id)
            if stream is None:
                raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
            while position < len(stream.frames):
                position += 1
                yield ResumableStreamEntry(str(position), stream.frames[position - 1])
                if signal.is_set():
                    return
            if stream.status == "done":
                return
            if stream.status == "error":
                raise ResumableStreamError("failed", stream.error or "stream failed")
            if stream.changed is None:
                stream.changed = anyio.Event()
            await stream.changed.wait()

    async def status(self, stream_id: str) -> ResumableStreamStatus:
        await anyio.lowlevel.checkpoint()
        stream = self._live(stream_id)
        return "missing" if stream is None else stream.status

    async def delete(self, stream_id: str) -> None:
        await anyio.lowlevel.checkpoint()
        stream = self._streams.pop(stream_id, None) if self._live(stream_id) else None
        if stream is not None:
            stream.notify()

    async def request_cancel(self, stream_id: str) -> None:
        """Ask the producer of ``stream_id`` to stop."""
        await anyio.lowlevel.checkpoint()
        stream = self._live(stream_id)
        if stream is None:
            raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
        stream.cancel_requested = True
        if stream.cancel is not None:
            stream.cancel.set()

    async def wait_cancel(self, stream_id: str) -> None:
        """Return once a cancel was requested for ``stream_id``."""
        stream = self._live(stream_id)
        if stream is None:
            raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
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
    """An in-memory store (expired streams are swept whenever a stream is acquired)."""
    del gc_interval_ms  # accepted for compatibility: expiry is checked on every access
    return InMemoryResumableStreamStore(
        default_ttl_ms=default_ttl_ms,
        now=now,
        max_chunk_bytes=max_chunk_bytes,
        max_entries_per_stream=max_entries_per_stream,
        max_streams=max_streams,
    )
