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
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc

from .. import _detached
from .._run import DEFAULT_GRACE_PERIOD, Flag, beyond_cancellation, default_error_message, positive_seconds, unwrap
from .errors import ResumableStreamError
from .types import ResumableStreamRole, ResumableStreamStatus, ResumableStreamStore, SupportsCancel, SupportsLease

__all__ = ["ProducerTask", "ResumableStreamContext", "create_resumable_stream_context"]

logger = logging.getLogger("assistant_stream_ce.resumable")

MakeStream = Callable[[], AsyncIterator[bytes]]
Emit = Callable[[bytes], Awaitable[None]]
Source = Callable[[Emit], Awaitable[None]]
OnAcquire = Callable[[str, ResumableStreamRole], None]
OnAppend = Callable[[str, int], None]
OnFinalize = Callable[[str, Literal["done", "error"], str | None], None]
OnError = Callable[[str, object], None]
WaitUntil = Callable[["ProducerTask"], object]


def _call_hook(hook: Callable[..., Any] | None, *args: Any) -> None:
    if hook is not None:
        try:
            hook(*args)
        except Exception:
            logger.warning("resumable stream hook %r raised", hook, exc_info=True)


class ProducerTask:
    """The producer of one stream, as ``wait_until`` receives it: ``await`` it to wait until it has ended.

    0.0.36 passes an asyncio task; this works on asyncio (``await``,
    ``asyncio.gather``) and on trio alike. It never raises: the producer's
    errors go to the store, the log and ``on_error``.
    """

    def __init__(self) -> None:
        self._ended = anyio.Event()

    def done(self) -> bool:
        return self._ended.is_set()

    def __await__(self) -> Generator[Any, Any, None]:
        return self._ended.wait().__await__()


def split_frames(data: bytes, separator: bytes) -> list[bytes]:
    """Cut encoder output into wire frames, each ending in ``separator``."""
    frames, start = [], 0
    while (end := data.find(separator, start)) != -1:
        frames.append(data[start : end + len(separator)])
        start = end + len(separator)
    if start < len(data):
        frames.append(data[start:])
    return frames


class StoreWriter:
    """The ``emit`` a producer's source writes with: frames go to the store.

    ``failure`` is what ended the stream's writes (the store refused one, e.g.
    because it lost frames, or the producer lost its lease); every later
    write raises it, and the stream ends as an error whatever the source does.
    """

    def __init__(
        self, store: ResumableStreamStore, stream_id: str, separator: bytes | None, on_append: OnAppend | None
    ) -> None:
        self.store = store
        self.stream_id = stream_id
        self.separator = separator
        self.on_append = on_append
        self.failure: Exception | None = None

    async def __call__(self, data: bytes) -> None:
        for frame in [data] if self.separator is None else split_frames(data, self.separator):
            if self.failure is not None:
                raise self.failure
            try:
                await self.store.append(self.stream_id, frame)
            except Exception as exc:
                self.failure = exc
                raise
            _call_hook(self.on_append, self.stream_id, len(frame))


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
        wait_until: WaitUntil | None = None,
        grace_period: float = DEFAULT_GRACE_PERIOD,
    ) -> None:
        self.store = store
        self._ttl_ms = ttl_ms
        self._on_acquire = on_acquire
        self._on_append = on_append
        self._on_finalize = on_finalize
        self._on_error = on_error
        self._wait_until = wait_until
        self._grace_period = positive_seconds(grace_period, "grace_period")
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
            task = ProducerTask()

            async def produce() -> None:
                try:
                    await self._produce(stream_id, source, separator)
                finally:
                    task._ended.set()

            if self._tg is not None:
                self._tg.start_soon(produce, name=f"resumable producer {stream_id}")
            else:
                _detached.spawn(produce)
            if self._wait_until is not None:
                self._wait_until(task)
        return role

    async def _produce(self, stream_id: str, source: Source, separator: bytes | None) -> None:
        emit = StoreWriter(self.store, stream_id, separator, self._on_append)
        status: Literal["done", "error"] = "done"
        error: str | None = None
        try:
            async with anyio.create_task_group() as tg:
                if isinstance(self.store, SupportsCancel):
                    tg.start_soon(self._watch_cancel, stream_id, tg.cancel_scope)
                if isinstance(self.store, SupportsLease):
                    tg.start_soon(self._hold_lease, emit, tg.cancel_scope)
                try:
                    await source(emit)
                except Exception:
                    if emit.failure is None:
                        raise  # otherwise the source failed because the store did: that is the error
                finally:
                    tg.cancel_scope.cancel()
            if emit.failure is not None:
                raise emit.failure
        except BaseException as group:
            if (beyond := beyond_cancellation(group)) is None:
                raise
            # The source's own exception, not the task group's wrapper. A BaseException that is not a
            # cancellation (SystemExit, KeyboardInterrupt, an application's own) is the stream's error
            # too: nobody awaits a producer, and on its way out of the task it would end the event loop.
            exc = unwrap(beyond)
            status, error = "error", default_error_message(exc)
            logger.error("resumable stream %s: producer failed: %s", stream_id, error, exc_info=exc)
            _call_hook(self._on_error, stream_id, exc)
        finally:
            with anyio.move_on_after(self._grace_period, shield=True):
                try:
                    try:
                        await self.store.finalize(stream_id, status, error)
                    except ResumableStreamError as exc:
                        if exc.code != "lost":
                            raise
                        status, error = "error", str(exc)  # the store ended the stream as an error instead
                    _call_hook(self._on_finalize, stream_id, status, error)
                except Exception as exc:
                    logger.error("resumable stream %s: finalize failed: %s", stream_id, exc)

    async def _hold_lease(self, writer: StoreWriter, scope: anyio.CancelScope) -> None:
        assert isinstance(self.store, SupportsLease)
        try:
            await self.store.hold_lease(writer.stream_id)
        except Exception as exc:
            writer.failure = exc
            scope.cancel()

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
        signal = Flag()
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
    wait_until: WaitUntil | None = None,
    on_acquire: OnAcquire | None = None,
    on_append: OnAppend | None = None,
    on_finalize: OnFinalize | None = None,
    on_error: OnError | None = None,
) -> ResumableStreamContext:
    """A context on ``store``. ``wait_until`` receives each producer this context starts
    (a :class:`ProducerTask`), for hosts that must keep the process alive until it ends."""
    return ResumableStreamContext(
        store,
        ttl_ms=ttl_ms,
        on_acquire=on_acquire,
        on_append=on_append,
        on_finalize=on_finalize,
        on_error=on_error,
        wait_until=wait_until,
    )
