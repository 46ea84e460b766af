"""The floor: the same data-stream frames built directly with msgspec, no run and no event loop.

``tight`` is msgspec alone; ``yield`` adds the producer's one checkpoint per
write on the same backend, the cost that no streaming library can remove.
"""

from __future__ import annotations

from time import perf_counter, process_time
from typing import Any

import anyio
import anyio.lowlevel
import msgspec

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


FLOORS = {"text": text, "tools": tools, "state": state}


def run(workload: str, backend: str, params: dict[str, Any]) -> Figures:
    """Build the floor of ``workload`` (``backend`` matters only for the yielding pattern)."""
    fn = FLOORS[workload]

    async def main() -> Figures:
        return await fn(**params)

    return anyio.run(main, backend=backend)
