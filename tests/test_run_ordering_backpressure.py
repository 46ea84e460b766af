"""Order, coalescing while the consumer lags, and backpressure for ``add_stream``."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from assistant_stream_ce import (
    AnnotationsChunk,
    AssistantStreamChunk,
    DataChunk,
    ErrorChunk,
    FileChunk,
    ReasoningDeltaChunk,
    RunController,
    SourceChunk,
    StepFinishChunk,
    StepStartChunk,
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

WRITES = 2_000


@pytest.mark.parametrize("lagging", [False, True], ids=["reading", "lagging"])
async def test_every_kind_of_chunk_comes_out_in_the_order_written(
    anyio_backend: str, consume: Consume, lagging: bool
) -> None:
    """No two writes in a row coalesce here, so the stream is exactly the writes, lagging consumer or not."""

    async def pause() -> None:
        if not lagging:
            await anyio.lowlevel.checkpoint()

    async def callback(controller: RunController) -> None:
        controller.append_text("Hi")
        await pause()
        controller.append_reasoning("think")
        await pause()
        controller.with_parent_id("p1").append_text("nested")
        await pause()
        tool = await controller.add_tool_call("lookup", "call_1")
        tool.append_args_text('{"q": 1}')
        await pause()
        controller.add_data({"k": [1, 2]})
        tool.set_response("found", artifact={"raw": 1})
        await pause()
        controller.add_source("s1", "https://example.com", "Example")
        controller.add_file("aGk=", "text/plain")
        controller.add_annotations([{"a": 1}])
        await pause()
        controller.state = {"n": 1}
        controller.add_step_start("m1")
        controller.add_step_finish("stop", 3, 4)
        controller.add_error("careful")
        controller.append_text("bye")

    chunks = await consume(create_run(callback))

    assert chunks == [
        TextDeltaChunk("Hi"),
        ReasoningDeltaChunk("think"),
        TextDeltaChunk("nested", parent_id="p1"),
        ToolCallBeginChunk("call_1", "lookup"),
        ToolCallDeltaChunk("call_1", '{"q": 1}'),
        DataChunk({"k": [1, 2]}),
        ToolCallArgsFinishChunk("call_1"),
        ToolResultChunk("call_1", "found", artifact={"raw": 1}),
        SourceChunk("s1", "https://example.com", title="Example"),
        FileChunk("aGk=", "text/plain"),
        AnnotationsChunk([{"a": 1}]),
        UpdateStateChunk([{"type": "set", "path": [], "value": {"n": 1}}]),
        StepStartChunk("m1"),
        StepFinishChunk("stop", 3, 4),
        ErrorChunk("careful"),
        TextDeltaChunk("bye"),
    ]


async def test_concurrent_writers_keep_their_own_order(anyio_backend: str, consume: Consume) -> None:
    """Two substreams and the callback write at random moments: each writer's items arrive in its order, none lost."""
    rng = random.Random(7)
    count = 200

    async def source(name: str) -> AsyncIterator[AssistantStreamChunk]:
        for i in range(count):
            if rng.random() < 0.5:
                await anyio.lowlevel.checkpoint()
            yield DataChunk([name, i])

    async def callback(controller: RunController) -> None:
        controller.add_stream(source("a"))
        controller.add_stream(source("b"))
        for i in range(count):
            if rng.random() < 0.5:
                await anyio.lowlevel.checkpoint()
            controller.add_data(["cb", i])

    chunks = await consume(create_run(callback))

    assert all(type(chunk) is DataChunk for chunk in chunks)
    for writer in ("a", "b", "cb"):
        assert [chunk.data[1] for chunk in chunks if chunk.data[0] == writer] == list(range(count))  # type: ignore[union-attr]


WRITERS: dict[str, Callable[[RunController, int], None]] = {
    "append_text": lambda c, i: c.append_text("x"),
    "append_reasoning": lambda c, i: c.append_reasoning("x"),
    "state_set_same_key": lambda c, i: c.state.__setitem__("n", i),
    "state_append_text": lambda c, i: c.append_state_text(["log"], "x"),
}


@pytest.mark.parametrize("writer", WRITERS)
async def test_writes_coalesce_while_the_consumer_is_stalled(anyio_backend: str, writer: str) -> None:
    """However many writes happen while the consumer waits, it then receives one chunk for them."""
    write = WRITERS[writer]
    written = anyio.Event()

    async def callback(controller: RunController) -> None:
        controller.add_data("start")
        for i in range(WRITES):
            write(controller, i)
            await anyio.lowlevel.checkpoint()  # the consumer could run here, but it is stalled
        written.set()

    with anyio.fail_after(10):
        async with create_run(callback, state={"n": -1, "log": ""}) as chunks:
            first = await chunks.__anext__()
            await written.wait()
            rest = [chunk async for chunk in chunks]

    assert first == DataChunk("start")
    expected = {
        "append_text": TextDeltaChunk("x" * WRITES),
        "append_reasoning": ReasoningDeltaChunk("x" * WRITES),
        "state_set_same_key": UpdateStateChunk([{"type": "set", "path": ["n"], "value": WRITES - 1}]),
        "state_append_text": UpdateStateChunk([{"type": "append-text", "path": ["log"], "value": "x" * WRITES}]),
    }[writer]
    assert rest == [expected]


async def test_text_written_while_the_consumer_is_stalled_arrives_whole_and_in_order(anyio_backend: str) -> None:
    """Distinct deltas, short ones and long ones, join into one chunk in the order written, however long it grows."""
    deltas = [f"{i}," for i in range(400)] + ["y" * 300, "z"] + [f"<{i}>" for i in range(50)]
    written = anyio.Event()

    async def callback(controller: RunController) -> None:
        controller.add_data("start")
        for delta in deltas:
            controller.append_text(delta)
            await anyio.lowlevel.checkpoint()  # the consumer could run here, but it is stalled
        written.set()

    with anyio.fail_after(10):
        async with create_run(callback) as chunks:
            await chunks.__anext__()
            await written.wait()
            rest = [chunk async for chunk in chunks]

    assert rest == [TextDeltaChunk("".join(deltas))]


async def test_tool_arguments_coalesce_per_call_while_the_consumer_is_stalled(anyio_backend: str) -> None:
    written = anyio.Event()

    async def callback(controller: RunController) -> None:
        first = await controller.add_tool_call("a", "call_a")
        second = await controller.add_tool_call("b", "call_b")
        for _ in range(WRITES):
            first.append_args_text("1")
            second.append_args_text("2")
            await anyio.lowlevel.checkpoint()
        first.close()
        second.close()
        written.set()

    with anyio.fail_after(10):
        async with create_run(callback) as chunks:
            await written.wait()
            received = [chunk async for chunk in chunks]

    assert received == [
        ToolCallBeginChunk("call_a", "a"),
        ToolCallBeginChunk("call_b", "b"),
        ToolCallDeltaChunk("call_a", "1" * WRITES),
        ToolCallDeltaChunk("call_b", "2" * WRITES),
        ToolCallArgsFinishChunk("call_a"),
        ToolCallArgsFinishChunk("call_b"),
    ]


async def test_add_stream_blocks_its_producer_while_the_consumer_stalls(anyio_backend: str) -> None:
    pulled = 0
    closed = anyio.Event()

    async def endless() -> AsyncIterator[AssistantStreamChunk]:
        nonlocal pulled
        try:
            while True:
                pulled += 1
                yield DataChunk("x" * 1024)
        finally:
            closed.set()

    async def callback(controller: RunController) -> None:
        controller.add_stream(endless())

    with anyio.fail_after(10):
        async with create_run(callback) as chunks:
            await anyio.wait_all_tasks_blocked()
            stalled = pulled
            # About 64 KiB of 1 KiB chunks are buffered, then the reader waits.
            assert 0 < stalled < 100
            await anyio.wait_all_tasks_blocked()
            assert pulled == stalled

            received = 0
            for _ in range(3 * stalled):
                await chunks.__anext__()
                received += 1
            await anyio.wait_all_tasks_blocked()
            # Reading lets the producer go on, but never much further than what was read.
            assert received < pulled < received + 100
        await closed.wait()
