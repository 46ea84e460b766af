"""OpenAI-style chat-completion streams into a run (the ``openai`` extra).

:func:`stream_chat_completion` maps one streamed completion (from OpenAI or
any server that speaks its chat-completions API) onto the controller: text
and refusals become text, ``reasoning_content`` / ``reasoning`` deltas (sent
by OpenAI-compatible reasoning models) become reasoning, tool-call deltas
become tool calls whose arguments stream live, and the usage chunk (with
``stream_options={"include_usage": True}``) becomes the run's usage. :func:`run_chat_completion_agent`
loops: it streams a completion, runs the tools the model asked for as
structured tool calls of the run, sends their results back, and repeats until
the model answers without tools or the step limit is reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

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
    "ChatCompletionTurn",
    "ProviderStreamError",
    "RequestedToolCall",
    "ToolFunctions",
    "run_chat_completion_agent",
    "stream_chat_completion",
]

_REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass
class ChatCompletionTurn:
    """What the model sent in one streamed completion."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[RequestedToolCall] = field(default_factory=list)
    finish_reason: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The assistant message to send back in the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in self.tool_calls
            ]
        return message


def _reasoning_delta(delta: Any) -> str | None:
    extra = delta.model_extra or {}
    for name in _REASONING_FIELDS:
        value = extra.get(name)
        if value:
            return value if isinstance(value, str) else str(value)
    return None


class _TurnReader:
    def __init__(self, controller: RunController, tools: StreamedToolCalls) -> None:
        self.controller = controller
        self.tools = tools
        self.turn = ChatCompletionTurn()

    async def add(self, chunk: ChatCompletionChunk) -> None:
        usage = chunk.usage  # the last chunk, when the request asked for it (stream_options.include_usage)
        if usage is not None:
            completion, prompt = usage.completion_tokens_details, usage.prompt_tokens_details
            self.controller.add_usage(
                usage.prompt_tokens,
                usage.completion_tokens,
                reasoning_tokens=None if completion is None else completion.reasoning_tokens,
                cached_input_tokens=None if prompt is None else prompt.cached_tokens,
            )
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            reasoning = _reasoning_delta(delta)
            if reasoning:
                self.turn.reasoning += reasoning
                self.controller.append_reasoning(reasoning)
            for text in (delta.content, delta.refusal):
                if text:
                    self.turn.text += text
                    self.controller.append_text(text)
            for call in delta.tool_calls or ():
                function = call.function
                if call.id is not None or (function is not None and function.name):
                    await self.tools.begin(call.index, call.id, (function.name if function else None) or "")
                if function is not None and function.arguments:
                    self.tools.args(call.index, function.arguments)
            if choice.finish_reason is not None:
                self.turn.finish_reason = choice.finish_reason


async def stream_chat_completion(
    controller: RunController,
    stream: AsyncIterable[ChatCompletionChunk],
    *,
    tool_functions: ToolFunctions | None = None,
    tool_timeout: float | None = None,
    needs_approval: Collection[str] = (),
) -> ChatCompletionTurn:
    """Send one streamed chat completion to the run and return what it said.

    ``stream`` is what ``await client.chat.completions.create(..., stream=True)``
    returns. With ``tool_functions``, every tool call starts as a structured
    tool call of the run (see :func:`run_chat_completion_agent`); its result
    is on the call's ``handle``. Without, tool calls are streamed and closed
    for the client to run. A call of a tool named in ``needs_approval``
    asks for approval once its arguments are complete instead of running
    (its handle is ``awaiting_approval``). A chunk that cannot be read
    raises :class:`ProviderStreamError`. The stream is closed when this returns or
    raises, so leaving early (the client went away) ends the provider's request.
    """
    tools = StreamedToolCalls(controller, tool_functions, tool_timeout, needs_approval)
    reader = _TurnReader(controller, tools)
    await read_stream(stream, reader.add, tools)
    reader.turn.tool_calls = tools.calls
    return reader.turn


def _tool_messages(results: list[tuple[RequestedToolCall, ToolResultChunk]]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": call.id, "content": result_text(chunk.result)} for call, chunk in results]


async def run_chat_completion_agent(
    controller: RunController,
    client: AsyncOpenAI,
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

    Each step streams one completion (``client.chat.completions.create`` with
    ``messages`` so far, ``stream=True`` and ``create_args``: ``model``, the
    ``tools`` schemas, ...) into the run. The tools it asks for run in
    parallel as structured tool calls (results reach the client in call
    order); a failing or unknown tool gives the model an error result. Their
    results are added to the conversation for the next step. It stops when a
    completion asks for no tools, or after ``max_steps`` completions.

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

    async def step(conversation: list[dict[str, Any]]) -> ChatCompletionTurn:
        request = client.chat.completions.create(messages=conversation, stream=True, **create_args)  # type: ignore[arg-type]
        stream = cast("AsyncStream[ChatCompletionChunk]", await request)
        return await stream_chat_completion(
            controller, stream, tool_functions=tool_functions, tool_timeout=tool_timeout, needs_approval=approval
        )

    approval = approval_names(tool_functions, needs_approval)
    decided = await continue_decided(controller, tool_functions, approvals, tool_timeout)
    return await agent_loop([*messages, *_tool_messages(decided)], max_steps, step, _tool_messages)
