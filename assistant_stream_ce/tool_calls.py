"""Structured tool calls: each call is a child task of the run.

``controller.start_tool_call(name, fn, ...)`` emits the call's begin (and its
arguments, when given) at once, then runs ``await fn(tool)`` in a task of its
own. The task writes through its own bounded memory object stream; a
forwarder beside it hands what arrives to the run's merger, waiting while the
client is behind, so a tool that produces faster than the client reads waits.
The return value is the result; an exception or a timeout is an error result
for that call only. A tool function that is an async generator streams its
progress: each value it yields goes out at once as a preliminary result, and
the last one is the final result. Results go out in the order the calls began, unless a
batch asks for completion order.

A call started with ``needs_approval=True`` is announced with its arguments
and an approval request, and ``fn`` does not run in this run. The next
request carries the person's decision (a :class:`ToolApproval`); a call
started with ``approval=`` continues that call under its id: approved, ``fn``
runs with the approved arguments; denied, an error result says so.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _telemetry
from ._json import encoded_size
from ._merger import HIGH_WATER, Merger
from ._run import RunCore, TaskStarter, error_text, positive_seconds
from .approval import ToolApproval, ToolApprovalError, approval_request, canonical_json
from .assistant_stream_chunk import (
    PreliminaryToolResultChunk,
    ToolApprovalResponseChunk,
    ToolResultChunk,
)
from .tool_call_controller import generate_openai_style_tool_call_id, tool_result_chunk

if TYPE_CHECKING:
    from ._run import RunCore

__all__ = ["ToolCall", "ToolCallBatch", "ToolCallHandle", "ToolFunction"]

logger = logging.getLogger("assistant_stream_ce")

#: How many unsent items a tool task may queue before its sends wait.
TOOL_STREAM_BUFFER = 16

ResultOrder = Literal["call", "completion"]

#: What a tool task sends to its forwarder: argument text, then preliminary results and its result, with their cost.
_Item = str | tuple[ToolResultChunk | PreliminaryToolResultChunk, int]


class ToolCall:
    """What a tool function receives: its id, name and decoded arguments."""

    def __init__(
        self,
        tool_call_id: str,
        tool_name: str,
        args: dict[str, Any],
        streams_args: bool,
        send: MemoryObjectSendStream[_Item],
        core: RunCore,
    ) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.args = args
        self._streams_args = streams_args
        self._send = send
        self._core = core

    async def append_args_text(self, args_text_delta: str) -> None:
        """Stream a piece of this call's JSON arguments; waits while the client is behind.

        Only for calls started without ``args``: given arguments are already finished.
        """
        if not self._streams_args:
            raise RuntimeError(f"tool call {self.tool_call_id!r} was started with args; its arguments are finished")
        if not isinstance(args_text_delta, str):
            raise TypeError(f"argument text must be str, not {type(args_text_delta).__name__}")
        # Only wait (a checkpoint) when the call's stream is full: a burst of small deltas
        # costs no task switch each, and still yields at least every TOOL_STREAM_BUFFER sends.
        try:
            self._send.send_nowait(args_text_delta)
        except anyio.WouldBlock:
            await self._send.send(args_text_delta)

    def cleanup(self) -> contextlib.AbstractContextManager[anyio.CancelScope]:
        """Shield cleanup from cancellation, for at most the run's ``grace_period``: ``with tool.cleanup(): ...``.

        The same as the controller's ``cleanup()``.
        """
        return self._core.cleanup()

    def __repr__(self) -> str:
        return f"<ToolCall {self.tool_name} {self.tool_call_id}>"


ToolFunction = Callable[[ToolCall], Awaitable[Any] | AsyncIterator[Any]]
"""``async def fn(tool)`` returning the result, or an async generator yielding preliminary results."""


class ToolCallHandle:
    """A started tool call. ``await handle`` gives its result chunk once it is on its way out.

    In call order that is after the results of the calls started before it.
    """

    def __init__(self, tool_call_id: str, tool_name: str, *, awaiting_approval: bool = False) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.awaiting_approval = awaiting_approval
        """True for a call started with ``needs_approval=True``: it has no result in this run."""
        self._result: ToolResultChunk | None = None
        self._event = anyio.Event()

    @property
    def done(self) -> bool:
        return self._result is not None

    def _resolve(self, chunk: ToolResultChunk) -> None:
        self._result = chunk
        self._event.set()

    async def wait(self) -> ToolResultChunk:
        """The result chunk (``is_error`` tells a failed, timed-out, cancelled or denied call)."""
        if self.awaiting_approval:
            raise RuntimeError(f"tool call {self.tool_call_id!r} waits for approval: it has no result in this run")
        await self._event.wait()
        assert self._result is not None
        return self._result

    def __await__(self) -> Generator[Any, None, ToolResultChunk]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"<ToolCallHandle {self.tool_name} {self.tool_call_id} done={self.done}>"


class ToolCallSequencer:
    """Releases results to the merger in call order, or as they complete."""

    def __init__(self, merger: Merger, order: ResultOrder) -> None:
        if order not in ("call", "completion"):
            raise ValueError(f"order must be 'call' or 'completion', not {order!r}")
        self._merger = merger
        self._order = order
        self._calls: list[ToolCallHandle] = []
        self._next = 0
        self._held: dict[int, tuple[ToolResultChunk, int]] = {}

    def register(self, handle: ToolCallHandle) -> int:
        self._calls.append(handle)
        return len(self._calls) - 1

    def complete(self, index: int, chunk: ToolResultChunk, cost: int) -> None:
        if self._order == "completion":
            self._release(index, chunk, cost)
            return
        self._held[index] = (chunk, cost)
        while self._next in self._held:
            self._release(self._next, *self._held.pop(self._next))
            self._next += 1

    def _release(self, index: int, chunk: ToolResultChunk, cost: int) -> None:
        self._merger.result(chunk, cost)
        self._calls[index]._resolve(chunk)

    def ended(self, index: int) -> None:
        """The call's task ended: if it has no result (it was cancelled), give it an error result.

        So a cancelled call leaves no call open on the wire, releases the
        results held behind it, and resolves its handle.
        """
        handle = self._calls[index]
        if not handle.done and index not in self._held:
            message = _cancelled_text(handle.tool_name)
            self.complete(index, *tool_result_chunk(handle.tool_call_id, message, is_error=True))


async def _call_tool(fn: ToolFunction, tool: ToolCall, timeout: float | None) -> tuple[ToolResultChunk, int]:
    """Run the tool function; anything but the cancellation of the call becomes an error result."""
    try:
        with anyio.move_on_after(timeout):
            return tool_result_chunk(tool.tool_call_id, await _outcome(fn, tool))
        message = f"tool {tool.tool_name!r} timed out after {timeout:g} s"
    except anyio.get_cancelled_exc_class():
        if anyio.current_effective_deadline() == -math.inf:
            raise  # a scope of the call is cancelled: the run, its batch
        # Not a cancellation of this call: something the tool awaited was cancelled by someone else.
        logger.info("tool call %s (%s) was cancelled from elsewhere", tool.tool_call_id, tool.tool_name, exc_info=True)
        message = _cancelled_text(tool.tool_name)
    except Exception as exc:
        logger.info("tool call %s (%s) failed", tool.tool_call_id, tool.tool_name, exc_info=True)
        message = error_text(tool._core.error_message, exc)
    return tool_result_chunk(tool.tool_call_id, message, is_error=True)


async def _outcome(fn: ToolFunction, tool: ToolCall) -> Any:
    """What ``fn(tool)`` returns; for an async generator, each value goes out as a preliminary result,
    and the last one (None if there is none) is the result."""
    called = fn(tool)
    if not inspect.isasyncgen(called):
        return await called  # type: ignore[misc]
    last = None
    async with contextlib.aclosing(called):
        async for last in called:
            what = f"a preliminary result of tool call {tool.tool_call_id!r}"
            chunk = PreliminaryToolResultChunk(tool.tool_call_id, last)
            await tool._send.send((chunk, encoded_size(last, what)))
    return last


def _cancelled_text(tool_name: str) -> str:
    return f"tool {tool_name!r} was cancelled"


def _tool_span(tool: ToolCall) -> dict[str, str | bool]:
    """A call's span attributes: is_error until its tool task sets it (a call ended without a result gets an error)."""
    return {
        _telemetry.TOOL_NAME: tool.tool_name,
        _telemetry.TOOL_CALL_ID: tool.tool_call_id,
        _telemetry.TOOL_IS_ERROR: True,
    }


async def _tool_task(
    fn: ToolFunction, tool: ToolCall, timeout: float | None, send: MemoryObjectSendStream[_Item]
) -> None:
    async with send:
        result = await _call_tool(fn, tool, timeout)
        _telemetry.set_attribute(_telemetry.TOOL_IS_ERROR, result[0].is_error)  # on the call's span
        await send.send(result)


async def _forward(
    receive: MemoryObjectReceiveStream[_Item],
    merger: Merger,
    sequencer: ToolCallSequencer,
    index: int,
    tool_call_id: str,
) -> None:
    """Hand what the tool task sends to the merger, taking items only while there is room."""
    while True:
        await merger.wait_for_room()
        try:
            item = await receive.receive()
            while True:  # take what is queued already without a task switch per item
                if isinstance(item, str):
                    merger.args_delta(tool_call_id, item)
                elif isinstance(chunk := item[0], PreliminaryToolResultChunk):
                    merger.replacing(chunk, item[1])
                else:
                    merger.finish_args(tool_call_id)  # now, even if the result itself waits for earlier calls
                    sequencer.complete(index, chunk, item[1])
                if merger.cost >= HIGH_WATER:  # the rest waits for wait_for_room()
                    break
                item = receive.receive_nowait()
        except anyio.WouldBlock:
            pass
        except anyio.EndOfStream:
            return


async def _run_call(
    fn: ToolFunction,
    tool_call_id: str,
    tool_name: str,
    args: dict[str, Any] | None,
    timeout: float | None,
    core: RunCore,
    sequencer: ToolCallSequencer,
    index: int,
) -> None:
    """One call: the tool function and its forwarder, joined by the call's own stream.

    The stream is made here, so a call cancelled before it ever ran leaves none open.
    The call runs in a scope of the run's, which a cancelled run cancels at once;
    a BaseException of the tool's fails the run from the tool's own task (on
    asyncio, SystemExit or KeyboardInterrupt leaving a task would stop the loop).
    """
    send, receive = anyio.create_memory_object_stream[_Item](TOOL_STREAM_BUFFER)
    tool = ToolCall(tool_call_id, tool_name, args or {}, args is None, send, core)
    task = functools.partial(_tool_task, fn, tool, timeout, send)
    try:
        with _telemetry.span(_telemetry.TOOL_CALL_SPAN, lambda: _tool_span(tool)), send, receive, core.child_scope():
            async with anyio.create_task_group() as tg:
                tg.start_soon(core.guard, task, name=f"tool {tool_name} {tool_call_id}")
                await _forward(receive, core.merger, sequencer, index, tool_call_id)
    finally:
        sequencer.ended(index)


def start_tool_call(
    core: RunCore,
    tg: TaskStarter,
    sequencer: ToolCallSequencer,
    parent_id: str | None,
    tool_name: str,
    fn: ToolFunction,
    *,
    args: dict[str, Any] | None = None,
    tool_call_id: str | None = None,
    timeout: float | None = None,
    needs_approval: bool = False,
    approval: ToolApproval | None = None,
) -> ToolCallHandle:
    """Begin a tool call on the wire and start ``fn`` for it in ``tg``.

    ``needs_approval``: ask for approval instead of running ``fn``.
    ``approval``: continue the call it decides (run ``fn``, or send the denial).
    """
    merger = core.merger
    if not callable(fn):
        raise TypeError(f"fn must be an async function taking the tool call, not {fn!r}")
    if timeout is not None:
        positive_seconds(timeout, "timeout")
    if args is not None and not isinstance(args, dict):
        raise TypeError(f"args must be a dict, not {type(args).__name__}")
    if approval is not None:
        if needs_approval:
            raise ValueError("a call is started either with needs_approval=True or with the approval that decides it")
        return _continue_call(core, tg, sequencer, parent_id, tool_name, fn, args, tool_call_id, timeout, approval)
    if needs_approval and args is None:
        raise ValueError("a call that needs approval takes its arguments as args= (they are what the person approves)")
    tool_call_id = tool_call_id or generate_openai_style_tool_call_id()
    args_text = None
    if args is not None:
        encoded_size(args, f"the args of tool call {tool_call_id!r}")
        encoded = msgspec.json.encode(args)
        args_text = encoded.decode()
        args = msgspec.json.decode(encoded)  # the tool sees exactly what the client sees
    merger.begin_tool(tool_call_id, tool_name, parent_id)
    if args_text is not None:
        merger.args_delta(tool_call_id, args_text)
        merger.finish_args(tool_call_id)
    if needs_approval:
        merger.request_approval(approval_request(tool_call_id, tool_name, args))
        return ToolCallHandle(tool_call_id, tool_name, awaiting_approval=True)
    return _start(core, tg, sequencer, fn, tool_call_id, tool_name, args, timeout)


def _start(
    core: RunCore,
    tg: TaskStarter,
    sequencer: ToolCallSequencer,
    fn: ToolFunction,
    tool_call_id: str,
    tool_name: str,
    args: dict[str, Any] | None,
    timeout: float | None,
) -> ToolCallHandle:
    handle = ToolCallHandle(tool_call_id, tool_name)
    index = sequencer.register(handle)
    tg.start_soon(
        _run_call,
        fn,
        tool_call_id,
        tool_name,
        args,
        timeout,
        core,
        sequencer,
        index,
        name=f"tool call {tool_name} {tool_call_id}",
    )
    return handle


def denial_text(reason: str | None) -> str:
    """The error result of a denied call: what the model and the client read."""
    return "The user denied this tool call." + (f" Reason: {reason}" if reason else "")


def _continue_call(
    core: RunCore,
    tg: TaskStarter,
    sequencer: ToolCallSequencer,
    parent_id: str | None,
    tool_name: str,
    fn: ToolFunction,
    args: dict[str, Any] | None,
    tool_call_id: str | None,
    timeout: float | None,
    approval: ToolApproval,
) -> ToolCallHandle:
    """The call ``approval`` decides, under its id: ``fn`` runs if approved, else the denial is its result."""
    if not isinstance(approval, ToolApproval):
        raise TypeError(f"approval must be a ToolApproval (from a request's tool_approvals()), not {approval!r}")
    if tool_name != approval.tool_name:
        raise ToolApprovalError(
            f"the approval of tool call {approval.tool_call_id!r} is for tool {approval.tool_name!r}, not {tool_name!r}"
        )
    if tool_call_id is not None and tool_call_id != approval.tool_call_id:
        raise ToolApprovalError(f"the approval is for tool call {approval.tool_call_id!r}, not {tool_call_id!r}")
    if args is not None and canonical_json(args) != canonical_json(approval.args):
        raise ToolApprovalError(
            f"the arguments of tool call {approval.tool_call_id!r} differ from the ones the person decided on"
        )
    approval.verify()
    args_text = msgspec.json.encode(approval.args).decode()
    core.merger.continue_call(
        ToolApprovalResponseChunk(
            approval.tool_call_id,
            tool_name,
            args_text,
            approval.approval_id,
            approval.signature,
            approval.approved,
            approval.reason,
            parent_id,
        )
    )
    if approval.approved:
        return _start(core, tg, sequencer, fn, approval.tool_call_id, tool_name, dict(approval.args), timeout)
    handle = ToolCallHandle(approval.tool_call_id, tool_name)
    sequencer.complete(
        sequencer.register(handle),
        *tool_result_chunk(approval.tool_call_id, denial_text(approval.reason), is_error=True),
    )
    return handle


class ToolCallBatch:
    """Parallel tool calls that finish together (``async with controller.tool_calls()``).

    The block exits once every call started in it has its result. If the
    block raises, its unfinished calls are cancelled (each gets an error
    result) and the block's exception propagates as itself.
    """

    def __init__(self, core: RunCore, parent_id: str | None, order: ResultOrder) -> None:
        self._core = core
        self._parent_id = parent_id
        self._sequencer = ToolCallSequencer(core.merger, order)
        self._tg: anyio.abc.TaskGroup | None = None
        self._entered = False

    async def __aenter__(self) -> ToolCallBatch:
        if self._entered:
            raise RuntimeError("a tool call batch can be entered once")
        self._entered = True
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        tg = self._tg
        assert tg is not None
        try:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                return await tg.__aexit__(exc_type, exc, tb)
            if exc is not None:
                tg.cancel_scope.cancel()
            # Exit without the body's exception so that it propagates as itself, not in a group.
            await tg.__aexit__(None, None, None)
            return False
        finally:
            self._tg = None  # calls may start others until here, as in a nursery

    def start(
        self,
        tool_name: str,
        fn: ToolFunction,
        *,
        args: dict[str, Any] | None = None,
        tool_call_id: str | None = None,
        timeout: float | None = None,
        needs_approval: bool = False,
        approval: ToolApproval | None = None,
    ) -> ToolCallHandle:
        """Start one call of the batch (the arguments of ``start_tool_call``)."""
        if self._tg is None:
            raise RuntimeError("start() is only valid inside `async with controller.tool_calls() as calls:`")
        return start_tool_call(
            self._core,
            self._tg,
            self._sequencer,
            self._parent_id,
            tool_name,
            fn,
            args=args,
            tool_call_id=tool_call_id,
            timeout=timeout,
            needs_approval=needs_approval,
            approval=approval,
        )
