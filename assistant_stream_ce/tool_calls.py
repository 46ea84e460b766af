"""Structured tool calls: each call is a child task of the run.

``controller.start_tool_call(name, fn, ...)`` runs ``await fn(tool)`` in its
own task. The task writes through its own bounded memory object stream; a
forwarder hands what it sends to the run's merger, waiting while the client
is behind, so a tool that produces faster than the client reads waits. The
return value is the result; an exception or a timeout is an error result for
that call only. Results go out in the order the calls began, unless a batch
asks for completion order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._json import encoded_size
from ._merger import Merger
from .assistant_stream_chunk import ToolResultChunk
from .modules.tool_call import generate_openai_style_tool_call_id, tool_result_chunk

__all__ = ["ToolCall", "ToolCallBatch", "ToolCallHandle", "ToolFunction"]

logger = logging.getLogger("assistant_stream_ce")

#: How many unsent items a tool task may queue before its sends wait.
TOOL_STREAM_BUFFER = 16

ResultOrder = Literal["call", "completion"]


class ToolCall:
    """What a tool function receives: its id, name and arguments."""

    def __init__(
        self,
        tool_call_id: str,
        tool_name: str,
        args: dict[str, Any],
        streams_args: bool,
        send: MemoryObjectSendStream[str | tuple[ToolResultChunk, int]],
    ) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.args = args
        self._streams_args = streams_args
        self._send = send

    async def append_args_text(self, args_text_delta: str) -> None:
        """Stream a piece of this call's JSON arguments; waits while the client is behind.

        Only for calls started without ``args``: given arguments are already finished.
        """
        if not self._streams_args:
            raise RuntimeError(
                f"tool call {self.tool_call_id!r} was started with args; its arguments are finished"
            )
        if not isinstance(args_text_delta, str):
            raise TypeError(f"argument text must be str, not {type(args_text_delta).__name__}")
        await self._send.send(args_text_delta)


ToolFunction = Callable[[ToolCall], Awaitable[Any]]


class ToolCallHandle:
    """A started tool call. ``await handle`` gives its result chunk once it is sent."""

    def __init__(self, tool_call_id: str, tool_name: str) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self._result: ToolResultChunk | None = None
        self._event = anyio.Event()

    @property
    def done(self) -> bool:
        return self._result is not None

    def _resolve(self, chunk: ToolResultChunk) -> None:
        self._result = chunk
        self._event.set()

    async def wait(self) -> ToolResultChunk:
        """The result as sent (``is_error`` tells a failure)."""
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
        self._count = 0
        self._next = 0
        self._held: dict[int, tuple[ToolResultChunk, int, ToolCallHandle]] = {}

    def register(self) -> int:
        index = self._count
        self._count += 1
        return index

    def complete(self, index: int, chunk: ToolResultChunk, cost: int, handle: ToolCallHandle) -> None:
        if self._order == "completion":
            self._release(chunk, cost, handle)
            return
        self._held[index] = (chunk, cost, handle)
        while self._next in self._held:
            self._release(*self._held.pop(self._next))
            self._next += 1

    def _release(self, chunk: ToolResultChunk, cost: int, handle: ToolCallHandle) -> None:
        self._merger.result(chunk, cost)
        handle._resolve(chunk)


async def _call_tool(fn: ToolFunction, tool: ToolCall, timeout: float | None) -> tuple[ToolResultChunk, int]:
    """Run the tool function; anything but cancellation becomes an error result."""
    tool_call_id = tool.tool_call_id
    try:
        with anyio.move_on_after(timeout) as scope:
            value = await fn(tool)
            return tool_result_chunk(tool_call_id, value)
        message = f"tool {tool.tool_name!r} timed out after {timeout:g} s"
    except Exception as exc:
        logger.info("tool call %s (%s) failed", tool_call_id, tool.tool_name, exc_info=True)
        message = str(exc) or type(exc).__name__
    return tool_result_chunk(tool_call_id, message, is_error=True)


async def _tool_task(
    fn: ToolFunction,
    tool: ToolCall,
    timeout: float | None,
    send: MemoryObjectSendStream[str | tuple[ToolResultChunk, int]],
) -> None:
    async with send:
        await send.send(await _call_tool(fn, tool, timeout))


async def _forward(
    receive: MemoryObjectReceiveStream[str | tuple[ToolResultChunk, int]],
    merger: Merger,
    sequencer: ToolCallSequencer,
    index: int,
    handle: ToolCallHandle,
) -> None:
    async with receive:
        async for item in receive:
            if isinstance(item, str):
                await merger.wait_for_room()
                merger.args_delta(handle.tool_call_id, item)
            else:
                sequencer.complete(index, *item, handle)


def start_tool_call(
    merger: Merger,
    tg: anyio.abc.TaskGroup,
    sequencer: ToolCallSequencer,
    parent_id: str | None,
    tool_name: str,
    fn: ToolFunction,
    *,
    args: dict[str, Any] | None = None,
    tool_call_id: str | None = None,
    timeout: float | None = None,
) -> ToolCallHandle:
    """Begin a tool call on the wire and start ``fn`` for it in ``tg``."""
    if not callable(fn):
        raise TypeError(f"fn must be an async function taking the tool call, not {fn!r}")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    if args is not None and not isinstance(args, dict):
        raise TypeError(f"args must be a dict, not {type(args).__name__}")
    tool_call_id = tool_call_id or generate_openai_style_tool_call_id()
    args_text = None
    if args is not None:
        encoded_size(args, f"the args of tool call {tool_call_id!r}")
        args_text = msgspec.json.encode(args).decode()
    merger.begin_tool(tool_call_id, tool_name, parent_id)
    if args_text is not None:
        merger.args_delta(tool_call_id, args_text)
        merger.finish_args(tool_call_id)
    send, receive = anyio.create_memory_object_stream[str | tuple[ToolResultChunk, int]](TOOL_STREAM_BUFFER)
    tool = ToolCall(tool_call_id, tool_name, args or {}, args is None, send)
    handle = ToolCallHandle(tool_call_id, tool_name)
    tg.start_soon(_forward, receive, merger, sequencer, sequencer.register(), handle)
    tg.start_soon(_tool_task, fn, tool, timeout, send, name=f"tool {tool_name} {tool_call_id}")
    return handle


class ToolCallBatch:
    """Parallel tool calls that finish together (``async with controller.tool_calls()``).

    The block exits once every call started in it has sent its result. If the
    block raises, its unfinished calls are cancelled.
    """

    def __init__(self, merger: Merger, parent_id: str | None, order: ResultOrder) -> None:
        self._merger = merger
        self._parent_id = parent_id
        self._sequencer = ToolCallSequencer(merger, order)
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> ToolCallBatch:
        if self._tg is not None:
            raise RuntimeError("a tool call batch can be entered once")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        tg, self._tg = self._tg, None
        if exc_type is not None:
            tg.cancel_scope.cancel()
        # Exit without the body's exception so that it propagates as itself, not in a group.
        await tg.__aexit__(None, None, None)

    def start(
        self,
        tool_name: str,
        fn: ToolFunction,
        *,
        args: dict[str, Any] | None = None,
        tool_call_id: str | None = None,
        timeout: float | None = None,
    ) -> ToolCallHandle:
        """Start one call of the batch (the arguments of ``start_tool_call``)."""
        if self._tg is None:
            raise RuntimeError("start() is only valid inside `async with controller.tool_calls() as calls:`")
        return start_tool_call(
            self._merger, self._tg, self._sequencer, self._parent_id, tool_name, fn,
            args=args, tool_call_id=tool_call_id, timeout=timeout,
        )
