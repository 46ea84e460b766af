"""A failing run: an error chunk, then the very exception, in both consumption forms."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    DanglingToolCallWarning,
    ErrorChunk,
    Run,
    RunController,
    RunOutcome,
    TextDeltaChunk,
    ToolCall,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    create_run,
)

if TYPE_CHECKING:
    from conftest import Consume

pytestmark = pytest.mark.anyio


async def _read(run: Run, form: str, received: list[AssistantStreamChunk]) -> None:
    with anyio.fail_after(5):
        if form == "structured":
            async with run as chunks:
                async for chunk in chunks:
                    received.append(chunk)
        else:
            async for chunk in run:
                received.append(chunk)


async def _consume_until_error(run: Run, form: str) -> tuple[list[AssistantStreamChunk], BaseException]:
    """Read the run in ``form``, keeping what came before the exception it raises."""
    received: list[AssistantStreamChunk] = []
    with pytest.raises(BaseException) as raised:  # noqa: PT011 - the callers check what was raised
        await _read(run, form, received)
    return received, raised.value


async def test_callback_raising_gives_an_error_chunk_then_the_same_exception(anyio_backend: str, form: str) -> None:
    boom = ValueError("the model is down")
    outcomes: list[RunOutcome] = []

    async def callback(controller: RunController) -> None:
        controller.append_text("partial")
        await anyio.lowlevel.checkpoint()
        raise boom

    chunks, raised = await _consume_until_error(create_run(callback, on_finish=outcomes.append), form)

    assert chunks == [TextDeltaChunk("partial"), ErrorChunk("the model is down")]
    assert raised is boom
    [outcome] = outcomes
    assert (outcome.status, outcome.error) == ("error", boom)
    assert outcome.message.text == "partial"
    assert outcome.message.errors == ["the model is down"]


async def test_error_text_is_configurable_and_never_empty(anyio_backend: str, form: str) -> None:
    async def bare(controller: RunController) -> None:
        raise KeyError

    chunks, raised = await _consume_until_error(create_run(bare), form)
    assert chunks == [ErrorChunk("KeyError")]
    assert type(raised) is KeyError

    chunks, raised = await _consume_until_error(create_run(bare, error_message=lambda exc: "sorry"), form)
    assert chunks == [ErrorChunk("sorry")]
    assert type(raised) is KeyError


async def test_a_failing_substream_fails_the_run_and_cancels_the_rest(anyio_backend: str, form: str) -> None:
    boom = RuntimeError("feed broke")
    tool_finally = anyio.Event()

    async def feed() -> AsyncIterator[AssistantStreamChunk]:
        yield TextDeltaChunk("a")
        raise boom

    async def tool(call: ToolCall) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            tool_finally.set()

    async def callback(controller: RunController) -> None:
        controller.start_tool_call("wait", tool, args={}, tool_call_id="call_1")
        controller.add_stream(feed())
        await anyio.sleep_forever()

    chunks, raised = await _consume_until_error(create_run(callback), form)

    assert raised is boom
    assert chunks[-1] == ErrorChunk("feed broke")
    assert TextDeltaChunk("a") in chunks
    assert tool_finally.is_set()


async def test_writes_after_the_error_do_not_reach_the_stream(anyio_backend: str, form: str) -> None:
    boom = ValueError("first")

    async def failing_child(controller: RunController) -> AsyncIterator[AssistantStreamChunk]:
        raise boom
        yield  # pragma: no cover - makes this an async generator

    async def callback(controller: RunController) -> None:
        try:
            controller.add_stream(failing_child(controller))
            await anyio.sleep_forever()
        finally:
            controller.append_text("written while cancelled")

    chunks, raised = await _consume_until_error(create_run(callback), form)
    assert raised is boom
    assert chunks == [ErrorChunk("first")]


async def test_a_dangling_compat_tool_call_is_closed_with_a_warning(anyio_backend: str, consume: Consume) -> None:
    async def callback(controller: RunController) -> None:
        tool = await controller.add_tool_call("search", "call_1")
        tool.append_args_text("{}")

    with pytest.warns(DanglingToolCallWarning, match="call_1"):
        chunks = await consume(create_run(callback))

    assert chunks == [
        ToolCallBeginChunk("call_1", "search"),
        ToolCallDeltaChunk("call_1", "{}"),
        ToolCallArgsFinishChunk("call_1"),
    ]


async def test_a_dangling_tool_call_fails_loudly_under_warnings_as_errors(anyio_backend: str, form: str) -> None:
    async def callback(controller: RunController) -> None:
        await controller.add_tool_call("search", "call_1")

    chunks, raised = await _consume_until_error(create_run(callback), form)
    assert isinstance(raised, DanglingToolCallWarning)
    assert chunks[-2:] == [ToolCallArgsFinishChunk("call_1"), ErrorChunk(str(raised))]


async def test_closed_and_answered_tool_calls_give_no_warning(anyio_backend: str, consume: Consume) -> None:
    async def callback(controller: RunController) -> None:
        (await controller.add_tool_call("client_side", "call_1")).close()
        (await controller.add_tool_call("server_side", "call_2")).set_response(1)

    chunks = await consume(create_run(callback))
    assert len(chunks) == 5


class Abort(BaseException):
    """An application's own BaseException: not an error the run may turn into a result."""


BASE_EXCEPTIONS = [Abort, SystemExit, KeyboardInterrupt]


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS, ids=lambda kind: kind.__name__)
@pytest.mark.parametrize("where", ["callback", "tool", "batch tool", "substream"])
async def test_a_base_exception_ends_the_run_as_an_error_and_reaches_the_consumer_as_itself(
    anyio_backend: str, form: str, kind: type[BaseException], where: str
) -> None:
    stop = kind("stop")
    outcomes: list[RunOutcome] = []
    other_finally = anyio.Event()

    async def raising(call: ToolCall | None = None) -> None:
        await anyio.lowlevel.checkpoint()
        raise stop

    async def feed() -> AsyncIterator[AssistantStreamChunk]:
        await raising()
        yield TextDeltaChunk("never")

    async def sibling(call: ToolCall) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            other_finally.set()

    async def callback(controller: RunController) -> None:
        controller.append_text("partial")
        controller.start_tool_call("sibling", sibling, args={}, tool_call_id="call_0")
        await anyio.lowlevel.checkpoint()
        if where == "callback":
            await raising()
        elif where == "tool":
            controller.start_tool_call("raises", raising, args={}, tool_call_id="call_1")
        elif where == "batch tool":
            async with controller.tool_calls() as calls:
                calls.start("raises", raising, args={}, tool_call_id="call_1")
        else:
            controller.add_stream(feed())
        await anyio.sleep_forever()

    chunks, raised = await _consume_until_error(create_run(callback, on_finish=outcomes.append), form)

    assert raised is stop
    assert TextDeltaChunk("partial") in chunks
    assert chunks[-1] == ErrorChunk("stop")
    assert other_finally.is_set()
    [outcome] = outcomes
    assert (outcome.status, outcome.error) == ("error", stop)


async def _fails_in_a_task_group() -> None:
    async def broken() -> None:
        raise ValueError("the model is down")

    async with anyio.create_task_group() as tg:
        tg.start_soon(broken)


async def test_an_exception_group_is_sent_as_the_exception_inside_it(anyio_backend: str, form: str) -> None:
    async def callback(controller: RunController) -> None:
        await _fails_in_a_task_group()

    chunks, raised = await _consume_until_error(create_run(callback), form)
    assert chunks == [ErrorChunk("the model is down")]
    assert isinstance(raised, ExceptionGroup)

    seen: list[BaseException] = []

    def hook(exc: BaseException) -> str:
        seen.append(exc)
        return f"hook: {exc}"

    chunks, _ = await _consume_until_error(create_run(callback, error_message=hook), form)
    assert chunks == [ErrorChunk("hook: the model is down")]
    assert [type(exc) for exc in seen] == [ValueError]  # the hook gets the exception that matters


async def test_a_failing_run_added_as_a_substream_sends_its_error_once(anyio_backend: str, form: str) -> None:
    boom = RuntimeError("inner run failed")

    async def inner(controller: RunController) -> None:
        controller.append_text("inner text")
        await anyio.lowlevel.checkpoint()
        raise boom

    async def outer(controller: RunController) -> None:
        controller.add_stream(create_run(inner))
        await anyio.sleep_forever()

    outcomes: list[RunOutcome] = []
    chunks, raised = await _consume_until_error(create_run(outer, on_finish=outcomes.append), form)
    assert chunks == [TextDeltaChunk("inner text"), ErrorChunk("inner run failed")]
    assert raised is boom
    [outcome] = outcomes
    assert (outcome.status, outcome.error, outcome.message.errors) == ("error", boom, ["inner run failed"])


async def test_a_substream_error_chunk_before_an_unrelated_end_is_kept(anyio_backend: str, form: str) -> None:
    """Only the error chunk right before the raise counts as its report: others are sent as they are."""

    async def feed() -> AsyncIterator[AssistantStreamChunk]:
        yield ErrorChunk("a warning")
        yield TextDeltaChunk("more")
        raise RuntimeError("then it broke")

    async def callback(controller: RunController) -> None:
        controller.add_stream(feed())
        await anyio.sleep_forever()

    chunks, _ = await _consume_until_error(create_run(callback), form)
    assert chunks == [ErrorChunk("a warning"), TextDeltaChunk("more"), ErrorChunk("then it broke")]


@pytest.mark.parametrize("hook_fault", ["raises", "returns_non_str"])
async def test_a_broken_error_message_hook_falls_back_to_the_default_text(
    anyio_backend: str, form: str, hook_fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    def hook(exc: BaseException) -> str:
        if hook_fault == "raises":
            raise LookupError("no translation")
        return None  # type: ignore[return-value]

    async def callback(controller: RunController) -> None:
        controller.append_text("partial")
        await anyio.lowlevel.checkpoint()
        raise ValueError("the model is down")

    with caplog.at_level(logging.ERROR, logger="assistant_stream_ce"):
        chunks, raised = await _consume_until_error(create_run(callback, error_message=hook), form)

    assert chunks == [TextDeltaChunk("partial"), ErrorChunk("the model is down")]
    assert type(raised) is ValueError
    assert "error_message hook failed" in caplog.text
