"""Shutting down with runs in flight: each stream ends with its format's closing frames for a cancelled run.

In process, on both backends: a response cancelled from outside (what a
server does to the requests still open at the end of its graceful timeout)
ends its body with the closing frames; :class:`GracefulShutdown` answers
new requests with 503 once it began and gives the running ones its deadline.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from http_servers.apps import FORMATS
from test_http_response import Client, LineEncoder, Outcomes

from assistant_stream_ce import AssistantStreamChunk, RunController, TextDeltaChunk, create_run
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse

pytestmark = pytest.mark.anyio

FIRST_WORDS = "The first words, then nothing until the deadline."
SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}
#: What differs between two streams of the same chunks: generated ids and the creation time.
_FRESH = re.compile(rb"(?:msg|run|thread|chatcmpl)-[A-Za-z0-9-]+|\"created\":\d+")


def same_frames(body: bytes) -> bytes:
    return _FRESH.sub(b"<fresh>", body)


class Cleanup:
    """What a held stream's ``finally`` block saw."""

    def __init__(self) -> None:
        self.ran = False


def held_run(cleanup: Cleanup) -> Any:
    async def run(controller: RunController) -> None:
        try:
            controller.append_text(FIRST_WORDS)
            await anyio.sleep_forever()
        finally:
            cleanup.ran = True

    return run


async def held_chunks(cleanup: Cleanup) -> AsyncIterator[AssistantStreamChunk]:
    try:
        yield TextDeltaChunk(text_delta=FIRST_WORDS)
        await anyio.sleep_forever()
    finally:
        cleanup.ran = True


async def cancel_once_streaming(response: AssistantStreamResponse, client: Client) -> None:
    """Serve ``response``; cancel it from outside once its first words were sent, as a server would."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as server:
            server.start_soon(response, SCOPE, client.receive, client.send)
            await client.wait_for(lambda: FIRST_WORDS.encode() in client.body)
            server.cancel_scope.cancel()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_a_response_cancelled_by_its_server_ends_with_the_closing_frames(fmt: str) -> None:
    cleanup, outcomes, client = Cleanup(), Outcomes(), Client()
    response = FORMATS[fmt][2](held_chunks(cleanup), heartbeat=None, on_finish=outcomes)
    await cancel_once_streaming(response, client)

    writer = response.stream_encoder.open()
    expected = writer.encode(TextDeltaChunk(text_delta=FIRST_WORDS)) + writer.finish("cancelled")
    assert same_frames(client.body) == same_frames(expected)
    assert client.messages[-1]["more_body"] is False
    assert cleanup.ran
    assert outcomes.only.status == "cancelled"


async def test_a_run_cancelled_by_its_server_runs_its_cleanup_and_reports_cancelled() -> None:
    cleanup, outcomes, client = Cleanup(), Outcomes(), Client()
    response = AssistantStreamResponse(create_run(held_run(cleanup)), LineEncoder(), None, on_finish=outcomes)
    await cancel_once_streaming(response, client)

    assert client.lines[-1] == "end:cancelled"
    assert client.messages[-1]["more_body"] is False
    assert cleanup.ran
    assert outcomes.only.status == "cancelled"
    assert outcomes.only.message.text == FIRST_WORDS


async def test_a_response_cancelled_before_its_start_still_sends_a_whole_response() -> None:
    cleanup, outcomes, client = Cleanup(), Outcomes(), Client()
    response = AssistantStreamResponse(create_run(held_run(cleanup)), LineEncoder(), None, on_finish=outcomes)
    with anyio.fail_after(10), anyio.CancelScope() as server:
        server.cancel()
        await response(SCOPE, client.receive, client.send)

    assert [message["type"] for message in client.messages] == ["http.response.start", "http.response.body"]
    assert client.lines == ["end:cancelled"]
    assert client.messages[-1]["more_body"] is False
    assert outcomes.only.status == "cancelled"


async def test_a_send_stuck_while_closing_is_given_up_after_send_timeout() -> None:
    cleanup, outcomes = Cleanup(), Outcomes()
    client = Client(stall_after=2)  # the start and the first words go; the closing frames never do
    response = AssistantStreamResponse(
        create_run(held_run(cleanup)), LineEncoder(), None, send_timeout=0.05, on_finish=outcomes
    )
    await cancel_once_streaming(response, client)

    assert client.lines[-1] != "end:cancelled"
    assert cleanup.ran
    assert outcomes.only.status == "cancelled"
