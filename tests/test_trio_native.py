"""A run inside a plain trio program: trio's own nurseries, channels, cancel scopes and events.

These use pytest-trio (``@pytest.mark.trio``), not AnyIO's plugin, and one
runs ``trio.run`` itself, the way a trio application would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from assistant_stream_ce import (
    AssistantStreamChunk,
    DataChunk,
    RunController,
    RunOutcome,
    TextDeltaChunk,
    ToolCall,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolResultChunk,
    create_run,
)


async def _chat(controller: RunController) -> None:
    """A callback written with trio's own primitives."""
    send, receive = trio.open_memory_channel[AssistantStreamChunk](0)
    fed = trio.Event()

    async def feed() -> AsyncIterator[AssistantStreamChunk]:
        try:
            async with receive:
                async for chunk in receive:
                    yield chunk
        finally:
            fed.set()  # everything it yielded is in the run's output by now

    async def lookup(call: ToolCall) -> dict[str, str]:
        await trio.sleep(0.01)
        return {"answer": call.args["q"].upper()}

    controller.add_stream(feed())
    async with send, trio.open_nursery() as nursery:
        nursery.start_soon(send.send, DataChunk("from a trio channel"))
    await fed.wait()
    await controller.start_tool_call("lookup", lookup, args={"q": "hi"}, tool_call_id="call_1")
    controller.append_text("done")


EXPECTED = [
    DataChunk("from a trio channel"),
    ToolCallBeginChunk("call_1", "lookup"),
    ToolCallArgsFinishChunk("call_1"),
    ToolResultChunk("call_1", {"answer": "HI"}),
    TextDeltaChunk("done"),
]


def _without_args(chunks: list[AssistantStreamChunk]) -> list[AssistantStreamChunk]:
    return [chunk for chunk in chunks if chunk.type != "tool-call-delta"]


@pytest.mark.trio
async def test_structured_run_in_a_trio_nursery() -> None:
    results: list[list[AssistantStreamChunk]] = []

    async def consumer() -> None:
        async with create_run(_chat) as chunks:
            results.append([chunk async for chunk in chunks])

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            nursery.start_soon(consumer)
    assert [_without_args(chunks) for chunks in results] == [EXPECTED, EXPECTED]


@pytest.mark.trio
async def test_async_for_run_under_trio() -> None:
    with trio.fail_after(5):
        chunks = [chunk async for chunk in create_run(_chat)]
    assert _without_args(chunks) == EXPECTED


@pytest.mark.trio
async def test_trio_cancel_scope_cancels_the_run() -> None:
    cleaned_up = trio.Event()
    outcomes: list[RunOutcome] = []
    seen: list[bool] = []

    async def forever(controller: RunController) -> None:
        controller.append_text("started")
        try:
            await trio.sleep_forever()
        finally:
            seen.append(controller.is_cancelled)
            cleaned_up.set()

    with trio.move_on_after(5) as deadline:
        async for chunk in create_run(forever, on_finish=outcomes.append):
            assert chunk == TextDeltaChunk("started")
            deadline.cancel()
    assert deadline.cancelled_caught
    with trio.fail_after(5):
        await cleaned_up.wait()
        await trio.testing.wait_all_tasks_blocked()
    assert seen == [True]
    assert [(outcome.status, outcome.message.text) for outcome in outcomes] == [("cancelled", "started")]


def test_a_plain_trio_program() -> None:
    """``trio.run`` with no test plugin involved: the run is just another trio task."""

    async def main() -> list[AssistantStreamChunk]:
        with trio.fail_after(5):
            async with create_run(_chat) as chunks:
                return [chunk async for chunk in chunks]

    assert _without_args(trio.run(main)) == EXPECTED
