"""Our bytes for the reference scenario, frame by frame, against the reference bytes.

``reference/golden`` holds one scenario as chunks (``reference-chunks*.json``),
the data-stream and assistant-transport bytes assistant-stream 0.0.36 wrote
for it, and the UI message stream the ``ai`` package wrote for it. Frames are
compared after parsing their JSON (0.0.36 writes spaced, ASCII-escaped JSON;
we write compact JSON with raw UTF-8). The only differences are the
documented ones (docs/streaming-formats.md): the finish frames we add, and the
id of the UI stream's data part.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    AssistantTransportEncoder,
    DataStreamEncoder,
    StreamEncoder,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolResultChunk,
    UIMessageStreamEncoder,
)

GOLDEN = Path(__file__).parent / "golden"  # a copy of the project's reference/golden

VARIANTS = ["", "-error"]


def chunks(variant: str) -> list[AssistantStreamChunk]:
    """The scenario's chunks, decoded from the reference JSON into our chunk structs."""
    raw = (GOLDEN / f"reference-chunks{variant}.json").read_bytes()
    return msgspec.json.decode(raw, type=list[AssistantStreamChunk])


def encode(encoder: StreamEncoder, items: list[AssistantStreamChunk]) -> bytes:
    writer = encoder.open()
    return b"".join(writer.encode(chunk) for chunk in items) + writer.finish("completed")


def data_stream_frames(body: str) -> list[tuple[str, Any]]:
    assert body.endswith("\n")
    frames = []
    for line in body.removesuffix("\n").split("\n"):
        prefix, _, value = line.partition(":")
        frames.append((prefix, json.loads(value)))
    return frames


def sse_frames(body: str) -> list[Any]:
    assert body.endswith("\n\n")
    frames: list[Any] = []
    for event in body.removesuffix("\n\n").split("\n\n"):
        assert event.startswith("data: "), event
        assert "\n" not in event, event
        data = event.removeprefix("data: ")
        frames.append(data if data == "[DONE]" else json.loads(data))
    return frames


@pytest.mark.parametrize("variant", VARIANTS)
def test_data_stream_equals_reference_plus_finish_frame(variant: str) -> None:
    ours = data_stream_frames(encode(DataStreamEncoder(), chunks(variant)).decode())
    reference = data_stream_frames((GOLDEN / f"data-stream{variant}.txt").read_text())

    # The reference's last step is finished (its `e:` is there), so the only
    # addition is the message finish frame, with the run's total usage.
    finish = ("d", {"finishReason": "stop", "usage": {"inputTokens": 10, "outputTokens": 20}})
    assert ours == [*reference, finish]


@pytest.mark.parametrize("variant", VARIANTS)
def test_assistant_transport_equals_reference_plus_finish_frame(variant: str) -> None:
    ours = sse_frames(encode(AssistantTransportEncoder(), chunks(variant)).decode())
    reference = sse_frames((GOLDEN / f"assistant-transport{variant}.txt").read_text())

    assert reference[-1] == ours[-1] == "[DONE]"
    finish = {"type": "message-finish", "finishReason": "stop", "usage": {"inputTokens": 10, "outputTokens": 20}}
    assert ours == [*reference[:-1], finish, "[DONE]"]


def with_args_finished(items: list[AssistantStreamChunk]) -> list[AssistantStreamChunk]:
    """The scenario as this library's runs emit it: each call's arguments end before what follows them.

    0.0.36 has no chunk for "arguments complete"; the model behind the ``ai``
    reference finished each call's arguments before starting the next call,
    so that is where the run's ``ToolCallArgsFinishChunk`` goes.
    """
    out: list[AssistantStreamChunk] = []
    for chunk in items:
        if isinstance(chunk, ToolCallBeginChunk) and chunk.tool_call_id == "call_search_2":
            out.append(ToolCallArgsFinishChunk(tool_call_id="call_weather_1"))
        if isinstance(chunk, ToolResultChunk) and chunk.tool_call_id == "call_weather_1":
            out.append(ToolCallArgsFinishChunk(tool_call_id="call_search_2"))
        out.append(chunk)
    return out


def without_data_part_ids(frames: list[Any]) -> list[Any]:
    """Data parts get ids from a per-stream counter (``d1``, ``d2``...), not the reference's ``p1``."""
    return [
        {**frame, "id": "<id>"} if isinstance(frame, dict) and frame["type"].startswith("data-") else frame
        for frame in frames
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_ui_message_stream_equals_what_the_ai_package_writes(variant: str) -> None:
    body = encode(UIMessageStreamEncoder(message_id="msg-1"), with_args_finished(chunks(variant))).decode()
    ours = sse_frames(body)
    reference = sse_frames((GOLDEN / f"ui-message-stream{variant}.txt").read_text())

    assert [frame["id"] for frame in ours if isinstance(frame, dict) and frame["type"] == "data-progress"] == ["d1"]
    assert without_data_part_ids(ours) == without_data_part_ids(reference)
