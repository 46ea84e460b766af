"""Edge cases where a real client used to stumble, served as HTTP responses and decoded by the real clients.

Each run goes through an :class:`AssistantStreamResponse` driven as an ASGI
app (on asyncio and trio), and the body goes to the client of its format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from conformance_helpers import adecode, decode_openai

from assistant_stream_ce import RunController, RunOutcome, create_run
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse
from assistant_stream_ce.serialization.openai_stream import OpenAIStreamResponse

pytestmark = pytest.mark.anyio

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


async def test_128_tool_calls_go_out_whole(anyio_backend: str) -> None:
    body = await serve(OpenAIStreamResponse(create_run(client_side_calls(128))))
    (npm,) = await adecode("openai-npm", [body])
    for shown in (npm.clean(), decode_openai(body).clean()):
        assert shown["finish_reason"] == "tool_calls"
        assert [call["arguments"] for call in shown["tool_calls"]] == [f'{{"i": {i}}}' for i in range(128)]
