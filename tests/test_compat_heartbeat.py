"""Keepalives and ``body_iterator`` as code written for assistant-stream 0.0.36 uses them."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from assistant_stream_ce import RunController, create_run
from assistant_stream_ce.assistant_stream_chunk import AssistantStreamChunk, TextDeltaChunk
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse
from assistant_stream_ce.serialization.assistant_transport import AssistantTransportEncoder
from assistant_stream_ce.serialization.data_stream import DataStreamEncoder, DataStreamResponse
from assistant_stream_ce.serialization.heartbeat import (
    DATA_STREAM_KEEPALIVE_LINE,
    DEFAULT_HEARTBEAT_INTERVAL,
    SSE_HEARTBEAT_LINE,
    add_keepalive,
    add_sse_heartbeat,
    resolve_heartbeat_interval,
)
from assistant_stream_ce.serialization.openai_stream import OpenAIStreamResponse
from assistant_stream_ce.serialization.stream_encoder import StreamEncoder

pytestmark = pytest.mark.anyio


def test_heartbeat_option_resolves_like_0036() -> None:
    assert DEFAULT_HEARTBEAT_INTERVAL == 15.0
    assert resolve_heartbeat_interval(True) == DEFAULT_HEARTBEAT_INTERVAL
    assert [resolve_heartbeat_interval(off) for off in (None, False, 0, 0.0)] == [None] * 4
    assert resolve_heartbeat_interval(2) == 2.0
    for bad in (-1, -0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="heartbeat"):
            resolve_heartbeat_interval(bad)


def test_keepalive_tokens_are_what_the_formats_declare() -> None:
    assert SSE_HEARTBEAT_LINE == ": heartbeat\n\n"
    assert DATA_STREAM_KEEPALIVE_LINE == "\n"
    assert AssistantTransportEncoder().get_keepalive_token() == SSE_HEARTBEAT_LINE
    assert DataStreamEncoder().get_keepalive_token() == DATA_STREAM_KEEPALIVE_LINE


def test_data_stream_response_sends_no_keepalives_unless_asked() -> None:
    """As in 0.0.36: ``DataStreamResponse`` defaults to no heartbeat; the other responses to 15 s."""
    assert inspect.signature(DataStreamResponse).parameters["heartbeat"].default is False
    assert inspect.signature(OpenAIStreamResponse).parameters["heartbeat"].default is True
    assert inspect.signature(AssistantStreamResponse).parameters["heartbeat"].default == DEFAULT_HEARTBEAT_INTERVAL


def paused_stream(resume: anyio.Event) -> AsyncIterator[AssistantStreamChunk]:
    """``hello``, then silence until ``resume`` is set, then ``world``."""

    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        yield TextDeltaChunk(text_delta="hello")
        await resume.wait()
        yield TextDeltaChunk(text_delta="world")

    return chunks()


async def read_resuming_on_keepalive(body: AsyncIterator[str], keepalive: str, resume: anyio.Event) -> list[str]:
    frames = []
    with anyio.fail_after(5):
        async for frame in body:
            frames.append(frame)
            if frame == keepalive:
                resume.set()
    return frames


async def test_body_iterator_yields_one_frame_per_item_with_keepalives_in_silences() -> None:
    resume = anyio.Event()
    response = AssistantStreamResponse(paused_stream(resume), AssistantTransportEncoder(), heartbeat=0.01)
    frames = await read_resuming_on_keepalive(response.body_iterator, SSE_HEARTBEAT_LINE, resume)

    assert frames[-1] == "data: [DONE]\n\n"
    events = [frame for frame in frames if frame != SSE_HEARTBEAT_LINE]
    assert all(frame.startswith("data: ") and frame.endswith("\n\n") and frame.count("\n\n") == 1 for frame in events)
    deltas = [json.loads(frame[6:]).get("textDelta") for frame in events[:-1]]
    assert [delta for delta in deltas if delta] == ["hello", "world"]
    first_keepalive = frames.index(SSE_HEARTBEAT_LINE)
    assert '"hello"' in "".join(frames[:first_keepalive])
    assert '"world"' in "".join(frames[first_keepalive:])


async def test_data_stream_response_takes_heartbeat_positionally() -> None:
    resume = anyio.Event()
    response = DataStreamResponse(paused_stream(resume), 0.01)
    frames = await read_resuming_on_keepalive(response.body_iterator, DATA_STREAM_KEEPALIVE_LINE, resume)

    assert [frame for frame in frames if frame != "\n"][:2] == ['0:"hello"\n', '0:"world"\n']
    assert frames.index("\n") < frames.index('0:"world"\n')


class _JSONLinesEncoder(StreamEncoder):
    """A 0.0.36-style encoder: only ``encode_stream``, and a media type with no keepalive."""

    def get_media_type(self) -> str:
        return "application/json"

    async def encode_stream(self, stream: Any) -> AsyncIterator[str]:
        async for chunk in stream:
            yield json.dumps(chunk.text_delta) + "\n"


async def test_an_encoder_without_keepalive_gets_its_items_only_even_when_heartbeat_is_set() -> None:
    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        yield TextDeltaChunk(text_delta="a")
        await anyio.sleep(0.05)  # a silence of five heartbeat intervals
        yield TextDeltaChunk(text_delta="b")

    response = AssistantStreamResponse(chunks(), _JSONLinesEncoder(), heartbeat=0.01)
    with anyio.fail_after(5):
        frames = [frame async for frame in response.body_iterator]
    assert frames == ['"a"\n', '"b"\n']


async def test_closing_body_iterator_cancels_the_run_and_runs_its_cleanup() -> None:
    cleaned_up = anyio.Event()

    async def callback(controller: RunController) -> None:
        try:
            controller.append_text("first")
            await anyio.sleep_forever()
        finally:
            cleaned_up.set()

    body = DataStreamResponse(create_run(callback)).body_iterator
    with anyio.fail_after(5):
        assert await anext(body) == '0:"first"\n'
        await body.aclose()  # type: ignore[attr-defined]
    assert cleaned_up.is_set()


async def test_add_keepalive_fills_silences_and_close_cancels_the_pending_read() -> None:
    resume, read_cancelled = anyio.Event(), anyio.Event()

    async def frames() -> AsyncIterator[str]:
        yield "data: 1\n\n"
        await resume.wait()
        yield "data: 2\n\n"
        try:
            await anyio.sleep_forever()
        finally:
            read_cancelled.set()

    with anyio.fail_after(5):
        wrapped = add_sse_heartbeat(frames(), 0.01)
        seen = [await anext(wrapped)]
        while seen[-1] != "data: 2\n\n":
            seen.append(await anext(wrapped))
            if seen[-1] == SSE_HEARTBEAT_LINE:
                resume.set()
        await wrapped.aclose()  # type: ignore[attr-defined]
    assert read_cancelled.is_set()
    assert seen[0] == "data: 1\n\n"
    assert SSE_HEARTBEAT_LINE in seen[1:-1]


async def test_add_keepalive_passes_items_through_and_closes_its_source() -> None:
    closed = anyio.Event()

    async def frames() -> AsyncIterator[str]:
        try:
            yield "0:1\n"
            yield "0:2\n"
        finally:
            closed.set()

    with anyio.fail_after(5):
        items = [item async for item in add_keepalive(frames(), 10, "\n")]
    assert items == ["0:1\n", "0:2\n"]
    assert closed.is_set()
