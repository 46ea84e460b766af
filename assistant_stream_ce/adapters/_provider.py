"""What the provider adapters share: reading a model's stream, its tool calls, the agent loop.

An adapter reports a tool call when the model begins it, then its argument
text piece by piece, then the end of its arguments (or of the model's turn).
With a registry of tool functions, each call is a structured tool call of the
run (``controller.start_tool_call``): its task forwards the argument text
live and, once the arguments are complete, parses them and awaits the
function with them as keyword arguments. A call of a tool that needs
approval streams its arguments the same way, then asks for approval (signed
over the complete arguments) instead of running: the agent loop then ends,
leaving the person's decision to the next request. Without a registry, the
calls are streamed with the compatible API and closed for the client to run.

The agent loops continue a conversation whose last turn holds calls a person
decided on (the request's ``tool_approvals()``): approved calls run under
their ids, denied ones send their denial, before the model is called.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterable, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._run import default_error_message, positive_seconds
from ..approval import ToolApproval
from ..assistant_stream_chunk import ToolResultChunk
from ..create_run import RunController
from ..tool_call_controller import ToolCallController, generate_openai_style_tool_call_id, tool_result_chunk
from ..tool_calls import ToolCall, ToolCallHandle

__all__ = [
    "ProviderStreamError",
    "RequestedToolCall",
    "StreamedToolCalls",
    "ToolFunctions",
    "agent_loop",
    "approval_names",
    "continue_decided",
    "read_stream",
    "result_text",
]

#: Seconds a closing provider stream may take after the run was cancelled.
CLOSE_TIMEOUT = 2.0

_Item = TypeVar("_Item")

#: Async functions the model may call, by tool name; called with the call's arguments as keywords.
ToolFunctions = Mapping[str, Callable[..., Awaitable[Any]]]


class ProviderStreamError(Exception):
    """The model provider's stream could not be read (a malformed chunk, for instance)."""


@dataclass
class RequestedToolCall:
    """A tool call the model asked for, as it was streamed."""

    id: str
    name: str
    arguments: str = ""
    #: The running call, when the adapter was given tool functions (``awaiting_approval`` for one
    #: that asked for approval).
    handle: ToolCallHandle | None = None


@dataclass
class _Pending:
    call: RequestedToolCall
    send: MemoryObjectSendStream[str] | None = None
    compat: ToolCallController | None = None
    complete: bool | None = None  # set once the arguments end: did they all arrive?


def result_text(result: Any) -> str:
    """A tool result as the text a model reads back."""
    return result if isinstance(result, str) else json.dumps(result)


async def _run_function(
    functions: ToolFunctions,
    pending: _Pending,
    receive: MemoryObjectReceiveStream[str],
    timeout: float | None,
    tool: ToolCall,
) -> Any:
    """Forward the argument text as it comes, then call the function with the parsed arguments."""
    async with receive:
        async for delta in receive:
            await tool.append_args_text(delta)
    args = _arguments(pending)
    return await _call(_function(functions, tool.tool_name), tool.tool_name, args, timeout)


def _arguments(pending: _Pending) -> dict[str, Any]:
    """The call's complete arguments, parsed; an exception says why they cannot be used."""
    if not pending.complete:
        raise ProviderStreamError("the model's stream ended before the arguments of this call were complete")
    try:
        args = json.loads(pending.call.arguments or "{}")
    except ValueError as exc:
        raise ValueError(f"the arguments are not valid JSON: {exc}") from None
    if not isinstance(args, dict):
        raise TypeError(f"the arguments must be a JSON object, not {type(args).__name__}")
    return args


def _function(functions: ToolFunctions, name: str) -> Callable[..., Awaitable[Any]]:
    function = functions.get(name)
    if function is None:
        raise LookupError(f"unknown tool {name!r}")
    return function


async def _call(function: Callable[..., Awaitable[Any]], name: str, args: dict[str, Any], timeout: float | None) -> Any:
    """``function(**args)``, or a :class:`TimeoutError` after ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        return await function(**args)
    raise TimeoutError(f"tool {name!r} timed out after {timeout:g} s")


async def continue_decided(
    controller: RunController,
    functions: ToolFunctions,
    approvals: Sequence[ToolApproval],
    timeout: float | None = None,
) -> list[tuple[RequestedToolCall, ToolResultChunk]]:
    """Continue the calls a person decided on, in parallel: approved ones run, denied ones send their denial.

    Returns the approved calls with their results, for the conversation (the
    converted messages hold a denied call's result already).
    """
    if timeout is not None:
        positive_seconds(timeout, "tool_timeout")

    async def run(tool: ToolCall) -> Any:
        return await _call(_function(functions, tool.tool_name), tool.tool_name, dict(tool.args), timeout)

    handles = [controller.start_tool_call(approval.tool_name, run, approval=approval) for approval in approvals]
    return [
        (RequestedToolCall(approval.tool_call_id, approval.tool_name, json.dumps(approval.args), handle), await handle)
        for approval, handle in zip(approvals, handles, strict=True)
        if approval.approved
    ]


class StreamedToolCalls:
    """The tool calls of one model turn, keyed by the provider's index for them."""

    def __init__(
        self,
        controller: RunController,
        functions: ToolFunctions | None,
        timeout: float | None = None,
        needs_approval: Collection[str] = (),
    ) -> None:
        if timeout is not None:
            positive_seconds(timeout, "tool_timeout")
        self._controller = controller
        self._functions = functions
        self._timeout = timeout
        self._needs_approval = approval_names(functions, needs_approval)
        self._pending: dict[int, _Pending] = {}

    @property
    def calls(self) -> list[RequestedToolCall]:
        return [pending.call for pending in self._pending.values()]

    async def begin(self, key: int, tool_call_id: str | None, name: str) -> None:
        """The model began a call (a missing id gets one; repeated beginnings are ignored)."""
        if key in self._pending:
            return
        if not isinstance(name, str) or not name:
            raise ProviderStreamError(f"tool call #{key} has no name")
        call = RequestedToolCall(tool_call_id or generate_openai_style_tool_call_id(), name)
        pending = self._pending[key] = _Pending(call)
        functions = self._functions
        if functions is None or name in self._needs_approval:
            pending.compat = await self._controller.add_tool_call(name, call.id)
            return
        send, receive = anyio.create_memory_object_stream[str](math.inf)
        pending.send = send

        async def run(tool: ToolCall) -> Any:
            return await _run_function(functions, pending, receive, self._timeout, tool)

        try:
            call.handle = self._controller.start_tool_call(name, run, tool_call_id=call.id)
        except BaseException:
            send.close()
            receive.close()
            raise

    def args(self, key: int, delta: str) -> None:
        """More argument text of a call begun earlier."""
        pending = self._pending.get(key)
        if pending is None:
            raise ProviderStreamError(f"arguments for tool call #{key}, which was never begun")
        if not isinstance(delta, str):
            raise ProviderStreamError(f"the arguments of tool call #{key} are {type(delta).__name__}, not text")
        if not delta:
            return
        pending.call.arguments += delta
        if pending.compat is not None:
            pending.compat.append_args_text(delta)
        elif pending.send is not None:
            pending.send.send_nowait(delta)

    def finish(self, key: int, *, complete: bool = True) -> None:
        """The arguments of a call are all there (or never will be): run it, or fail it."""
        pending = self._pending.get(key)
        if pending is None or pending.complete is not None:
            return
        pending.complete = complete
        if pending.compat is None:
            if pending.send is not None:
                pending.send.close()
        elif pending.call.name in self._needs_approval:
            _ask_approval(pending, pending.compat)
        else:
            pending.compat.close()

    def end(self, *, complete: bool) -> None:
        """The model's turn ended: finish every call still open."""
        for key in list(self._pending):
            self.finish(key, complete=complete)


def approval_names(functions: ToolFunctions | None, needs_approval: Collection[str]) -> frozenset[str]:
    """The names of the tools that need approval, checked against the tool functions."""
    if isinstance(needs_approval, str):
        raise TypeError("needs_approval takes a collection of tool names, not one str")
    names = frozenset(needs_approval)
    unknown = sorted(names - set(functions or ()))
    if unknown:
        raise ValueError(f"needs_approval names tools without a tool function: {', '.join(unknown)}")
    return names


def _ask_approval(pending: _Pending, compat: ToolCallController) -> None:
    """End a call whose tool needs approval with the request; arguments that cannot be used fail it instead."""
    call = pending.call
    try:
        args = _arguments(pending)
    except (ProviderStreamError, ValueError, TypeError) as exc:
        chunk, _ = tool_result_chunk(call.id, default_error_message(exc), is_error=True)
        compat.set_response(chunk.result, is_error=True)
        call.handle = ToolCallHandle(call.id, call.name)
        call.handle._resolve(chunk)
        return
    compat.request_approval(args)
    call.handle = ToolCallHandle(call.id, call.name, awaiting_approval=True)


async def read_stream(
    stream: AsyncIterable[_Item], handle: Callable[[_Item], Awaitable[None]], tools: StreamedToolCalls
) -> None:
    """Hand every item of a provider's stream to ``handle``, then close the stream.

    What cannot be read or handled is a :class:`ProviderStreamError`. The
    stream is closed however this ends, so that leaving early (the client
    went away) ends the provider's request, and tool calls still open are
    finished: run if the stream was read to its end, failed otherwise.
    """
    iterator = aiter(stream)
    complete = False
    try:
        while True:
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                break
            except ValueError as exc:  # the provider sent something that is not JSON
                raise ProviderStreamError(f"the model provider sent a malformed chunk: {exc}") from exc
            try:
                await handle(item)
            except (ProviderStreamError, AttributeError, TypeError, KeyError, IndexError) as exc:
                raise ProviderStreamError(f"the model provider sent a malformed chunk: {exc}") from exc
        complete = True
    finally:
        tools.end(complete=complete)
        close = getattr(stream, "close", None)
        if close is not None:
            with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await close()


class Turn(Protocol):
    """One streamed model response, as the agent loop needs it."""

    tool_calls: list[RequestedToolCall]

    def to_message(self) -> dict[str, Any]: ...


async def agent_loop(
    messages: Sequence[Mapping[str, Any]],
    max_steps: int,
    step: Callable[[list[dict[str, Any]]], Awaitable[Turn]],
    tool_results: Callable[[list[tuple[RequestedToolCall, ToolResultChunk]]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Call ``step`` with the conversation, add its results, until a turn asks for no tools
    (or one of its calls asks for approval).

    Returns the conversation: ``messages``, then each turn's message and the
    messages ``tool_results`` makes of its tool calls' results.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, not {max_steps!r}")
    conversation = [dict(message) for message in messages]
    for _ in range(max_steps):
        turn = await step(conversation)
        conversation.append(turn.to_message())
        if not turn.tool_calls:
            break
        done = []
        for call in turn.tool_calls:
            assert call.handle is not None, "the agent loop runs its tools"
            if not call.handle.awaiting_approval:
                done.append((call, await call.handle))
        conversation.extend(tool_results(done))
        if len(done) < len(turn.tool_calls):  # a call waits for a person: the next request continues it
            break
    return conversation
