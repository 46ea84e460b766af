"""Encoders as code written for assistant-stream 0.0.36 reads them: one frame per item, ``encode_chunk``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest

from assistant_stream_ce import (
    AGUIEncoder,
    AssistantStreamChunk,
    AssistantTransportEncoder,
    DataStreamEncoder,
    OpenAIStreamEncoder,
    StreamEncoder,
    TextDeltaChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UIMessageStreamEncoder,
)

pytestmark = pytest.mark.anyio

SSE_ENCODERS: dict[str, Callable[[], StreamEncoder]] = {
    "assistant-transport": AssistantTransportEncoder,
    "openai": OpenAIStreamEncoder,
    "ui-message-stream": UIMessageStreamEncoder,
    "ag-ui": AGUIEncoder,
}

# Chunks whose frames come several at a time: a tool call left open (the end writes its
# arguments' end, then the finish frames), text with a newline in it.
CHUNKS: list[AssistantStreamChunk] = [
    TextDeltaChunk(text_delta="line one\nline two"),
    ToolCallBeginChunk(tool_call_id="c1", tool_name="lookup"),
    ToolCallDeltaChunk(tool_call_id="c1", args_text_delta='{"q": "a\\nb"}'),
    TextDeltaChunk(text_delta="after"),
]


async def chunks() -> AsyncIterator[AssistantStreamChunk]:
    for chunk in CHUNKS:
        yield chunk


async def test_data_stream_encode_stream_yields_one_line_per_item() -> None:
    items = [item async for item in DataStreamEncoder().encode_stream(chunks())]

    assert all(item.endswith("\n") and item.count("\n") == 1 for item in items)
    prefixes = [item.partition(":")[0] for item in items]
    assert prefixes == ["0", "b", "c", "0", "c", "d"]  # the last c: and d: were written together
    for item in items:
        json.loads(item.partition(":")[2])
    assert json.loads(items[0][2:]) == "line one\nline two"


@pytest.mark.parametrize("name", SSE_ENCODERS)
async def test_sse_encode_stream_yields_one_event_per_item(name: str) -> None:
    items = [item async for item in SSE_ENCODERS[name]().encode_stream(chunks())]

    assert len(items) > len(CHUNKS)  # some chunks make several events, and so does the end
    for item in items:
        assert item.startswith("data: ")
        assert item.endswith("\n\n")
        assert item.count("\n") == 2
        if item != "data: [DONE]\n\n":
            json.loads(item[len("data: ") :])


def test_data_stream_encode_chunk_continues_one_stream() -> None:
    encoder = DataStreamEncoder()

    assert encoder.encode_chunk(TextDeltaChunk(text_delta="hi")) == '0:"hi"\n'
    assert encoder.encode_chunk(ToolCallBeginChunk(tool_call_id="c1", tool_name="lookup")) == (
        'b:{"toolCallId":"c1","toolName":"lookup"}\n'
    )
    result = encoder.encode_chunk(ToolResultChunk(tool_call_id="c1", result={"ok": True}))
    assert result == 'a:{"toolCallId":"c1","result":{"ok":true}}\n'


def test_openai_encode_chunk_writes_a_completion_chunk() -> None:
    encoder = OpenAIStreamEncoder(model="m")

    first = encoder.encode_chunk(TextDeltaChunk(text_delta="hi"))
    second = encoder.encode_chunk(TextDeltaChunk(text_delta="!"))

    payloads = [json.loads(frame.removeprefix("data: ")) for frame in (first, second)]
    assert [p["choices"][0]["delta"].get("content") for p in payloads] == ["hi", "!"]
    assert payloads[0]["id"] == payloads[1]["id"]
    assert payloads[0]["id"].startswith("chatcmpl-")
    assert payloads[0]["model"] == "m"
