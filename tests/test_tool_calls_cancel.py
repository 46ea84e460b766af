"""Closing the consumer in the middle of a batch of tool calls cancels every call, leaving nothing behind."""

from __future__ import annotations

import gc
import json
from typing import Any

import anyio
import pytest
import sniffio

from assistant_stream_ce import (
    AssistantStreamChunk,
    RunController,
    RunOutcome,
    ToolCall,
    ToolResultChunk,
    create_run,
)
from assistant_stream_ce.message import MessageBuilder

pytestmark = pytest.mark.anyio

CALLS = 12
QUICK = 4  # c0..c3 return at once; the others wait until they are cancelled


def running_tasks() -> int:
    """How many tasks the event loop has right now (trio: the whole task tree)."""
    if sniffio.current_async_library() == "trio":
        import trio

        def count(task: trio.lowlevel.Task) -> int:
            return 1 + sum(count(child) for nursery in task.child_nurseries for child in nursery.child_tasks)

        root = trio.lowlevel.current_root_task()
        assert root is not None
        return count(root)
    import asyncio

    return len(asyncio.all_tasks())


class Tools:
    """Tool functions that count themselves in and out."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.cleaned_up: list[str] = []

    @property
    def active(self) -> int:
        return len(self.entered) - len(self.cleaned_up)

    async def tool(self, tool: ToolCall) -> Any:
        self.entered.append(tool.tool_call_id)
        try:
            number = int(tool.tool_call_id[1:])
            await tool.append_args_text(json.dumps({"n": number}))
            if number < QUICK:
                return number
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()  # cleanup that awaits still runs to the end
            self.cleaned_up.append(tool.tool_call_id)


def results_in(chunks: list[AssistantStreamChunk]) -> list[str]:
    return [chunk.tool_call_id for chunk in chunks if isinstance(chunk, ToolResultChunk)]


@pytest.mark.parametrize("order", ["call", "completion"])
@pytest.mark.parametrize("how", ["aclose", "break", "async_with"])
async def test_closing_the_consumer_mid_batch_cancels_every_tool(anyio_backend: str, how: str, order: Any) -> None:
    tools = Tools()
    outcomes: list[RunOutcome] = []
    finished = anyio.Event()

    def on_finish(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        finished.set()

    async def callback(controller: RunController) -> None:
        async with controller.tool_calls(order=order) as calls:
            for number in range(CALLS):
                calls.start("tool", tools.tool, tool_call_id=f"c{number}")
        controller.append_text("not reached")

    seen: list[AssistantStreamChunk] = []
    tasks_mid_run = 0

    async def reached_cancel_point(chunk: AssistantStreamChunk) -> bool:
        """True once the quick results are out and every other tool is waiting."""
        nonlocal tasks_mid_run
        seen.append(chunk)
        if len(results_in(seen)) < QUICK:
            return False
        await anyio.wait_all_tasks_blocked()
        tasks_mid_run = running_tasks()
        return True

    before = running_tasks()
    with anyio.fail_after(10):
        if how == "aclose":
            run = create_run(callback, on_finish=on_finish)
            async for chunk in run:
                if await reached_cancel_point(chunk):
                    break
            await run.aclose()
            with pytest.raises(StopAsyncIteration):
                await anext(run)
            del run
        elif how == "break":
            async for chunk in create_run(callback, on_finish=on_finish):
                if await reached_cancel_point(chunk):
                    break  # the run is dropped here: that cancels it
            del chunk
            gc.collect()
        else:
            async with create_run(callback, on_finish=on_finish) as chunks:
                async for chunk in chunks:
                    if await reached_cancel_point(chunk):
                        break
        await finished.wait()
        await anyio.wait_all_tasks_blocked()

    assert tasks_mid_run > before + CALLS - QUICK  # the tool tasks were really running at the cancel point
    assert sorted(tools.entered) == sorted(f"c{number}" for number in range(CALLS))
    assert sorted(tools.cleaned_up) == sorted(tools.entered)  # every finally ran to its end
    assert tools.active == 0
    assert running_tasks() == before  # no task outlives the run
    [outcome] = outcomes
    assert outcome.status == "cancelled"
    # Nothing after the cancel point: the run's record of what was sent is exactly what was read.
    builder = MessageBuilder()
    for chunk in seen:
        builder.add(chunk)
    assert outcome.message == builder.message
    assert sorted(results_in(seen)) == [f"c{number}" for number in range(QUICK)]
    assert [part.has_result for part in outcome.message.tool_calls] == [n < QUICK for n in range(CALLS)]
    assert outcome.message.text == ""
