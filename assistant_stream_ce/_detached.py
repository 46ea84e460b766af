"""The backend-specific pieces: tasks started on the backend itself, and the way back to a run's loop.

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

A response's run gets its producer the same way (the response waits for
the run's end), and the response's writer (which sends the frames) is such
a task too (:class:`Companion`), joined by the response before it returns:
an AnyIO task costs a task group's bookkeeping, its own cancel scope, an
event and a wrapper coroutine, which at two per request were the largest
fixed cost of a streamed response (together about 90 us of server CPU per
stream over HTTP on uvicorn). A task started here also starts at the top
of its own stack: the writer wakes once a frame, and in the response's own
task each wake-up resumed every middleware and server frame above it too.

The per-frame paths (a run's reader, a response's sends) use the running
backend's own primitives, looked up once (:func:`native`): AnyIO's generic
``checkpoint()`` and ``current_time()`` look the backend up on every call, and
its ``Event`` wraps the backend's event, which wraps a future or a parked task.
A reader that is the only one to wait needs only that future or parked task
(:class:`Parking`). Under a plain ``asyncio.run`` (as servers start their
loop) AnyIO's lookup falls back to asking asyncio for the current task;
:func:`named_backend` names the backend for the code of one request instead,
as ``anyio.run`` does for a whole program.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import threading
import types
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio
import sniffio
from anyio._core._eventloop import get_async_backend

_T = TypeVar("_T")

_asyncio_tasks: set[object] = set()


def _backend() -> str:
    backend = sniffio.current_async_library()
    if backend not in ("trio", "asyncio"):
        raise RuntimeError(f"assistant_stream_ce supports asyncio and trio, not {backend}")
    return backend


class named_backend:
    """Name the running backend for sniffio (so AnyIO) in this task and the tasks it starts, if nothing has.

    The same answer sniffio would work out on every call, at a fraction of the cost. A class rather
    than a generator-based context manager: it lasts a whole request, and this is two objects fewer.
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        named = sniffio.current_async_library_cvar.get() is not None or sniffio.thread_local.name is not None
        self._token = None if named else sniffio.current_async_library_cvar.set(_backend())

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            sniffio.current_async_library_cvar.reset(self._token)


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


class Companion:
    """``fn()`` running in a task beside the caller's, started on the running backend; the caller
    must :meth:`join` it. What ``fn`` raises (but cancellation) is raised by :meth:`join`: also a
    BaseException, which escaping a backend's own task would stop the event loop (asyncio) or end
    the run with TrioInternalError (trio).

    ``fn`` must end once told to (a response's writer: by cancelling its scope); nothing outside
    cancels it, as a task group would, until its event loop shuts down.
    """

    __slots__ = ("_done", "_error", "_parking")

    def __init__(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._done = False
        self._error: BaseException | None = None
        self._parking = native().parking()
        spawn(functools.partial(self._run, fn))

    async def _run(self, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except GeneratorExit:
            raise  # the task's coroutine is being closed
        except anyio.get_cancelled_exc_class():
            raise  # the event loop is shutting down
        except BaseException as exc:  # raised in the caller's task by join(), not lost in this one
            self._error = exc
        finally:
            self._done = True
            self._parking.wake()

    async def join(self) -> None:
        """Wait until ``fn`` has ended, shielded from the caller's cancellation; raise what it raised."""
        if not self._done:
            with anyio.CancelScope(shield=True):
                while not self._done:
                    await self._parking.wait()
        if self._error is not None:
            raise self._error


def clock() -> Callable[[], float]:
    """The running loop's clock (that of cancel scope deadlines), for a caller that reads it often.

    ``anyio.current_time()`` looks the backend up on every call; this reads the loop's own clock.
    """
    if _backend() == "trio":
        import trio

        return trio.current_time
    import asyncio

    return asyncio.get_running_loop().time


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
        else:
            import asyncio

            self._call_soon = asyncio.get_running_loop().call_soon_threadsafe
        self.time = clock()

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


class Parking(Protocol):
    """Where one task sleeps until another wakes it: the reader of a run's output."""

    def wait(self) -> Awaitable[None]:
        """Sleep until :meth:`wake` (a cancellation point: a cancelled sleeper leaves at once)."""

    def wake(self) -> None:
        """Wake the sleeper, if there is one."""


class _FutureParking:
    """asyncio: the sleeper awaits a bare future, which ``wake()`` resolves (no coroutine of its own)."""

    __slots__ = ("_future", "_loop")

    def __init__(self) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._future: Any = None

    def wait(self) -> Awaitable[None]:
        future: Awaitable[None] = self._loop.create_future()
        self._future = future
        return future

    def wake(self) -> None:
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():  # a cancelled sleeper's future is done (cancelled)
                future.set_result(None)


class _TaskParking:
    """trio: the sleeper parks its task, which ``wake()`` reschedules (no coroutine of its own either)."""

    __slots__ = ("_lowlevel", "_task")

    def __init__(self) -> None:
        import trio.lowlevel

        self._lowlevel = trio.lowlevel
        self._task: Any = None

    def _abort(self, _: object) -> Any:
        self._task = None
        return self._lowlevel.Abort.SUCCEEDED

    def wait(self) -> Awaitable[None]:
        self._task = self._lowlevel.current_task()
        sleeping: Awaitable[None] = self._lowlevel.wait_task_rescheduled(self._abort)
        return sleeping

    def wake(self) -> None:
        task = self._task
        if task is not None:
            self._task = None
            self._lowlevel.reschedule(task)


@dataclass(frozen=True)
class Native:
    """The running backend's own primitives, for the paths that run once per frame."""

    #: Let other ready tasks run (a cancellation point).
    checkpoint: Callable[[], Awaitable[None]]
    #: Raise the cancellation if the task's scope is cancelled; else return without yielding.
    checkpoint_if_cancelled: Callable[[], Awaitable[None]]
    parking: Callable[[], Parking]
    #: Whether a reader about to sleep should first let ready tasks run once: worth it where they run
    #: in the order they became ready (asyncio), so that a writer that yielded writes again first.
    #: trio shuffles its ready tasks: there that checkpoint costs the task switch it would save.
    look_ahead: bool


@types.coroutine
def _asyncio_checkpoint() -> Generator[None, None, None]:
    """What ``asyncio.sleep(0)`` does, without its two frames: a bare yield, after which the task runs again."""
    yield


_natives: dict[str, Native] = {}


def native() -> Native:
    """The running backend's :class:`Native` primitives (looked up once per backend)."""
    backend = _backend()
    found = _natives.get(backend)
    if found is None:
        if backend == "trio":
            import trio

            found = Native(trio.lowlevel.checkpoint, trio.lowlevel.checkpoint_if_cancelled, _TaskParking, False)
        else:
            found = Native(
                _asyncio_checkpoint, get_async_backend(backend).checkpoint_if_cancelled, _FutureParking, True
            )
        _natives[backend] = found
    return found
