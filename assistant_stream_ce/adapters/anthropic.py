"""Anthropic-style message streams into a run (the ``anthropic`` extra).

:func:`stream_message` maps one streamed message (the raw events of
``client.messages.create(..., stream=True)``, or of ``client.messages.stream``)
onto the controller: text deltas become text, thinking deltas become
reasoning, and ``tool_use`` blocks become tool calls whose arguments
(``input_json_delta``) stream live; a tool's arguments are complete at the end
of its block. The message's token usage becomes the run's usage.
:func:`run_messages_agent` loops: it streams a message, runs the
tools the model asked for as structured tool calls of the run, sends their
results back, and repeats until the model answers without tools or the step
limit is reached.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from anthropic import AsyncAnthropic, AsyncStream
from anthropic.types import RawMessageStreamEvent

from ..approval import ToolApproval
from ..assistant_stream_chunk import ToolResultChunk
from ..create_run import RunController
from ._provider import (
    ProviderStreamError,
    RequestedToolCall,
    StreamedToolCalls,
    ToolFunctions,
    agent_loop,
    approval_names,
    continue_decided,
    read_stream,
    result_text,
)

__all__ = [
    "MessageTurn",
    "ProviderStreamError",
    "RequestedToolCall",
    "ToolFunctions",
    "run_messages_agent",
    "stream_message",
]


def _input(arguments: str) -> Any:
    """A tool call's input as the API takes it back: an object, ``{}`` if the text was not one."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class MessageTurn:
    """What the model sent in one streamed message."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[RequestedToolCall] = field(default_factory=list)
    stop_reason: str | None = None
    #: The content blocks by index, as they are sent back (tool inputs are filled in by to_message).
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        """The assistant message to send back in the conversation (thinking and its signature included)."""
        calls = {call.id: call for call in self.tool_calls}
        content = []
        for _, block in sorted(self.blocks.items()):
            if block["type"] == "tool_use" and block["id"] in calls:
                block = {**block, "input": _input(calls[block["id"]].arguments)}
            content.append(block)
        return {"role": "assistant", "content": content}


class _TurnReader:
    def __init__(self, controller: RunController, tools: StreamedToolCalls) -> None:
        self.controller = controller
        self.tools = tools
        self.turn = MessageTurn()
        self._tool_blocks: set[int] = set()
        self._usage: Any = None  # the message's usage so far (message_delta updates it)

    def _text(self, index: int, text: str) -> None:
        if text:
            self.turn.blocks[index]["text"] += text
            self.turn.text += text
            self.controller.append_text(text)

    def _thinking(self, index: int, thinking: str) -> None:
        if thinking:
            self.turn.blocks[index]["thinking"] += thinking
            self.turn.reasoning += thinking
            self.controller.append_reasoning(thinking)

    async def add(self, event: RawMessageStreamEvent) -> None:
        match event.type:
            case "content_block_start":
                await self._start(event.index, event.content_block)
            case "content_block_delta":
                index, delta = event.index, event.delta
                match delta.type:
                    case "text_delta":
                        self._text(index, delta.text)
                    case "thinking_delta":
                        self._thinking(index, delta.thinking)
                    case "signature_delta":
                        self.turn.blocks[index]["signature"] += delta.signature
                    case "input_json_delta" if index in self._tool_blocks:
                        self.tools.args(index, delta.partial_json)
            case "content_block_stop":
                if event.index in self._tool_blocks:
                    self.tools.finish(event.index)
            case "message_start":
                self._usage = event.message.usage
            case "message_delta":
                self.turn.stop_reason = event.delta.stop_reason
                self._update_usage(event.usage)
            case "message_stop":
                self._send_usage()

    def _update_usage(self, delta: Any) -> None:
        """A ``message_delta``'s usage holds the totals so far of the counts it has."""
        if self._usage is None:
            return
        fields = {name: value for name, value in delta.model_dump().items() if value is not None}
        self._usage = self._usage.model_copy(update=fields)

    def _send_usage(self) -> None:
        """The message's usage; Anthropic's ``input_tokens`` leave out the tokens read from or written to the cache."""
        usage = self._usage
        if usage is None:
            return
        cached = usage.cache_read_input_tokens
        written = usage.cache_creation_input_tokens or 0
        self.controller.add_usage(
            usage.input_tokens + (cached or 0) + written, usage.output_tokens, cached_input_tokens=cached
        )

    async def _start(self, index: int, block: Any) -> None:
        blocks = self.turn.blocks
        match block.type:
            case "text":
                blocks[index] = {"type": "text", "text": ""}
                self._text(index, block.text)
            case "thinking":
                blocks[index] = {"type": "thinking", "thinking": "", "signature": block.signature or ""}
                self._thinking(index, block.thinking)
            case "tool_use":
                self._tool_blocks.add(index)
                blocks[index] = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
                await self.tools.begin(index, block.id, block.name)
                if block.input:  # given whole instead of streamed
                    self.tools.args(index, json.dumps(block.input))
            case _:  # other blocks (redacted thinking, server tools) go back as they came
                blocks[index] = block.model_dump(exclude_none=True)


async def stream_message(
    controller: RunController,
    stream: AsyncIterable[RawMessageStreamEvent],
    *,
    tool_functions: ToolFunctions | None = None,
    tool_timeout: float | None = None,
    needs_approval: Collection[str] = (),
) -> MessageTurn:
    """Send one streamed message to the run and return what it said.

    ``stream`` is what ``await client.messages.create(..., stream=True)``
    returns. With ``tool_functions``, every ``tool_use`` block starts as a
    structured tool call of the run, which runs once its block has ended;
    its result is on the call's ``handle``. Without, tool calls are streamed
    and closed for the client to run. A call of a tool named in
    ``needs_approval`` asks for approval once its arguments are complete
    instead of running (its handle is ``awaiting_approval``). An event
    that cannot be read raises :class:`ProviderStreamError`. The stream is closed when this returns or
    raises, so leaving early (the client went away) ends the provider's request.
    """
    tools = StreamedToolCalls(controller, tool_functions, tool_timeout, needs_approval)
    reader = _TurnReader(controller, tools)
    await read_stream(stream, reader.add, tools)
    reader.turn.tool_calls = tools.calls
    return reader.turn


def _tool_results(results: list[tuple[RequestedToolCall, ToolResultChunk]]) -> list[dict[str, Any]]:
    content = [
        {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": result_text(result.result),
            "is_error": result.is_error,
        }
        for call, result in results
    ]
    return [{"role": "user", "content": content}]


def _with_results(
    messages: Sequence[Mapping[str, Any]], results: list[tuple[RequestedToolCall, ToolResultChunk]]
) -> list[Mapping[str, Any]]:
    """``messages`` with ``results`` in a user message after them, joined to a last user message of blocks
    (one message per turn, tool results first, as the API expects)."""
    if not results:
        return list(messages)
    added = _tool_results(results)[0]
    last = messages[-1] if messages else None
    if last is None or last["role"] != "user" or not isinstance(last["content"], list):
        return [*messages, added]
    return [*messages[:-1], {**last, "content": [*added["content"], *last["content"]]}]


async def run_messages_agent(
    controller: RunController,
    client: AsyncAnthropic,
    *,
    messages: Sequence[Mapping[str, Any]],
    tool_functions: ToolFunctions,
    approvals: Sequence[ToolApproval] = (),
    needs_approval: Collection[str] = (),
    max_steps: int = 8,
    tool_timeout: float | None = None,
    **create_args: Any,
) -> list[dict[str, Any]]:
    """Let the model answer, running the tools it asks for, and return the whole conversation.

    Each step streams one message (``client.messages.create`` with
    ``messages`` so far, ``stream=True`` and ``create_args``: ``model``,
    ``max_tokens``, the ``tools`` schemas, ...) into the run. The tools it
    asks for run in parallel as structured tool calls (results reach the
    client in call order); a failing or unknown tool gives the model an error
    result. Their results go back in one user message for the next step. It
    stops when a message asks for no tools, or after ``max_steps`` messages.

    ``approvals`` (the request's ``tool_approvals()``) continue the calls a
    person decided on before the first step: approved ones run under their
    ids and their results join ``messages`` (which hold the calls, as
    :mod:`assistant_stream_ce.conversion` gives them), denied ones send their
    denial to the client (the converted messages hold it for the model).

    ``needs_approval`` names tools (of ``tool_functions``) a person approves
    first: when the model calls one, its arguments stream as usual, then the
    call ends with an approval request instead of running. The step's other
    calls run, and the loop ends there; the request with the decision
    continues it through ``approvals``.
    """

    async def step(conversation: list[dict[str, Any]]) -> MessageTurn:
        request = client.messages.create(messages=conversation, stream=True, **create_args)  # type: ignore[arg-type]
        stream = cast("AsyncStream[RawMessageStreamEvent]", await request)
        return await stream_message(
            controller, stream, tool_functions=tool_functions, tool_timeout=tool_timeout, needs_approval=approval
        )

    approval = approval_names(tool_functions, needs_approval)
    decided = await continue_decided(controller, tool_functions, approvals, tool_timeout)
    return await agent_loop(_with_results(messages, decided), max_steps, step, _tool_results)
