"""Shielded cleanup of tools and callbacks: bounded by ``cleanup()``, and never left running by ``aclose()``."""

from __future__ import annotations

import anyio
import pytest
from test_tool_calls_cancel import running_tasks
from test_tool_calls_failures import leave_once

from assistant_stream_ce import RunController, RunOutcome, ToolCall, create_run

pytestmark = pytest.mark.anyio

GRACE = 0.05


async def test_cleanup_blocks_are_cut_off_a_grace_period_after_the_run_stops(anyio_backend: str, form: str) -> None:
    """``sleep_forever`` in every cleanup block, entered before or after the stop: the run still ends."""
    started = anyio.Event()
    cut_off: dict[str, bool] = {}
    outcomes: list[RunOutcome] = []

    async def shields_its_work(tool: ToolCall) -> None:
        with tool.cleanup() as scope:  # entered while the run still runs
            started.set()
            await anyio.sleep_forever()
        cut_off["work"] = scope.cancelled_caught

    async def shields_its_cleanup(tool: ToolCall) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with tool.cleanup() as scope:  # entered under cancellation
                await anyio.sleep_forever()
            cut_off["tool"] = scope.cancelled_caught

    async def callback(controller: RunController) -> None:
        try:
            controller.start_tool_call("work", shields_its_work, args={})
            controller.start_tool_call("cleanup", shields_its_cleanup, args={})
            controller.append_text("working")
            await anyio.sleep_forever()
        finally:
            with controller.cleanup() as scope:
                await anyio.sleep_forever()
            cut_off["callback"] = scope.cancelled_caught

    before = running_tasks()
    with anyio.fail_after(5):
        await leave_once(create_run(callback, on_finish=outcomes.append, grace_period=GRACE), form, started)

    assert cut_off == {"work": True, "tool": True, "callback": True}
    [outcome] = outcomes
    assert outcome.status == "cancelled"
    await anyio.wait_all_tasks_blocked()  # the producer of `async for` takes one more step to return
    assert running_tasks() == before


async def test_cleanup_blocks_run_to_their_end_while_the_run_goes_on(anyio_backend: str, form: str) -> None:
    """The bound only starts when the run stops: ``cleanup()`` in a run that completes is a plain shield."""
    finished: list[bool] = []

    async def tool(call: ToolCall) -> str:
        with call.cleanup() as scope:
            await anyio.sleep(3 * GRACE)
        finished.append(scope.cancelled_caught)
        return "saved"

    async def callback(controller: RunController) -> None:
        result = await controller.start_tool_call("save", tool, args={})
        with controller.cleanup() as scope:
            await anyio.sleep(3 * GRACE)
        finished.append(scope.cancelled_caught)
        controller.append_text(result.result)

    run = create_run(callback, grace_period=GRACE)
    with anyio.fail_after(5):
        if form == "structured":
            async with run as chunks:
                texts = [chunk.text_delta async for chunk in chunks if chunk.type == "text-delta"]
        else:
            texts = [chunk.text_delta async for chunk in run if chunk.type == "text-delta"]

    assert finished == [False, False]
    assert texts == ["saved"]


async def test_aclose_returns_only_once_every_task_of_the_run_has_ended(anyio_backend: str) -> None:
    """A raw shield that outlasts ``grace_period`` delays ``aclose()``; nothing keeps running after it."""
    started = anyio.Event()
    cleaned_up: list[str] = []
    outcomes: list[RunOutcome] = []

    async def tool(call: ToolCall) -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(4 * GRACE)  # cleanup that takes longer than the grace period
            cleaned_up.append(call.tool_call_id)

    async def callback(controller: RunController) -> None:
        async with controller.tool_calls() as calls:
            for n in range(3):
                calls.start("slow_cleanup", tool, args={}, tool_call_id=f"call_{n}")

    before = running_tasks()
    with anyio.fail_after(5):
        await leave_once(create_run(callback, on_finish=outcomes.append, grace_period=GRACE), "compatible", started)

    assert sorted(cleaned_up) == ["call_0", "call_1", "call_2"]
    assert [outcome.status for outcome in outcomes] == ["cancelled"]
    await anyio.wait_all_tasks_blocked()  # the producer takes one more step to return; the tools may not
    assert running_tasks() == before
