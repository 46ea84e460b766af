"""In-process workloads, identical for both libraries.

Each workload is an async function ``(lib, **params) -> dict`` of figures; the
producer is the run's callback, the consumer reads the data-stream wire bytes
(:mod:`benchmarks.libs`). ``pattern`` says how the producer writes:

- ``"tight"``: every write back to back, never yielding to the event loop
  (our engine coalesces these deltas into few frames while the consumer lags);
- ``"yield"``: one checkpoint after every write, as a producer that awaits a
  model's stream does, so the consumer gets to run between deltas.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Awaitable, Callable
from time import perf_counter, process_time, thread_time
from typing import Any

import anyio
import anyio.lowlevel

from ._proc import max_rss, rss
from .libs import Callback, Library, load

Figures = dict[str, Any]

#: Short tokens, as a model streams them (ASCII so that both libraries write the same bytes).
TOKENS = ("Hello", " world", ",", " here", " is", " a", " streamed", " answer", ".", "\n")
#: The argument text of one tool call, in 20 deltas.
ARGS_PIECES = (
    '{"query',
    '": "',
    "weather",
    " in",
    " Paris",
    " and",
    " Lyon",
    '", "',
    "units",
    '": "',
    "metric",
    '", "',
    "days",
    '": ',
    "3",
    ", ",
    '"lang',
    '": "',
    "fr",
    '"}',
)


def tokens(n: int) -> list[str]:
    """The first ``n`` tokens of an endless stream of :data:`TOKENS`."""
    return list(itertools.islice(itertools.cycle(TOKENS), n))


async def drain(lib: Library, callback: Callback, state: Any = None) -> tuple[int, int]:
    """Read a run's whole wire stream: (frames, bytes)."""
    frames = size = 0
    async with lib.wire(callback, state) as wire:
        encode = wire.frame
        async for item in wire.items:
            if frame := encode(item):
                frames += 1
                size += len(frame)
        if frame := wire.last():
            frames += 1
            size += len(frame)
    return frames, size


def rates(count: int, what: str, seconds: float, cpu: float, frames: int, size: int) -> Figures:
    return {
        what: count,
        "seconds": seconds,
        "cpu_seconds": cpu,
        f"{what}_per_s": count / seconds,
        f"{what}_per_cpu_s": count / cpu if cpu > 0 else 0.0,
        "frames": frames,
        "bytes": size,
        "bytes_per_s": size / seconds,
    }


async def text(lib: Library, *, deltas: int, pattern: str) -> Figures:
    """``deltas`` text deltas through the data-stream encoder."""
    items = tokens(deltas)
    pause = pattern == "yield"
    checkpoint = anyio.lowlevel.checkpoint

    async def callback(controller: Any) -> None:
        append = controller.append_text
        if pause:
            for item in items:
                append(item)
                await checkpoint()
        else:
            for item in items:
                append(item)

    start, cpu = perf_counter(), process_time()
    frames, size = await drain(lib, callback)
    return rates(deltas, "deltas", perf_counter() - start, process_time() - cpu, frames, size)


async def tools(lib: Library, *, calls: int, pattern: str) -> Figures:
    """``calls`` tool calls one after the other, 20 argument deltas each, then a result."""
    pause = pattern == "yield"
    checkpoint = anyio.lowlevel.checkpoint

    async def callback(controller: Any) -> None:
        for i in range(calls):
            tool = await controller.add_tool_call("get_weather", f"call_{i:06d}")
            for piece in ARGS_PIECES:
                tool.append_args_text(piece)
                if pause:
                    await checkpoint()
            tool.set_response({"city": "Paris", "temperature": 21, "index": i})
            if pause:
                await checkpoint()

    start, cpu = perf_counter(), process_time()
    frames, size = await drain(lib, callback)
    figures = rates(calls, "calls", perf_counter() - start, process_time() - cpu, frames, size)
    figures["deltas_per_s"] = calls * len(ARGS_PIECES) / figures["seconds"]
    return figures


async def state(lib: Library, *, updates: int, pattern: str) -> Figures:
    """``updates`` appends (``+=``) to a string nested in the run state."""
    pause = pattern == "yield"
    checkpoint = anyio.lowlevel.checkpoint

    async def callback(controller: Any) -> None:
        doc = controller.state["doc"]
        for _ in range(updates):
            doc["body"] += "x"
            if pause:
                await checkpoint()

    start, cpu = perf_counter(), process_time()
    frames, size = await drain(lib, callback, {"doc": {"title": "Notes", "body": "Start."}})
    return rates(updates, "updates", perf_counter() - start, process_time() - cpu, frames, size)


async def concurrent(lib: Library, *, runs: int, deltas: int) -> Figures:
    """``runs`` runs at once, ``deltas`` yielding text deltas each: time and peak memory."""
    items = tokens(deltas)
    checkpoint = anyio.lowlevel.checkpoint

    async def callback(controller: Any) -> None:
        for item in items:
            controller.append_text(item)
            await checkpoint()

    async def one() -> None:
        await drain(lib, callback)

    before = rss()
    start = perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(runs):
            tg.start_soon(one)
    seconds = perf_counter() - start
    return {
        "runs": runs,
        "seconds": seconds,
        "deltas_per_s": runs * deltas / seconds,
        "peak_rss_growth_mb": (max(max_rss(), rss()) - before) / 2**20,
    }


async def stalled(lib: Library, *, seconds: float, delta_bytes: int = 1024, read_every: float = 0.001) -> Figures:
    """A producer appending ``delta_bytes`` deltas for ``seconds`` while the consumer reads one frame per ms."""
    # Every delta a new string, as from a model's stream (one shared object would cost nothing to keep).
    stem = ("lorem ipsum " * (delta_bytes // 12 + 1))[: delta_bytes - 1]
    endings = "0123456789"
    checkpoint = anyio.lowlevel.checkpoint
    produced = 0
    finished = False

    async def callback(controller: Any) -> None:
        nonlocal produced, finished
        deadline = anyio.current_time() + seconds
        while anyio.current_time() < deadline:
            controller.append_text(stem + endings[produced % 10])
            produced += 1
            await checkpoint()
        finished = True

    before = rss()
    peak = before
    consumed = consumed_bytes = 0
    async with lib.wire(callback) as wire:
        async for item in wire.items:
            consumed += 1
            consumed_bytes += len(wire.frame(item))
            peak = max(peak, rss())
            if finished:
                break
            await anyio.sleep(read_every)
        # The producer is done: what is still buffered is what a stalled client costs.
        peak = max(peak, rss(), max_rss())
    return {
        "produced": produced,
        "produced_mb": produced * delta_bytes / 2**20,
        "consumed": consumed,
        "consumed_mb": consumed_bytes / 2**20,
        "peak_rss_growth_mb": (peak - before) / 2**20,
    }


async def aclose(lib: Library, *, runs: int, cooperative: bool = False) -> Figures:
    """Read 10 chunks of a run, then ``aclose()`` it: time until the callback's ``finally`` is done.

    The callback streams until cancelled; with ``cooperative`` it also stops by
    itself once ``controller.is_cancelled`` is true. Besides the wall-clock
    latency, the CPU time of the same span: on a busy machine the difference
    is time spent descheduled.
    """
    to_finally: list[float] = []
    to_return: list[float] = []
    cpu_to_finally: list[float] = []
    for _ in range(runs):
        done_at = done_cpu = 0.0

        async def callback(controller: Any) -> None:
            nonlocal done_at, done_cpu
            try:
                while not (cooperative and controller.is_cancelled):
                    controller.append_text("x")
                    await anyio.lowlevel.checkpoint()
            finally:
                done_at, done_cpu = perf_counter(), thread_time()

        run = lib.create_run(callback)
        for _ in range(10):
            await anext(run)
        start, start_cpu = perf_counter(), thread_time()
        await run.aclose()
        returned = perf_counter()
        if done_at == 0.0:
            raise RuntimeError(f"{lib.label}: the callback's finally had not run when aclose() returned")
        to_finally.append((done_at - start) * 1000)
        to_return.append((returned - start) * 1000)
        cpu_to_finally.append((done_cpu - start_cpu) * 1000)
    return {
        "runs": runs,
        **_percentiles("finally_ms", to_finally),
        **_percentiles("return_ms", to_return),
        **_percentiles("finally_cpu_ms", cpu_to_finally),
    }


def _percentiles(name: str, values: list[float]) -> Figures:
    ordered = sorted(values)
    return {
        f"{name}_p50": statistics.median(ordered),
        f"{name}_p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        f"{name}_max": ordered[-1],
    }


WORKLOADS: dict[str, Callable[..., Awaitable[Figures]]] = {
    "text": text,
    "tools": tools,
    "state": state,
    "concurrent": concurrent,
    "stalled": stalled,
    "aclose": aclose,
}


def run(workload: str, lib_key: str, backend: str, params: dict[str, Any]) -> Figures:
    """Run one workload on one library and backend, in this process."""
    lib = load(lib_key)
    if backend not in lib.backends:
        raise ValueError(f"{lib.label} does not run on {backend}")
    fn = WORKLOADS[workload]

    async def main() -> Figures:
        return await fn(lib, **params)

    return anyio.run(main, backend=backend)
