"""Tool tasks that stream arguments faster than the client reads wait: the run's buffer stays bounded."""

from __future__ import annotations

import json

import anyio
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    RunController,
    ToolCall,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    create_run,
)
from assistant_stream_ce._merger import ENTRY_COST, HIGH_WATER

pytestmark = pytest.mark.anyio

TOOLS = 20
DELTAS = 10_000


def argument_pieces() -> list[str]:
    """The arguments ``{"items": [0, ..., 9999]}`` in exactly DELTAS pieces."""
    pieces = [f",{k}" for k in range(DELTAS)]
    pieces[0] = '{"items":[0'
    pieces[-1] += "]}"
    return pieces


async def test_stalled_consumer_keeps_the_buffer_bounded_and_arguments_exact(anyio_backend: str) -> None:
    pieces = argument_pieces()
    sent = dict.fromkeys((f"t{number}" for number in range(TOOLS)), 0)

    async def numbers(tool: ToolCall) -> int:
        for piece in pieces:
            await tool.append_args_text(piece)
            sent[tool.tool_call_id] += 1
        return sent[tool.tool_call_id]

    async def callback(controller: RunController) -> None:
        async with controller.tool_calls() as calls:
            for tool_call_id in sent:
                calls.start("numbers", numbers, tool_call_id=tool_call_id)

    run = create_run(callback)
    merger = run._core.merger  # the run's one output buffer
    received: list[AssistantStreamChunk] = []
    with anyio.fail_after(30):
        async with run as chunks:
            stream = aiter(chunks)
            for _ in range(4):  # stall the consumer at several points of the run
                await anyio.wait_all_tasks_blocked()  # every tool task is now waiting to send
                assert sum(sent.values()) < TOOLS * DELTAS
                # At most a begin and one coalesced argument entry per call, whatever was sent.
                assert len(merger) <= 2 * TOOLS
                assert merger.cost <= HIGH_WATER + TOOLS * (ENTRY_COST + 16)
                for _ in range(300):
                    received.append(await anext(stream))
            async for chunk in stream:
                received.append(chunk)

    begins = [chunk.tool_call_id for chunk in received if isinstance(chunk, ToolCallBeginChunk)]
    assert begins == list(sent)
    args_text: dict[str, list[str]] = {tool_call_id: [] for tool_call_id in sent}
    for chunk in received:
        if isinstance(chunk, ToolCallDeltaChunk):
            args_text[chunk.tool_call_id].append(chunk.args_text_delta)
    expected = "".join(pieces)
    for texts in args_text.values():
        assert "".join(texts) == expected
        assert json.loads("".join(texts)) == {"items": list(range(DELTAS))}
    # Each call's arguments finish when it returns; results go out in call order.
    results = [chunk for chunk in received if isinstance(chunk, ToolResultChunk)]
    assert results == [ToolResultChunk(tool_call_id, DELTAS) for tool_call_id in sent]
    finished = {
        chunk.tool_call_id: position
        for position, chunk in enumerate(received)
        if isinstance(chunk, ToolCallArgsFinishChunk)
    }
    assert all(finished[result.tool_call_id] < received.index(result) for result in results)
