"""The three examples of the getting-started seed yield exactly the chunks one expects."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from assistant_stream_ce import (
    RunController,
    TextDeltaChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UpdateStateChunk,
    create_run,
)

if TYPE_CHECKING:
    from conftest import Consume

pytestmark = pytest.mark.anyio


async def test_first_stream(anyio_backend: str, consume: Consume) -> None:
    async def my_run(controller: RunController) -> None:
        controller.append_text("Hello from a stream!")

    stream = create_run(my_run)

    assert await consume(stream) == [TextDeltaChunk(text_delta="Hello from a stream!")]


async def test_state_updates(anyio_backend: str, consume: Consume) -> None:
    async def run(controller: RunController) -> None:
        # initialize state
        controller.state = {"messages": "", "count": 0}

        controller.state["messages"] += "Hello"
        controller.state["count"] = controller.state["count"] + 1

    stream = create_run(run, state={})

    # The writes are synchronous, so they arrive as one batch, in order.
    assert await consume(stream) == [
        UpdateStateChunk(
            operations=[
                {"type": "set", "path": [], "value": {"messages": "", "count": 0}},
                {"type": "set", "path": ["messages"], "value": "Hello"},
                {"type": "set", "path": ["count"], "value": 1},
            ]
        )
    ]


async def test_tool_calls(anyio_backend: str, consume: Consume) -> None:
    async def run(controller: RunController) -> None:
        tool = await controller.add_tool_call("search")
        tool.append_args_text(json.dumps({"q": "fastapi streaming"}))
        tool.set_response({"results": ["..."]})

    stream = create_run(run)

    chunks = await consume(stream)
    assert isinstance(chunks[0], ToolCallBeginChunk)
    call_id = chunks[0].tool_call_id
    assert call_id.startswith("call_")
    assert chunks == [
        ToolCallBeginChunk(tool_call_id=call_id, tool_name="search"),
        ToolCallDeltaChunk(tool_call_id=call_id, args_text_delta='{"q": "fastapi streaming"}'),
        ToolCallArgsFinishChunk(tool_call_id=call_id),
        ToolResultChunk(tool_call_id=call_id, result={"results": ["..."]}),
    ]
