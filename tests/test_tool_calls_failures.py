"""Tool calls that end oddly: a cancellation that is not the run's, a cancelled run, a hook for error texts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import anyio.lowlevel
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    Run,
    RunController,
    RunOutcome,
    ToolCall,
    ToolCallHandle,
    ToolResultChunk,
    create_run,
)

if TYPE_CHECKING:
    from conftest import Consume

pytestmark = pytest.mark.anyio


async def cancelled_elsewhere(how: str) -> NoReturn:
    """Raise the backend's cancellation exception while no scope of the caller is cancelled.

    ``future``: await an asyncio future that someone else cancelled. ``escaped``:
    re-raise a cancellation caught inside a scope that has been left since.
    """
    if how == "future":
        import asyncio

        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future
        raise AssertionError("unreachable")
    caught: BaseException | None = None
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class() as exc:
            caught = exc
    assert caught is not None
    raise caught


async def leave_once(run: Run, form: str, ready: anyio.Event | None = None) -> None:
    """Read ``run`` in ``form`` until its first chunk (and ``ready``), then leave it: the run is cancelled."""
    if form == "structured":
        async with run as chunks:
            async for _ in chunks:
                if ready is not None:
                    await ready.wait()
                break
    else:
        async for _ in run:
            if ready is not None:
                await ready.wait()
            break
        await run.aclose()


def results(chunks: list[AssistantStreamChunk]) -> list[tuple[str, Any, bool]]:
    return [(c.tool_call_id, c.result, c.is_error) for c in chunks if isinstance(c, ToolResultChunk)]


# A future that someone else cancelled exists only on asyncio; a cancellation escaping its scope, on both.
@pytest.mark.parametrize(("anyio_backend", "how"), [("asyncio", "future"), ("asyncio", "escaped"), ("trio", "escaped")])
async def test_a_cancellation_that_is_not_the_runs_gives_an_error_result(
    anyio_backend: str, consume: Consume, how: str
) -> None:
    outcomes: list[RunOutcome] = []
    later: list[ToolResultChunk] = []

    async def stray(tool: ToolCall) -> None:
        await cancelled_elsewhere(how)

    async def fine(tool: ToolCall) -> str:
        return "fine"

    async def callback(controller: RunController) -> None:
        controller.start_tool_call("stray", stray, args={}, tool_call_id="call_1")
        after = controller.start_tool_call("fine", fine, args={}, tool_call_id="call_2")
        async with controller.tool_calls() as calls:
            calls.start("stray", stray, args={}, tool_call_id="call_3")
            handle = calls.start("fine", fine, args={}, tool_call_id="call_4")
            later.append(await handle)  # in the batch: waits behind call_3, which ends
        later.append(await after)
        controller.append_text("done")

    chunks = await consume(create_run(callback, on_finish=outcomes.append))

    assert sorted(results(chunks)) == [
        ("call_1", "tool 'stray' was cancelled", True),
        ("call_2", "fine", False),
        ("call_3", "tool 'stray' was cancelled", True),
        ("call_4", "fine", False),
    ]
    assert [chunk.result for chunk in later] == ["fine", "fine"]
    [outcome] = outcomes
    assert outcome.status == "completed"
    assert outcome.message.text == "done"


async def test_handles_of_start_tool_call_resolve_when_the_run_is_cancelled(anyio_backend: str, form: str) -> None:
    awaited_in_cleanup: list[ToolResultChunk] = []
    outcomes: list[RunOutcome] = []
    started = anyio.Event()

    async def waits(tool: ToolCall) -> None:
        started.set()
        await anyio.sleep_forever()

    async def callback(controller: RunController) -> None:
        handles: list[ToolCallHandle] = []
        try:
            handles.append(controller.start_tool_call("wait", waits, args={}, tool_call_id="call_1"))
            handles.append(controller.start_tool_call("wait", waits, args={}, tool_call_id="call_2"))
            controller.append_text("waiting")
            await anyio.sleep_forever()
        finally:
            with anyio.fail_after(5, shield=True):  # a hang fails the test
                for handle in handles:
                    awaited_in_cleanup.append(await handle)

    with anyio.fail_after(5):
        await leave_once(create_run(callback, on_finish=outcomes.append), form, started)

    assert [(r.tool_call_id, r.result, r.is_error) for r in awaited_in_cleanup] == [
        ("call_1", "tool 'wait' was cancelled", True),
        ("call_2", "tool 'wait' was cancelled", True),
    ]
    [outcome] = outcomes
    assert outcome.status == "cancelled"


async def test_a_handle_of_a_call_cancelled_before_it_ran_resolves(anyio_backend: str, form: str) -> None:
    """A call started once the run is cancelled is cancelled at once; its handle still resolves."""
    awaited_in_cleanup: list[ToolResultChunk] = []

    async def tool(call: ToolCall) -> None:
        await anyio.sleep_forever()

    async def callback(controller: RunController) -> None:
        try:
            controller.append_text("waiting")
            await anyio.sleep_forever()
        finally:
            handle = controller.start_tool_call("late", tool, args={}, tool_call_id="call_late")
            with anyio.fail_after(5, shield=True):  # a hang fails the test
                awaited_in_cleanup.append(await handle)

    with anyio.fail_after(5):
        await leave_once(create_run(callback), form)

    assert [(r.result, r.is_error) for r in awaited_in_cleanup] == [("tool 'late' was cancelled", True)]


async def _fails_in_a_task_group(tool: ToolCall) -> None:
    async def broken() -> None:
        raise LookupError("no such city: Atlantis")

    async with anyio.create_task_group() as tg:
        tg.start_soon(broken)


async def _fails(tool: ToolCall) -> None:
    raise LookupError("no such city: Atlantis")


async def _times_out(tool: ToolCall) -> None:
    await anyio.sleep_forever()


async def _tools_that_fail(controller: RunController) -> None:
    async with controller.tool_calls() as calls:
        calls.start("plain", _fails, args={}, tool_call_id="call_1")
        calls.start("grouped", _fails_in_a_task_group, args={}, tool_call_id="call_2")
        calls.start("slow", _times_out, args={}, tool_call_id="call_3", timeout=0.01)
    controller.start_tool_call("plain", _fails, args={}, tool_call_id="call_4")


async def test_tool_errors_are_worded_by_the_runs_error_message_hook(anyio_backend: str, consume: Consume) -> None:
    chunks = await consume(create_run(_tools_that_fail))
    assert results(chunks) == [
        ("call_1", "no such city: Atlantis", True),
        ("call_2", "no such city: Atlantis", True),  # the exception inside the group, not the group's text
        ("call_3", "tool 'slow' timed out after 0.01 s", True),
        ("call_4", "no such city: Atlantis", True),
    ]

    seen: list[BaseException] = []

    def hook(exc: BaseException) -> str:
        seen.append(exc)
        return f"lookup failed ({type(exc).__name__})"

    chunks = await consume(create_run(_tools_that_fail, error_message=hook))
    assert results(chunks) == [
        ("call_1", "lookup failed (LookupError)", True),
        ("call_2", "lookup failed (LookupError)", True),
        ("call_3", "tool 'slow' timed out after 0.01 s", True),  # the library's own text: nothing to hide
        ("call_4", "lookup failed (LookupError)", True),
    ]
    assert [type(exc) for exc in seen] == [LookupError] * 3


async def test_a_raising_hook_gives_tool_errors_the_default_text(
    anyio_backend: str, consume: Consume, caplog: pytest.LogCaptureFixture
) -> None:
    def hook(exc: BaseException) -> str:
        raise RuntimeError("broken hook")

    with caplog.at_level(logging.ERROR, logger="assistant_stream_ce"):
        chunks = await consume(create_run(_tools_that_fail, error_message=hook))
    assert [text for _, text, _ in results(chunks)] == [
        "no such city: Atlantis",
        "no such city: Atlantis",
        "tool 'slow' timed out after 0.01 s",
        "no such city: Atlantis",
    ]
    assert "error_message hook failed" in caplog.text
