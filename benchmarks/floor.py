"""The floors: the same data-stream frames built directly with msgspec, without a streaming library.

- The *single-loop* floor (:data:`FLOORS`): one loop builds every frame, no run
  and no event loop work. ``tight`` is msgspec alone; ``yield`` adds the
  producer's one checkpoint per write on the same backend, the cost that no
  streaming library can remove.
- The *hand-off* floor (:data:`HANDOFFS`, yielding text only): the producer
  task appends each delta to a list and takes the same checkpoint; a second
  task (the consumer, as in an HTTP response) takes what is pending, joins it
  and builds one frame, then sleeps until the next delta with the cheapest
  wake-up its backend offers (asyncio: a bare future; trio:
  ``wait_task_rescheduled``/``reschedule``). When the producer yields after
  every delta the consumer keeps up and writes one frame per delta: this is
  what any design that moves frames from a producer task to a writer task
  pays per delta, ours included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import perf_counter, process_time
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import sniffio

from .workloads import ARGS_PIECES, Figures, rates, tokens

_encode = msgspec.json.encode


async def text(*, deltas: int, pattern: str) -> Figures:
    items = tokens(deltas)
    pause = pattern == "yield"
    checkpoint = anyio.lowlevel.checkpoint
    size = 0
    start, cpu = perf_counter(), process_time()
    for item in items:
        size += len(b"0:" + _encode(item) + b"\n")
        if pause:
            await checkpoint()
    seconds = perf_counter() - start
    cpu = process_time() - cpu
    return rates(deltas, "deltas", seconds, cpu, deltas, size)


async def tools(*, calls: int, pattern: str) -> Figures:
    pause = pattern == "yield"
    checkpoint = anyio.lowlevel.checkpoint
    size = 0
    start, cpu = perf_counter(), process_time()
    for i in range(calls):
        call_id = f"call_{i:06d}"
        size += len(b"b:" + _encode({"toolCallId": call_id, "toolName": "get_weather"}) + b"\n")
        for piece in ARGS_PIECES:
            size += len(b"c:" + _encode({"toolCallId": call_id, "argsTextDelta": piece}) + b"\n")
            if pause:
                await checkpoint()
        result = {"city": "Paris", "temperature": 21, "index": i}
        size += len(b"a:" + _encode({"toolCallId": call_id, "result": result}) + b"\n")
        if pause:
            await checkpoint()
    seconds = perf_counter() - start
    cpu = process_time() - cpu
    figures = rates(calls, "calls", seconds, cpu, calls * (len(ARGS_PIECES) + 2), size)
    figures["deltas_per_s"] = calls * len(ARGS_PIECES) / seconds
    return figures


async def state(*, updates: int, pattern: str) -> Figures:
    pause = pattern == "yield"
    checkpoint = anyio.lowlevel.checkpoint
    size = 0
    start, cpu = perf_counter(), process_time()
    for _ in range(updates):
        size += len(b"aui-state:" + _encode([{"type": "append-text", "path": ["doc", "body"], "value": "x"}]) + b"\n")
        if pause:
            await checkpoint()
    seconds = perf_counter() - start
    cpu = process_time() - cpu
    return rates(updates, "updates", seconds, cpu, updates, size)


FLOORS: dict[str, Callable[..., Awaitable[Figures]]] = {"text": text, "tools": tools, "state": state}


# -- the hand-off floor --------------------------------------------------------------------------


class _AsyncioWaker:
    """The consumer sleeps on a bare asyncio future; the producer resolves it."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set_result(None)
            self._waiter = None

    def sleep(self) -> Awaitable[None]:
        self._waiter = self._loop.create_future()
        return self._waiter


class _TrioWaker:
    """The consumer parks its task with ``wait_task_rescheduled``; the producer reschedules it."""

    def __init__(self) -> None:
        import trio.lowlevel

        self._lowlevel = trio.lowlevel
        self._waiter: Any = None

    def wake(self) -> None:
        if self._waiter is not None:
            self._lowlevel.reschedule(self._waiter)
            self._waiter = None

    def _abort(self, _: Any) -> Any:
        self._waiter = None
        return self._lowlevel.Abort.SUCCEEDED

    def sleep(self) -> Awaitable[None]:
        self._waiter = self._lowlevel.current_task()
        sleeping: Awaitable[None] = self._lowlevel.wait_task_rescheduled(self._abort)
        return sleeping


_WAKERS: dict[str, Callable[[], _AsyncioWaker | _TrioWaker]] = {"asyncio": _AsyncioWaker, "trio": _TrioWaker}


async def text_handoff(*, deltas: int, pattern: str) -> Figures:
    """Deltas from a producer task to a consumer task that builds the frames (see the module docstring)."""
    if pattern != "yield":
        raise ValueError("the hand-off floor is defined for the yielding producer only")
    items = tokens(deltas)
    waker = _WAKERS[sniffio.current_async_library()]()
    checkpoint = anyio.lowlevel.checkpoint
    pending: list[str] = []
    finished = False

    async def produce() -> None:
        nonlocal finished
        for item in items:
            pending.append(item)
            waker.wake()
            await checkpoint()
        finished = True
        waker.wake()

    frames = size = 0
    start, cpu = perf_counter(), process_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        while True:
            if pending:
                text = pending[0] if len(pending) == 1 else "".join(pending)
                pending.clear()
                frames += 1
                size += len(b"0:" + _encode(text) + b"\n")
            elif finished:
                break
            else:
                await waker.sleep()
    return rates(deltas, "deltas", perf_counter() - start, process_time() - cpu, frames, size)


HANDOFFS: dict[str, Callable[..., Awaitable[Figures]]] = {"text": text_handoff}
#: The worker's ``lib`` names that this module measures.
LIBS = ("floor", "handoff")


def run(workload: str, backend: str, params: dict[str, Any], *, handoff: bool = False) -> Figures:
    """Build the floor of ``workload`` (``backend`` matters only for the yielding pattern and the hand-off)."""
    fn = (HANDOFFS if handoff else FLOORS)[workload]

    async def main() -> Figures:
        return await fn(**params)

    return anyio.run(main, backend=backend)
