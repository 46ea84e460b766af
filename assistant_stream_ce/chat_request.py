"""Typed request bodies of the chat clients, and a helper that reads them safely.

What the clients POST (field names as on the wire, snake_case here):

- :class:`AssistantTransportRequest`: assistant-ui's ``useAssistantTransportRuntime``
  (``commands``, ``state``, ``system``, ``tools``, ``threadId``, ...);
- :class:`DataStreamRequest`: assistant-ui's ``useDataStreamRuntime``
  (``messages`` in the AI SDK's model-message form, ``tools``, ``system``, ...);
- :class:`ChatRequest`: the AI SDK's ``useChat`` (``id``, ``messages`` with
  ``parts``, ``trigger``, ``messageId``);
- :class:`RunAgentInput`: an AG-UI client's ``RunAgentInput`` (``threadId``,
  ``runId``, ``messages``, ``state``, ``tools``, ``context``, ``resume``, ...);
- :class:`ChatCompletionRequest`: an OpenAI-style chat-completions request
  (``model``, ``messages``, ``stream``, ``tools``, ...; snake_case on the wire).

Unknown fields are ignored, so extra ``body`` values a client adds do not
break decoding; define a subclass with those fields to read them. Message
parts are one struct per protocol with the fields any part type may carry
(``type`` says which), because the clients add part types over time and some
are open-ended (``tool-<name>``, ``data-<name>``).

:func:`read_chat_request` reads a body into one of these (or any msgspec
Struct), with limits on its size, its nesting depth and its number of JSON
values, and raises :class:`ChatRequestError`, a Starlette ``HTTPException``
that Starlette and FastAPI turn into a 413 or 422 response with a short
one-line reason.
"""

from __future__ import annotations

import re
from contextlib import aclosing
from itertools import accumulate
from typing import Any, ClassVar, Literal, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ._json import MAX_DEPTH
from .approval import ToolApproval, ToolApprovalError, split_token, tool_call_id_of

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_VALUES",
    "AGUIContentPart",
    "AGUIContext",
    "AGUIFunctionCall",
    "AGUIMessage",
    "AGUIResumeEntry",
    "AGUISource",
    "AGUITool",
    "AGUIToolCall",
    "AddMessageCommand",
    "AddToolApprovalCommand",
    "AddToolResultCommand",
    "ApprovalDecision",
    "AssistantTransportCommand",
    "AssistantTransportRequest",
    "ChatCompletionMessage",
    "ChatCompletionRequest",
    "ChatRequest",
    "ChatRequestError",
    "DataStreamRequest",
    "ModelMessage",
    "ModelMessagePart",
    "OpenAIContentPart",
    "OpenAIFunctionCall",
    "OpenAIImageURL",
    "OpenAIToolCall",
    "RunAgentInput",
    "TransportMessage",
    "TransportMessagePart",
    "UIMessage",
    "UIMessagePart",
    "read_chat_request",
]

#: Default body size limit of :func:`read_chat_request`: 4 MiB.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
#: Default nesting limit of :func:`read_chat_request`: objects and arrays 64 deep (the state's own limit).
DEFAULT_MAX_DEPTH = MAX_DEPTH
#: Default limit of :func:`read_chat_request` on the JSON values of a body (objects, arrays, strings,
#: numbers, literals; not keys), which bounds the memory its decoding takes.
DEFAULT_MAX_VALUES = 100_000


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True):
    """Base of the request structs: camelCase on the wire."""


class ApprovalDecision(_Wire):
    """The approval a client keeps on a tool call and sends back: ``approved`` once the person decided.

    The AI SDK's tool part ``approval`` (``{id, approved, reason, signature}``)
    and assistant-stream's ``ToolCallApproval`` have this shape.
    """

    id: str
    approved: bool | None = None
    reason: str | None = None
    signature: str | None = None


def _verified(tool_call_id: str, tool_name: str, args: Any, decision: ApprovalDecision, approved: bool) -> ToolApproval:
    """The :class:`ToolApproval` of one decision, after checking its signature (else :class:`ToolApprovalError`)."""
    approval_id, signature = decision.id, decision.signature
    if signature is None and (token := split_token(decision.id)) is not None:
        approval_id, signature = token
    if not isinstance(args, dict):
        raise ToolApprovalError(
            f"the approval of tool call {tool_call_id!r} comes with arguments that are not an object"
        )
    approval = ToolApproval(
        tool_call_id=tool_call_id,
        tool_name=tool_name,
        args=args,
        approved=approved,
        reason=decision.reason,
        approval_id=approval_id,
        signature=signature or "",
    )
    approval.verify()
    return approval


# -- assistant-ui: assistant transport ------------------------------------------


class TransportMessagePart(_Wire):
    """A part of a message in an ``add-message`` command (``text`` or ``image``)."""

    type: str
    text: str | None = None
    image: str | None = None


class TransportMessage(_Wire):
    role: Literal["user", "assistant"]
    parts: list[TransportMessagePart]
    id: str | None = None


class AddMessageCommand(_Wire, tag="add-message", tag_field="type"):
    """The user sent (or edited) a message."""

    type: ClassVar[str] = "add-message"
    message: TransportMessage
    parent_id: str | None = None
    source_id: str | None = None


class AddToolResultCommand(_Wire, tag="add-tool-result", tag_field="type"):
    """The client produced the result of a tool call (a frontend tool, or a human answer)."""

    type: ClassVar[str] = "add-tool-result"
    tool_call_id: str
    result: Any
    tool_name: str | None = None
    is_error: bool = False
    artifact: Any = None


class AddToolApprovalCommand(_Wire, tag="add-tool-approval", tag_field="type"):
    """The person decided on a tool call that waits for approval (a command of this package's own).

    assistant-ui's transport runtime has no approval command of its own: the
    client sends this one (a custom command) with the call as the stream
    showed it and the part's ``approval`` with ``approved`` set.
    """

    type: ClassVar[str] = "add-tool-approval"
    tool_call_id: str
    tool_name: str
    args: Any
    approval: ApprovalDecision


AssistantTransportCommand = AddMessageCommand | AddToolResultCommand | AddToolApprovalCommand


class AssistantTransportRequest(_Wire):
    """The body of a ``useAssistantTransportRuntime`` request.

    Custom commands: subclass it and redeclare ``commands`` with your own
    tagged command structs added to the union.
    """

    commands: list[AssistantTransportCommand]
    state: Any = None
    system: str | None = None
    tools: dict[str, Any] | None = None
    call_settings: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    thread_id: str | None = None
    parent_id: str | None = None
    run_id: str | None = None

    def tool_approvals(self) -> list[ToolApproval]:
        """The decisions of the ``add-tool-approval`` commands, verified (else :class:`ToolApprovalError`)."""
        return [
            _verified(
                command.tool_call_id, command.tool_name, command.args, command.approval, command.approval.approved
            )
            for command in self.commands
            if isinstance(command, AddToolApprovalCommand) and command.approval.approved is not None
        ]


# -- assistant-ui: data stream --------------------------------------------------


class ModelMessagePart(_Wire):
    """A part of a model message: ``text``, ``image``, ``file``, ``reasoning``, ``tool-call``, ``tool-result``.

    Current assistant-ui sends the AI SDK 5 fields (``file`` parts with
    ``mediaType`` and ``filename``, tool calls with ``input``, tool results
    with ``output``: ``{"type": "json" | "error-json" | "text" | "error-text",
    "value": ...}``); older versions sent ``image``, ``mimeType``, ``args``,
    ``result`` and ``isError``. Both are read.
    """

    type: str
    text: str | None = None
    image: str | None = None
    data: Any = None
    mime_type: str | None = None
    media_type: str | None = None
    filename: str | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    args: Any = None
    input: Any = None
    result: Any = None
    output: Any = None
    is_error: bool | None = None
    artifact: Any = None
    approval: ApprovalDecision | None = None


class ModelMessage(_Wire):
    """A message in the AI SDK's model-message form: ``content`` is a string or a list of parts."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[ModelMessagePart]
    id: str | None = None


class DataStreamRequest(_Wire):
    """The body of a ``useDataStreamRuntime`` request (``callSettings``/``config`` values arrive spread
    at the top level; declare the ones you use in a subclass)."""

    messages: list[ModelMessage]
    system: str | None = None
    tools: dict[str, Any] | list[Any] | None = None
    run_config: Any = None
    state: Any = None
    thread_id: str | None = None
    parent_id: str | None = None
    assistant_message_id: str | None = msgspec.field(default=None, name="unstable_assistantMessageId")

    def tool_approvals(self) -> list[ToolApproval]:
        """Decided approvals on tool-call parts whose call has no result, verified (else :class:`ToolApprovalError`).

        assistant-ui's ``useDataStreamRuntime`` leaves the ``approval`` out of the
        messages it sends; a client that keeps it on the tool-call part is read here.
        """
        parts = [part for message in self.messages if not isinstance(message.content, str) for part in message.content]
        answered = {part.tool_call_id for part in parts if part.type == "tool-result"}
        return [
            _verified(part.tool_call_id, part.tool_name, _first(part.input, part.args), part.approval, approved)
            for part in parts
            if part.type == "tool-call"
            and part.tool_call_id is not None
            and part.tool_name is not None
            and part.tool_call_id not in answered
            and part.approval is not None
            and (approved := part.approval.approved) is not None
        ]


def _first(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


# -- AI SDK: useChat --------------------------------------------------------------


class UIMessagePart(_Wire):
    """A part of a UI message; ``type`` is ``text``, ``reasoning``, ``tool-<name>``, ``dynamic-tool``,
    ``source-url``, ``source-document``, ``file``, ``step-start``, ``data-<name>``, ..."""

    type: str
    text: str | None = None
    state: str | None = None
    id: str | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    input: Any = None
    output: Any = None
    error_text: str | None = None
    source_id: str | None = None
    url: str | None = None
    title: str | None = None
    media_type: str | None = None
    filename: str | None = None
    data: Any = None
    provider_metadata: dict[str, Any] | None = None
    approval: ApprovalDecision | None = None

    @property
    def tool(self) -> str | None:
        """The tool name of a tool part (``tool-<name>`` or ``dynamic-tool``), else None."""
        if self.type.startswith("tool-"):
            return self.type[len("tool-") :]
        return self.tool_name if self.type == "dynamic-tool" else None


class UIMessage(_Wire):
    id: str
    role: Literal["system", "user", "assistant"]
    parts: list[UIMessagePart]
    metadata: Any = None

    @property
    def text(self) -> str:
        """The message's text parts joined."""
        return "".join(part.text or "" for part in self.parts if part.type == "text")


class ChatRequest(_Wire):
    """The body that ``useChat`` (``DefaultChatTransport``) POSTs."""

    messages: list[UIMessage]
    id: str | None = None
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    message_id: str | None = None

    @property
    def continued_message_id(self) -> str | None:
        """The id of the assistant message this request continues (``Chat`` continues a last assistant
        message, after a tool approval), else None; give it to the response's ``message_id``."""
        last = self.messages[-1] if self.messages else None
        return last.id if self.trigger == "submit-message" and last is not None and last.role == "assistant" else None

    def tool_approvals(self) -> list[ToolApproval]:
        """The decisions on tool parts in state ``approval-responded``, verified (else :class:`ToolApprovalError`)."""
        return [
            _verified(part.tool_call_id, tool, part.input, part.approval, approved)
            for message in self.messages
            if message.role == "assistant"
            for part in message.parts
            if part.state == "approval-responded"
            and (tool := part.tool) is not None
            and part.tool_call_id is not None
            and part.approval is not None
            and (approved := part.approval.approved) is not None
        ]


# -- AG-UI: RunAgentInput ------------------------------------------------------------


class AGUISource(_Wire):
    """Where a media part's bytes are: ``data`` (base64 in ``value``), ``url``, or ``file`` (a provider's handle)."""

    type: Literal["data", "url", "file"]
    value: str
    mime_type: str | None = None
    provider: str | None = None


class AGUIContentPart(_Wire):
    """A part of a user or tool message: ``text``, or media (``image``, ``audio``, ``video``, ``document``)."""

    type: str
    text: str | None = None
    source: AGUISource | None = None
    id: str | None = None


class AGUIFunctionCall(_Wire):
    name: str
    arguments: str


class AGUIToolCall(_Wire):
    id: str
    type: Literal["function"]
    function: AGUIFunctionCall


class AGUIMessage(_Wire):
    """A message of any role (``developer``, ``system``, ``assistant``, ``user``, ``tool``, ``activity``,
    ``reasoning``): ``content`` is text, a list of parts (user and tool messages), or an object
    (``activity``)."""

    id: str
    role: Literal["developer", "system", "assistant", "user", "tool", "activity", "reasoning"]
    content: str | list[AGUIContentPart] | dict[str, Any] | None = None
    name: str | None = None
    tool_calls: list[AGUIToolCall] | None = None
    tool_call_id: str | None = None
    error: str | None = None
    activity_type: str | None = None


class AGUITool(_Wire):
    """A tool the client offers (a frontend tool)."""

    name: str
    description: str
    parameters: Any = None


class AGUIContext(_Wire):
    """A piece of context the client gives the agent for this run."""

    description: str
    value: str


class AGUIResumeEntry(_Wire):
    """The answer to an interrupt of the previous run."""

    interrupt_id: str
    status: Literal["resolved", "cancelled"]
    payload: Any = None

    def tool_decision(self) -> tuple[str, bool, str | None] | None:
        """``(tool call id, approved, reason)`` if this answers a tool approval (not verified), else None.

        Approved when ``status`` is ``resolved`` and the payload's ``approved`` is true.
        """
        token = split_token(self.interrupt_id)
        tool_call_id = tool_call_id_of(token[0]) if token is not None else None
        if tool_call_id is None:
            return None
        payload = self.payload if isinstance(self.payload, dict) else {}
        reason = payload.get("reason")
        approved = self.status == "resolved" and payload.get("approved") is True
        return tool_call_id, approved, reason if isinstance(reason, str) else None


class RunAgentInput(_Wire):
    """The body that an AG-UI client (``HttpAgent.runAgent``) POSTs, as ``@ag-ui/core`` defines it."""

    thread_id: str
    run_id: str
    messages: list[AGUIMessage]
    state: Any = None
    tools: list[AGUITool] = msgspec.field(default_factory=list)
    context: list[AGUIContext] = msgspec.field(default_factory=list)
    forwarded_props: Any = None
    resume: list[AGUIResumeEntry] | None = None
    parent_run_id: str | None = None
    protocol_version: str | None = None

    def tool_approvals(self) -> list[ToolApproval]:
        """The ``resume`` answers to tool-approval interrupts, verified (else :class:`ToolApprovalError`).

        The call's name and arguments come from the history's tool calls; an
        answer is an approval when its status is ``resolved`` and its payload's
        ``approved`` is true. Answers to other interrupts are left out.
        """
        calls = {call.id: call.function for message in self.messages for call in message.tool_calls or ()}
        approvals = []
        for entry in self.resume or ():
            decided = entry.tool_decision()
            if decided is None:
                continue
            tool_call_id, approved, reason = decided
            function = calls.get(tool_call_id)
            if function is None:
                raise ToolApprovalError(f"the approval of tool call {tool_call_id!r} names no call in the messages")
            try:
                args = msgspec.json.decode(function.arguments or "{}")
            except msgspec.DecodeError:
                raise ToolApprovalError(f"the arguments of tool call {tool_call_id!r} are not JSON") from None
            decision = ApprovalDecision(entry.interrupt_id, approved, reason)
            approvals.append(_verified(tool_call_id, function.name, args, decision, approved))
        return approvals


# -- OpenAI: chat completions -------------------------------------------------------


class _SnakeWire(msgspec.Struct, omit_defaults=True):
    """Base of OpenAI's request structs: snake_case on the wire."""


class OpenAIImageURL(_SnakeWire):
    url: str
    detail: str | None = None


class OpenAIContentPart(_SnakeWire):
    """A content part: ``text``, ``image_url``, ``input_audio``, ``file`` or ``refusal``."""

    type: str
    text: str | None = None
    image_url: OpenAIImageURL | None = None
    input_audio: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    refusal: str | None = None


class OpenAIFunctionCall(_SnakeWire):
    name: str
    arguments: str


class OpenAIToolCall(_SnakeWire):
    id: str
    type: Literal["function"]
    function: OpenAIFunctionCall


class ChatCompletionMessage(_SnakeWire):
    """A message of a chat-completions request, of any role."""

    role: Literal["developer", "system", "user", "assistant", "tool"]
    content: str | list[OpenAIContentPart] | None = None
    name: str | None = None
    tool_calls: list[OpenAIToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class ChatCompletionRequest(_SnakeWire):
    """The body of an OpenAI-style ``POST /chat/completions`` (what ``client.chat.completions.create`` sends)."""

    model: str
    messages: list[ChatCompletionMessage]
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None


# -- reading a request --------------------------------------------------------------


class ChatRequestError(HTTPException):
    """A request body that cannot be used: 413 (too large) or 422 (not JSON, or the wrong shape)."""


T = TypeVar("T")


async def read_chat_request(
    request: Request,
    request_type: type[T],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_values: int = DEFAULT_MAX_VALUES,
) -> T:
    """Read and decode the JSON body of ``request`` into ``request_type`` (a msgspec-decodable type).

    Raises :class:`ChatRequestError` with status 413 when the body is larger
    than ``max_bytes`` (checked against ``Content-Length`` and while reading)
    or holds more than ``max_values`` JSON values, or 422 when objects and
    arrays nest deeper than ``max_depth`` or it is not JSON or not of that
    shape, with the first problem (``Expected `str`, got `int` - at
    `$.messages[0].role```). The counts come from the raw bytes, before
    anything is decoded.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(f"the limit is {max_bytes} bytes")
    body = bytearray()
    async with aclosing(request.stream()) as pieces:
        async for piece in pieces:
            body += piece
            if len(body) > max_bytes:
                raise _too_large(f"the limit is {max_bytes} bytes")
    _check_shape(body, max_depth, max_values)
    return decode_body(body, request_type)


def decode_body(body: bytes | bytearray | msgspec.Raw, request_type: type[T], *, read_as: str = "") -> T:
    """Decode a JSON body that passed :func:`read_chat_request`'s limits, or raise its 422.

    ``read_as`` names the shape it was read as, for the reason (``... (read as X)``).
    """
    suffix = f" (read as {read_as})" if read_as else ""
    try:
        return msgspec.json.decode(body, type=request_type)
    # ValidationError is a DecodeError too; invalid UTF-8 inside a JSON string raises UnicodeDecodeError.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _invalid(_short(" ".join(str(exc).split())) + suffix) from None
    except RecursionError:  # only with a max_depth above what the decoder can follow
        raise _invalid("JSON nested too deeply to decode") from None


#: A JSON string once its escaped backslashes and quotes are gone. Without backslashes in the
#: pattern, an unterminated string costs one scan to the end, not one from each of its quotes.
_STRING = re.compile(rb'"[^"]*"')
_WHITESPACE = b" \t\r\n"
#: Opening brackets to +1, closing ones to -1 (as signed bytes); everything else is deleted.
_BRACKET_STEPS = bytes.maketrans(b"{[}]", bytes([1, 1, 255, 255]))
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"{[}]")


def _check_shape(body: bytearray, max_depth: int, max_values: int) -> None:
    """Count the JSON values in ``body`` and measure its nesting without decoding it.

    With the strings replaced by one character, a JSON text holds one value,
    plus one for each comma and each non-empty object or array.
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in body else body
    structure = _STRING.sub(b"0", unescaped).translate(None, _WHITESPACE)
    containers = structure.count(b"{") + structure.count(b"[")
    empty = structure.count(b"{}") + structure.count(b"[]")
    if 1 + structure.count(b",") + containers - empty > max_values:
        raise _too_large(f"more than {max_values} JSON values")
    if containers > max_depth:
        steps = memoryview(structure.translate(_BRACKET_STEPS, _NOT_BRACKETS)).cast("b")
        if max(accumulate(steps)) > max_depth:
            raise _invalid(f"JSON nested deeper than {max_depth} levels")


#: How much of a decoder's message a 422 reason keeps before the path; the rest may echo a value of any size.
_REASON_CHARS = 80


def _short(reason: str) -> str:
    """``reason`` with its message cut to a few words and the path (`` - at `$...` ``) kept."""
    message, at, path = reason.rpartition(" - at `")
    if not at:
        message, path = reason, ""
    if len(message) > _REASON_CHARS:
        quote = "'" if message.endswith("'") else ""
        message = f"{message[:_REASON_CHARS]}...{quote}"
    return message + at + path


def _invalid(reason: str) -> ChatRequestError:
    return ChatRequestError(422, f"invalid request body: {reason}")


def _too_large(reason: str) -> ChatRequestError:
    return ChatRequestError(413, f"request body too large: {reason}")
