"""Producers that write a run's frames to a store, and readers that follow them.

A producer is not tied to the request that started it: it keeps going while
no client is attached (up to the TTL), so a client can reconnect, to this
instance or another one sharing the store, and resume where it left off.
Producers are children of the context's task group when the context is
entered (``async with context:``, e.g. in the app's lifespan); otherwise each
runs in a task the context owns, like ``async for`` over a run.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc

from .. import _detached
from .._run import default_error_message
from .errors import ResumableStreamError
from .types import ResumableStreamRole, ResumableStreamStatus, ResumableStreamStore, SupportsCancel

__all__ = ["ResumableStreamContext", "create_resumable_stream_context"]

logger = logging.getLogger("assistant_stream_ce.resumable")

MakeStream = Callable[[], AsyncIterator[bytes]]
Emit = Callable[[bytes], Awaitable[None]]
Source = Callable[[Emit], Awaitable[None]]
OnAcquire = Callable[[str, ResumableStreamRole], None]
OnAppend = Callable[[str, int], None]
OnFinalize = Callable[[str, Literal["done", "error"], str | None], None]
OnError = Callable[[str, object], None]


def _call_hook(hook: Callable[..., Any] | None, *args: Any) -> None:
    if hook is not None:
        try:
            hook(*args)
        except Exception:
            logger.warning("resumable stream hook %r raised", hook, exc_info=True)


class _Flag:
    """A cancellation signal for a store reader."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._set = False

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> bool:
        if not self._set:
            self._event = self._event or anyio.Event()
            await self._event.wait()
        return True


def split_frames(data: bytes, separator: bytes) -> list[bytes]:
    """Cut encoder output into wire frames, each ending in ``separator``."""
    frames, start = [], 0
    while (end := data.find(separator, start)) != -1:
        frames.append(data[start : end + len(separator)])
        start = end + len(separator)
    if start < len(data):
        frames.append(data[start:])
    return frames


class ResumableStreamContext:
    """Starts producers and opens readers on one store."""

    def __init__(
        self,
        store: ResumableStreamStore,
        *,
        ttl_ms: int | None = None,
        on_acquire: OnAcquire | None = None,
        on_append: OnAppend | None = None,
        on_finalize: OnFinalize | None = None,
        on_error: OnError | None = None,
        grace_period: float = 5.0,
    ) -> None:
        self.store = store
        self._ttl_ms = ttl_ms
        self._on_acquire = on_acquire
        self._on_append = on_append
        self._on_finalize = on_finalize
        self._on_error = on_error
        self._grace_period = grace_period
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> ResumableStreamContext:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        tg, self._tg = self._tg, None
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)

    # -- producing -----------------------------------------------------------

    async def start(self, stream_id: str, source: Source, *, separator: bytes | None = None) -> ResumableStreamRole:
        """Become the producer of ``stream_id`` unless another instance already is.

        ``separator`` cuts what ``source`` emits into frames (one stored entry
        each, so a frame count is a cursor); None stores each emit as it is.
        """
        role = await self.store.acquire(stream_id, ttl_ms=self._ttl_ms)
        _call_hook(self._on_acquire, stream_id, role)
        if role == "producer":

            async def produce() -> None:
                await self._produce(stream_id, source, separator)

            if self._tg is not None:
                self._tg.start_soon(produce, name=f"resumable producer {stream_id}")
            else:
                _detached.spawn(produce)
        return role

    async def _produce(self, stream_id: str, source: Source, separator: bytes | None) -> None:
        async def emit(data: bytes) -> None:
            for frame in [data] if separator is None else split_frames(data, separator):
                await self.store.append(stream_id, frame)
                _call_hook(self._on_append, stream_id, len(frame))

        status: Literal["done", "error"] = "done"
        error: str | None = None
        try:
            async with anyio.create_task_group() as tg:
                if isinstance(self.store, SupportsCancel):
                    tg.start_soon(self._watch_cancel, stream_id, tg.cancel_scope)
                try:
                    await source(emit)
                finally:
                    tg.cancel_scope.cancel()
        except Exception as exc:
            status, error = "error", default_error_message(exc)
            logger.error("resumable stream %s: producer failed: %s", stream_id, error, exc_info=exc)
            _call_hook(self._on_error, stream_id, exc)
        finally:
            with anyio.move_on_after(self._grace_period, shield=True):
                try:
                    await self.store.finalize(stream_id, status, error)
                    _call_hook(self._on_finalize, stream_id, status, error)
                except Exception as exc:
                    logger.error("resumable stream %s: finalize failed: %s", stream_id, exc)

    async def _watch_cancel(self, stream_id: str, scope: anyio.CancelScope) -> None:
        assert isinstance(self.store, SupportsCancel)
        try:
            await self.store.wait_cancel(stream_id)
        except Exception as exc:
            logger.error("resumable stream %s: cannot watch for cancel requests: %s", stream_id, exc)
            return
        logger.info("resumable stream %s: cancel requested", stream_id)
        scope.cancel()

    async def cancel(self, stream_id: str) -> None:
        """Stop the producer of ``stream_id``, wherever it runs."""
        if not isinstance(self.store, SupportsCancel):
            raise ResumableStreamError("unavailable", "this store cannot carry cancel requests")
        await self.store.request_cancel(stream_id)

    # -- reading -------------------------------------------------------------

    async def read(self, stream_id: str, cursor: str = "") -> AsyncIterator[bytes]:
        """The frames of ``stream_id`` after ``cursor`` (a frame count), then live ones until it ends."""
        signal = _Flag()
        try:
            async for entry in self.store.read(stream_id, cursor, signal):
                yield entry.chunk
        finally:
            signal.set()

    async def run(self, stream_id: str, make_stream: MakeStream) -> AsyncIterator[bytes]:
        """Produce ``make_stream()`` into the store (unless someone already does) and read it from the start."""

        async def source(emit: Emit) -> None:
            async for data in make_stream():
                await emit(data)

        await self.start(stream_id, source)
        return self.read(stream_id)

    async def resume(self, stream_id: str, cursor: str = "") -> AsyncIterator[bytes] | None:
        """A reader after ``cursor``, or None if the stream does not exist (or expired)."""
        if await self.store.status(stream_id) == "missing":
            return None
        return self.read(stream_id, cursor)

    async def require_resume(self, stream_id: str, cursor: str = "") -> AsyncIterator[bytes]:
        """Like :meth:`resume`, but a missing stream is a ResumableStreamError."""
        reader = await self.resume(stream_id, cursor)
        if reader is None:
            raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
        return reader

    async def status(self, stream_id: str) -> ResumableStreamStatus:
        return await self.store.status(stream_id)

    async def delete(self, stream_id: str) -> None:
        await self.store.delete(stream_id)


def create_resumable_stream_context(
    *,
    store: ResumableStreamStore,
    ttl_ms: int | None = None,
    wait_until: Callable[[Any], None] | None = None,
    on_acquire: OnAcquire | None = None,
    on_append: OnAppend | None = None,
    on_finalize: OnFinalize | None = None,
    on_error: OnError | None = None,
) -> ResumableStreamContext:
    """A context on ``store``. ``wait_until`` is accepted for compatibility and unused:
    producers are owned by the context, not by the request."""
    del wait_until
    return ResumableStreamContext(
        store,
        ttl_ms=ttl_ms,
        on_acquire=on_acquire,
        on_append=on_append,
        on_finalize=on_finalize,
        on_error=on_error,
    )
