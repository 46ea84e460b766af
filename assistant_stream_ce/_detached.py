"""The backend-specific pieces: a producer task for ``async for`` over a run, and the way back to a run's loop.

``async for chunk in create_run(cb)`` gives the library no scope of the
consumer's to start a task group in: the consumer only calls ``__anext__``,
and may stop calling it at any time (break, drop the iterator). An async
generator holding a task group breaks on both backends in that case, so the
run's producer lives in a task that the run itself owns and cancels: a trio
system task, or an asyncio task the run keeps a strong reference to. AnyIO has
no API for such a task, hence this module. The producer must not raise: it
reports everything through the run.

A run's objects belong to its event loop's thread, but a dropped iterator can
be collected in any thread, and a callback may hand the controller to a worker
thread (a synchronous SDK in ``anyio.to_thread.run_sync``). :class:`EventLoop`
is how such calls get back to the loop's thread (AnyIO's own tokens for this
need a newer AnyIO than the project requires).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sniffio

_T = TypeVar("_T")

_asyncio_tasks: set[object] = set()


def _backend() -> str:
    backend = sniffio.current_async_library()
    if backend not in ("trio", "asyncio"):
        raise RuntimeError(f"assistant_stream_ce supports asyncio and trio, not {backend}")
    return backend


def spawn(producer: Callable[[], Awaitable[None]]) -> None:
    """Start ``producer()`` outside the caller's task tree, on the running backend."""
    if _backend() == "trio":
        import trio

        trio.lowlevel.spawn_system_task(producer, context=contextvars.copy_context())
    else:
        import asyncio

        # The loop keeps only weak references to tasks: hold one until it ends.
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(producer())  # type: ignore[arg-type]
        _asyncio_tasks.add(task)
        task.add_done_callback(_asyncio_tasks.discard)


class EventLoop:
    """The running event loop, reachable from any thread: made on the loop's thread."""

    __slots__ = ("_call_soon", "thread", "time")

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self._call_soon: Callable[[Callable[[], object]], object]
        #: The loop's clock (that of cancel scope deadlines), also readable from the loop's callbacks.
        self.time: Callable[[], float]
        if _backend() == "trio":
            import trio

            self._call_soon = trio.lowlevel.current_trio_token().run_sync_soon
            self.time = trio.current_time
        else:
            import asyncio

            loop = asyncio.get_running_loop()
            self._call_soon = loop.call_soon_threadsafe
            self.time = loop.time

    def call_soon(self, fn: Callable[[], object]) -> bool:
        """Run ``fn()`` on the loop's thread soon (it must not raise); False if the loop has ended."""
        try:
            self._call_soon(fn)
        except RuntimeError:  # asyncio: the loop is closed; trio: RunFinishedError
            return False
        return True

    def call(self, fn: Callable[[], _T]) -> _T:
        """From another thread: run ``fn()`` on the loop's thread, wait, and return or raise what it did."""
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:  # raised in the calling thread, never in the loop
                done.set_exception(exc)

        if not self.call_soon(run):
            raise RuntimeError("the run's event loop has ended; a controller can only be used while its run is running")
        return done.result()
