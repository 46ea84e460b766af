"""Edge cases where a real client used to stumble, decoded by the real clients.

Runs go through an :class:`AssistantStreamResponse` driven as an ASGI app (on
asyncio and trio), or through each encoder chunk by chunk, and each body goes
to the client of its format.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from conformance_helpers import (
    FORMATS,
    adecode,
    client_view,
    decode_all,
    decode_batch,
    decode_openai,
    encode,
    encoder_for,
    expected_view,
)
from conformance_scenarios import SCENARIOS, capture_all

from assistant_stream_ce import (
    AssistantStreamChunk,
    ReasoningDeltaChunk,
    RunController,
    RunOutcome,
    TextDeltaChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    create_run,
)
from assistant_stream_ce.message import MessageBuilder
from assistant_stream_ce.resumable import (
    create_in_memory_resumable_stream_store,
    create_resumable_assistant_stream_response,
    create_resumable_stream_context,
)
from assistant_stream_ce.serialization._frames import MAX_FRAME_BYTES
from assistant_stream_ce.serialization._tools import UNFINISHED_ARGS_ERROR
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse
from assistant_stream_ce.serialization.openai_stream import OpenAIStreamEncoder, OpenAIStreamResponse

Callback = Callable[[RunController], Awaitable[None]]


async def serve(response: AssistantStreamResponse) -> bytes:
    """The body the response sends to a client that reads all of it."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}
    with anyio.fail_after(60):
        await response(scope, receive, send)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


# -- OpenAI: at most 128 tool calls in one message ----------------------------------------


def client_side_calls(count: int) -> Callback:
    async def callback(c: RunController) -> None:
        for i in range(count):
            tool = await c.add_tool_call("lookup", f"call_{i}")
            tool.append_args_text(f'{{"i": {i}}}')
            tool.close()

    return callback


@pytest.mark.anyio
async def test_a_129th_tool_call_fails_the_openai_stream_with_a_clear_error(anyio_backend: str) -> None:
    outcomes: list[RunOutcome] = []
    body = await serve(OpenAIStreamResponse(create_run(client_side_calls(129)), on_finish=outcomes.append))
    (npm,) = await adecode("openai-npm", [body])
    python = decode_openai(body)
    for shown in (npm.clean(), python.clean()):
        (error,) = shown["errors"]
        assert "'call_128'" in error
        assert "at most 128 tool calls" in error
        assert [call["id"] for call in shown["tool_calls"]] == [f"call_{i}" for i in range(128)]
    (outcome,) = outcomes
    assert outcome.status == "error"
    assert "at most 128 tool calls" in str(outcome.error)


@pytest.mark.anyio
async def test_a_129th_tool_call_ends_a_resumable_openai_stream_with_the_clear_error(anyio_backend: str) -> None:
    reported = anyio.Event()
    async with create_resumable_stream_context(store=create_in_memory_resumable_stream_store()) as context:
        response = await create_resumable_assistant_stream_response(
            context=context,
            stream_id="calls",
            callback=client_side_calls(129),
            encoder=OpenAIStreamEncoder(),
            on_finish=lambda outcome: reported.set(),
        )
        body = await serve(response)
        with anyio.fail_after(10):
            await reported.wait()
    (npm,) = await adecode("openai-npm", [body])
    for shown in (npm.clean(), decode_openai(body).clean()):
        (error,) = shown["errors"]
        assert "'call_128'" in error
        assert "at most 128 tool calls" in error


@pytest.mark.anyio
async def test_128_tool_calls_go_out_whole(anyio_backend: str) -> None:
    body = await serve(OpenAIStreamResponse(create_run(client_side_calls(128))))
    (npm,) = await adecode("openai-npm", [body])
    for shown in (npm.clean(), decode_openai(body).clean()):
        assert shown["finish_reason"] == "tool_calls"
        assert [call["arguments"] for call in shown["tool_calls"]] == [f'{{"i": {i}}}' for i in range(128)]


# -- frame size: a huge delta is split ----------------------------------------------------

HUGE = 20 * 2**20


def huge(seed: str) -> str:
    """20 Mi characters of text that JSON escapes in places (the frames are measured encoded)."""
    unit = f'{seed} héllo 日本 😀 \x00 "q" \\ \u2028 '
    return (unit * (HUGE // len(unit) + 1))[:HUGE]


HUGE_CHUNKS: list[AssistantStreamChunk] = [
    ReasoningDeltaChunk(huge("thinking")),
    TextDeltaChunk(huge("text")),
    ToolCallBeginChunk("call_huge", "echo"),
    ToolCallDeltaChunk("call_huge", json.dumps({"blob": huge("args")}, ensure_ascii=False)),
    ToolCallArgsFinishChunk("call_huge"),
]


def frame_sizes(fmt: str, pieces: list[bytes]) -> list[int]:
    """The size of every frame of a body, but the UI message stream's frames that repeat a call's whole input."""
    separator = b"\n" if fmt == "data-stream" else b"\n\n"
    body = b"".join(pieces)
    return [len(frame) + len(separator) for frame in body.split(separator)[:-1] if b'"input":' not in frame]


def test_a_20_mib_delta_reaches_every_client_in_frames_of_at_most_1_mib() -> None:
    """Text, reasoning and tool arguments of 20 MiB each: npm assistant-stream alone refuses a 16 MiB line."""
    builder = MessageBuilder()
    for chunk in HUGE_CHUNKS:
        builder.add(chunk)
    bodies = {fmt: encode(encoder_for(fmt), HUGE_CHUNKS, "completed") for fmt in FORMATS}
    for fmt, pieces in bodies.items():
        assert max(frame_sizes(fmt, pieces)) <= MAX_FRAME_BYTES, fmt
    decoded = decode_all([(fmt, pieces, None) for fmt, pieces in bodies.items()])
    for fmt, shown in zip(FORMATS, decoded, strict=True):
        assert client_view(fmt, shown) == expected_view(fmt, builder.message, "completed"), fmt


# -- a tool call whose arguments never finished --------------------------------------------


UNFINISHED = [s for s in SCENARIOS if s.name in ("error_mid_tool_args", "cancelled_mid_tool_args")]


def test_use_chat_never_hands_a_call_with_unfinished_arguments_to_on_tool_call() -> None:
    """On error and on cancel, on both backends: the call ends as tool-input-error, and onToolCall never runs."""
    runs = capture_all(UNFINISHED)
    items = [
        ("ui-message-stream", encode(encoder_for("ui-message-stream"), run.chunks, run.status)) for run in runs.values()
    ]
    for (backend, name), decoded in zip(runs, decode_batch(items), strict=True):
        shown = decoded.clean()
        assert shown["onToolCall"] == [], (backend, name)
        (call,) = [part for part in shown["parts"] if part["type"] == "tool-call"]
        assert call["state"] == "output-error", (backend, name)
        assert call["result"] == UNFINISHED_ARGS_ERROR
        assert call["args"] == ('{"city": ' if name == "error_mid_tool_args" else '{"city": "Pa')
