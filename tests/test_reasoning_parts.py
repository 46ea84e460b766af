"""``add_reasoning_part``: a reasoning part begun with an app-written summary (assistant-stream after 0.0.36).

The conformance scenario ``reasoning_parts`` shows every client's view of it;
these tests pin the wire bytes, the run's order and what the clients split.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from conformance_helpers import decode, encode, encoder_for

from assistant_stream_ce import (
    AssistantStreamChunk,
    DataChunk,
    ReasoningDeltaChunk,
    ReasoningPartStartChunk,
    RunController,
    RunOutcome,
    TextDeltaChunk,
    create_run,
)
from assistant_stream_ce.message import ReasoningPart
from assistant_stream_ce.serialization.data_stream import DataStreamEncoder

FORMATS = ("data-stream", "assistant-transport", "ui-message-stream", "ag-ui", "openai")


def test_data_stream_frame() -> None:
    writer = DataStreamEncoder().open()
    assert (
        writer.encode(ReasoningPartStartChunk("Planning"))
        == b'aui-reasoning-part-start:{"unstable_summary":"Planning"}\n'
    )
    assert writer.encode(ReasoningPartStartChunk("", parent_id="p1")) == (
        b'aui-reasoning-part-start:{"unstable_summary":"","parentId":"p1"}\n'
    )
    assert writer.encode(ReasoningPartStartChunk("\u2028 😀", parent_id="")) == (
        'aui-reasoning-part-start:{"unstable_summary":"\u2028 😀"}\n'.encode()
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_start_without_a_summary_writes_nothing(fmt: str) -> None:
    """As in assistant-stream: there is nothing to carry, so the reasoning around it stays one part."""
    writer = encoder_for(fmt).open()
    writer.encode(ReasoningDeltaChunk("before"))
    assert writer.encode(ReasoningPartStartChunk()) == b""
    assert writer.encode(ReasoningPartStartChunk(None, parent_id="p1")) == b""


@pytest.mark.anyio
async def test_reasoning_does_not_coalesce_across_a_part_start(anyio_backend: str) -> None:
    """Written while the consumer is stalled, the reasoning before and after the start stays in its own part."""
    written = anyio.Event()
    outcomes: list[RunOutcome] = []

    async def callback(controller: RunController) -> None:
        controller.add_data("start")
        for piece in ("a", "b", "c"):
            controller.append_reasoning(piece)
            await anyio.lowlevel.checkpoint()
        controller.add_reasoning_part("Planning")
        for piece in ("d", "e"):
            controller.append_reasoning(piece)
            await anyio.lowlevel.checkpoint()
        controller.with_parent_id("p1").add_reasoning_part("Nested")
        controller.append_text("done")
        written.set()

    with anyio.fail_after(10):
        async with create_run(callback, on_finish=outcomes.append) as chunks:
            first = await chunks.__anext__()
            await written.wait()
            rest = [chunk async for chunk in chunks]

    assert first == DataChunk("start")
    assert rest == [
        ReasoningDeltaChunk("abc"),
        ReasoningPartStartChunk("Planning"),
        ReasoningDeltaChunk("de"),
        ReasoningPartStartChunk("Nested", parent_id="p1"),
        TextDeltaChunk("done"),
    ]
    (outcome,) = outcomes
    assert [part for part in outcome.message.parts if type(part) is ReasoningPart] == [
        ReasoningPart("abc"),
        ReasoningPart("de", unstable_summary="Planning"),
        ReasoningPart("", parent_id="p1", unstable_summary="Nested"),
    ]
    assert outcome.message.reasoning == "abcde"


@pytest.mark.anyio
async def test_add_stream_passes_a_part_start_through(anyio_backend: str) -> None:
    async def source() -> AsyncIterator[AssistantStreamChunk]:
        yield ReasoningDeltaChunk("a")
        yield ReasoningPartStartChunk("Planning", parent_id="p1")
        yield ReasoningDeltaChunk("b", parent_id="p1")

    async def callback(controller: RunController) -> None:
        controller.add_stream(source())

    with anyio.fail_after(10):
        chunks = [chunk async for chunk in create_run(callback)]
    assert chunks == [
        ReasoningDeltaChunk("a"),
        ReasoningPartStartChunk("Planning", parent_id="p1"),
        ReasoningDeltaChunk("b", parent_id="p1"),
    ]


@pytest.mark.anyio
async def test_add_reasoning_part_takes_a_string(anyio_backend: str) -> None:
    raised: list[BaseException] = []

    async def callback(controller: RunController) -> None:
        try:
            controller.add_reasoning_part(None)  # type: ignore[arg-type]
        except TypeError as exc:
            raised.append(exc)

    chunks = [chunk async for chunk in create_run(callback)]
    assert chunks == []
    assert "unstable_summary must be str" in str(raised[0])


CHUNKS: list[AssistantStreamChunk] = [
    ReasoningDeltaChunk("one"),
    ReasoningPartStartChunk("Planning"),
    ReasoningDeltaChunk("two"),
    ReasoningPartStartChunk("Empty"),
]


def _reasoning_shown(fmt: str, message: dict[str, Any]) -> list[str]:
    if fmt == "ag-ui":
        return [m["content"] for m in message["messages"] if m["role"] == "reasoning"]
    return [part["text"] for part in message["parts"] if part["type"] == "reasoning"]


@pytest.mark.parametrize("fmt", ["ui-message-stream", "ag-ui"])
def test_formats_without_a_summary_field_still_start_a_part(fmt: str) -> None:
    """useChat shows a reasoning part per start, AG-UI a reasoning message (each possibly empty)."""
    (decoded,) = decode(fmt, [encode(encoder_for(fmt), CHUNKS, "completed")])
    assert _reasoning_shown(fmt, decoded.clean()) == ["one", "two", ""]
