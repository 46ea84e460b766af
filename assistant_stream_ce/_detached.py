"""The one backend-specific piece: a producer task for ``async for`` over a run.

``async for chunk in create_run(cb)`` gives the library no scope of the
consumer's to start a task group in: the consumer only calls ``__anext__``,
and may stop calling it at any time (break, drop the iterator). An async
generator holding a task group breaks on both backends in that case, so the
run's producer lives in a task that the run itself owns and cancels: a trio
system task, or an asyncio task the run keeps a strong reference to. AnyIO has
no API for such a task, hence this module. The producer must not raise: it
reports everything through the run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable

import sniffio

_asyncio_tasks: set[object] = set()


def spawn(producer: Callable[[], Awaitable[None]]) -> None:
    """Start ``producer()`` outside the caller's task tree, on the running backend."""
    backend = sniffio.current_async_library()
    if backend == "trio":
        import trio

        trio.lowlevel.spawn_system_task(producer, context=contextvars.copy_context())
    elif backend == "asyncio":
        import asyncio

        # The loop keeps only weak references to tasks: hold one until it ends.
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(producer())  # type: ignore[arg-type]
        _asyncio_tasks.add(task)
        task.add_done_callback(_asyncio_tasks.discard)
    else:
        raise RuntimeError(f"assistant_stream_ce supports asyncio and trio, not {backend}")
