"""Chat messages between the clients and the model providers, both ways.

Into a model call: :func:`to_openai_messages` and :func:`to_anthropic_messages`
turn the messages of a client's request (:class:`ChatRequest`,
:class:`DataStreamRequest`, :class:`AssistantTransportRequest`,
:class:`RunAgentInput`, :class:`ChatCompletionRequest`) into the message
lists of the OpenAI and Anthropic SDKs: text, images and files, tool calls
and their results, and the person's decisions on calls that waited for
approval. A denied call comes with an error result that tells the model so
(the denial text of the run, with the person's reason); an approved call that
has not run yet comes without a result, for the adapters' agent loops to run
(``approvals=request.tool_approvals()``) before they call the model. Reasoning
is left out (neither API takes it back without the provider's own
signatures), and so is a tool call that has no result and no decision yet.

Out of a run: :func:`to_ui_message`, :func:`to_model_messages` and
:func:`to_agui_messages` turn the message a run sent
(``RunOutcome.message``, an :class:`AssistantMessage`) into what each client
keeps and sends back on its next request, so ``on_finish`` can store what the
client saw: a call that waits for approval keeps its approval request, and a
decided call its decision. :func:`continue_ui_message` merges a run that
continued a ``useChat`` message (after a tool approval) into the stored one.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import msgspec

from .chat_request import (
    AddMessageCommand,
    AddToolResultCommand,
    AGUIContentPart,
    AGUIFunctionCall,
    AGUIMessage,
    AGUIResumeEntry,
    AGUIToolCall,
    ApprovalDecision,
    AssistantTransportRequest,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatRequest,
    DataStreamRequest,
    ModelMessage,
    ModelMessagePart,
    OpenAIContentPart,
    RunAgentInput,
    UIMessage,
    UIMessagePart,
)
from .message import AssistantMessage, FilePart, ReasoningPart, SourcePart, TextPart, ToolCallApproval, ToolCallPart
from .serialization.ui_message_stream import _data_type, _error_text
from .tool_calls import denial_text

__all__ = [
    "AnthropicMessages",
    "ClientMessages",
    "continue_ui_message",
    "to_agui_messages",
    "to_anthropic_messages",
    "to_model_messages",
    "to_openai_messages",
    "to_ui_message",
]

#: The requests whose messages convert.
ClientMessages = ChatRequest | DataStreamRequest | AssistantTransportRequest | RunAgentInput | ChatCompletionRequest


class AnthropicMessages(NamedTuple):
    """Anthropic's ``system`` (None when the request has none) and ``messages``."""

    system: str | None
    messages: list[dict[str, Any]]


# -- one neutral form between the clients and the providers ----------------------------


@dataclass
class _Media:
    """An image or file: ``url`` is a ``data:`` URL or a URL to fetch."""

    url: str
    media_type: str
    filename: str | None = None

    @property
    def base64(self) -> str | None:
        """The bytes of a ``data:...;base64,`` URL, else None."""
        head, comma, data = self.url.partition(",")
        return data if comma and head.startswith("data:") and head.endswith(";base64") else None


@dataclass
class _Call:
    """A tool call; ``approved`` is the person's decision on it, if it waited for one."""

    id: str
    name: str
    args: Any
    approved: bool | None = None
    reason: str | None = None


@dataclass
class _Result:
    call_id: str
    name: str
    value: Any
    is_error: bool = False

    @property
    def text(self) -> str:
        """The result as a model reads it: a string as is, anything else as JSON."""
        return self.value if isinstance(self.value, str) else json.dumps(self.value)


_Part = str | _Media | _Call | _Result


@dataclass
class _Turn:
    role: Literal["system", "user", "assistant", "tool"]
    parts: list[_Part]


def _media(value: str, media_type: str | None, filename: str | None = None) -> _Media:
    """A media part from a URL, a ``data:`` URL, or bare base64 (with its media type)."""
    if value.startswith("data:"):
        return _Media(value, media_type or value[5:].partition(";")[0].partition(",")[0], filename)
    if value.startswith(("http://", "https://")):
        guessed = mimetypes.guess_type(value.partition("?")[0])[0]
        return _Media(value, media_type or guessed or "application/octet-stream", filename)
    media_type = media_type or "application/octet-stream"
    return _Media(f"data:{media_type};base64,{value}", media_type, filename)


def _parsed(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return arguments


def _turns(request: ClientMessages) -> list[_Turn]:
    match request:
        case ChatRequest():
            return _settled(_from_ui(request))
        case DataStreamRequest():
            return _settled(_system(request.system) + [_from_model(message) for message in request.messages])
        case AssistantTransportRequest():
            return _system(request.system) + _from_transport(request)
        case RunAgentInput():
            return _settled(_from_role_messages(request.messages, _resume_decisions(request.resume)))
        case ChatCompletionRequest():
            return _from_role_messages(request.messages, {})


def _settled(turns: list[_Turn]) -> list[_Turn]:
    """The turns as a provider takes them: a denied call gets its denial as its result, in the tool turn
    after its call's turn; a call with no result and no approval (its input streams, it waits for a
    decision or for the client) is left out, with a turn it leaves empty."""
    answered = {part.call_id for turn in turns for part in turn.parts if isinstance(part, _Result)}
    settled: list[_Turn] = []
    denials: list[_Part] = []
    for turn in turns:
        if denials and turn.role == "tool":
            turn = _Turn("tool", denials + turn.parts)
        elif denials:
            settled.append(_Turn("tool", denials))
        calls = [part for part in turn.parts if isinstance(part, _Call)]
        denials = [
            _Result(call.id, call.name, denial_text(call.reason), is_error=True)
            for call in calls
            if call.approved is False and call.id not in answered
        ]
        parts = [
            part
            for part in turn.parts
            if not isinstance(part, _Call) or part.id in answered or part.approved is not None
        ]
        settled += [_Turn(turn.role, parts)] if parts or not calls else []
    return settled + ([_Turn("tool", denials)] if denials else [])


def _system(text: str | None) -> list[_Turn]:
    return [_Turn("system", [text])] if text else []


def _from_ui(request: ChatRequest) -> list[_Turn]:
    """UI messages; an assistant message becomes one assistant and one tool turn per step."""
    turns: list[_Turn] = []
    for message in request.messages:
        if message.role != "assistant":
            parts: list[_Part] = [part.text for part in message.parts if part.type == "text" and part.text]
            parts += [
                _media(part.url, part.media_type, part.filename)
                for part in message.parts
                if part.type == "file" and part.url
            ]
            turns.append(_Turn(message.role, parts))
            continue
        said: list[_Part] = []
        results: list[_Part] = []
        for part in [*message.parts, UIMessagePart("step-start")]:
            name = part.tool
            if part.type == "step-start":
                turns += [_Turn("assistant", said)] if said else []
                turns += [_Turn("tool", results)] if results else []
                said, results = [], []
            elif part.type == "text" and part.text:
                said.append(part.text)
            elif name is not None and part.tool_call_id is not None:
                said.append(_Call(part.tool_call_id, name, part.input, *_ui_decision(part)))
                result = _ui_tool_result(part, part.tool_call_id, name)
                results += [result] if result is not None else []
    return turns


def _ui_decision(part: UIMessagePart) -> tuple[bool | None, str | None]:
    """The person's decision on a UI tool part (``approval-responded``, or after it ``output-*``), else None."""
    approval = part.approval
    if approval is None or part.state == "approval-requested":
        return None, None
    return approval.approved, approval.reason


def _ui_tool_result(part: UIMessagePart, call_id: str, name: str) -> _Result | None:
    """The outcome of a UI tool part, or None while it has none (its input is streaming or awaited)."""
    match part.state:
        case "output-available":
            return _Result(call_id, name, part.output)
        case "output-error":
            return _Result(call_id, name, part.error_text or "", is_error=True)
    return None


def _from_model(message: ModelMessage) -> _Turn:
    if isinstance(message.content, str):
        return _Turn(message.role, [message.content])
    parts: list[_Part] = []
    for part in message.content:
        match part.type:
            case "text" if part.text:
                parts.append(part.text)
            case "image" if part.image:
                parts.append(_media(part.image, part.media_type or part.mime_type))
            case "file" if isinstance(part.data, str):
                parts.append(_media(part.data, part.media_type or part.mime_type, part.filename))
            case "tool-call" if part.tool_call_id and part.tool_name:
                args = part.args if part.input is None else part.input
                approval = part.approval
                decision = (None, None) if approval is None else (approval.approved, approval.reason)
                parts.append(_Call(part.tool_call_id, part.tool_name, args, *decision))
            case "tool-result" if part.tool_call_id:
                parts.append(_model_tool_result(part, part.tool_call_id))
    return _Turn(message.role, parts)


def _model_tool_result(part: ModelMessagePart, call_id: str) -> _Result:
    """AI SDK 5's ``output`` (``{"type": "json" | "text" | "error-json" | "error-text", "value"}``), or the older
    ``result`` and ``isError``."""
    name = part.tool_name or ""
    output = part.output
    if isinstance(output, dict) and "value" in output:
        return _Result(call_id, name, output["value"], is_error=str(output.get("type", "")).startswith("error"))
    return _Result(call_id, name, part.result, is_error=bool(part.is_error))


def _from_transport(request: AssistantTransportRequest) -> list[_Turn]:
    turns = []
    for command in request.commands:
        if isinstance(command, AddMessageCommand):
            parts: list[_Part] = [part.text for part in command.message.parts if part.type == "text" and part.text]
            parts += [_media(part.image, None) for part in command.message.parts if part.type == "image" and part.image]
            turns.append(_Turn(command.message.role, parts))
        elif isinstance(command, AddToolResultCommand):
            result = _Result(command.tool_call_id, command.tool_name or "", command.result, command.is_error)
            turns.append(_Turn("tool", [result]))
        elif command.approval.approved is False:  # an approved call's result comes from the agent loop
            denial = denial_text(command.approval.reason)
            turns.append(_Turn("tool", [_Result(command.tool_call_id, command.tool_name, denial, is_error=True)]))
    return turns


def _agui_parts(content: str | list[AGUIContentPart] | dict[str, Any] | None) -> list[_Part]:
    if isinstance(content, str):
        return [content] if content else []
    parts: list[_Part] = []
    for part in content if isinstance(content, list) else []:
        source = part.source
        if part.type == "text" and part.text:
            parts.append(part.text)
        elif source is not None and source.type in ("data", "url"):
            parts.append(_media(source.value, source.mime_type))
    return parts


def _openai_parts(content: str | list[OpenAIContentPart] | None) -> list[_Part]:
    if isinstance(content, str):
        return [content] if content else []
    parts: list[_Part] = []
    for part in content or []:
        file_data = (part.file or {}).get("file_data")
        if part.type == "text" and part.text:
            parts.append(part.text)
        elif part.image_url is not None:
            parts.append(_media(part.image_url.url, None))
        elif isinstance(file_data, str):
            parts.append(_media(file_data, None, (part.file or {}).get("filename")))
    return parts


def _resume_decisions(resume: list[AGUIResumeEntry] | None) -> dict[str, tuple[bool, str | None]]:
    """``tool call id -> (approved, reason)`` of the resume entries that answer tool approvals."""
    decisions = (entry.tool_decision() for entry in resume or ())
    return {call_id: (approved, reason) for call_id, approved, reason in filter(None, decisions)}


def _from_role_messages(
    messages: Sequence[AGUIMessage | ChatCompletionMessage], decisions: dict[str, tuple[bool, str | None]]
) -> list[_Turn]:
    """AG-UI's and OpenAI's messages, which share their roles, tool calls and tool messages;
    ``decisions`` are the person's on calls that waited for approval."""
    turns = []
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, AGUIMessage):
            parts, error = _agui_parts(message.content), message.error
        else:
            parts, error = _openai_parts(message.content), None
        match message.role:
            case "system" | "developer":
                turns.append(_Turn("system", parts))
            case "user":
                turns.append(_Turn("user", parts))
            case "assistant":
                for call in message.tool_calls or []:
                    names[call.id] = call.function.name
                    decision = decisions.get(call.id, (None, None))
                    parts.append(_Call(call.id, call.function.name, _parsed(call.function.arguments), *decision))
                turns.append(_Turn("assistant", parts))
            case "tool" if message.tool_call_id:
                text = "".join(part for part in parts if isinstance(part, str))
                name = names.get(message.tool_call_id, "")
                turns.append(_Turn("tool", [_Result(message.tool_call_id, name, error or text, error is not None)]))
    return turns


# -- into the providers' messages ---------------------------------------------------------


def to_openai_messages(request: ClientMessages) -> list[dict[str, Any]]:
    """The request's messages as OpenAI chat-completions messages (``ChatCompletionMessageParam`` dicts).

    The ``system`` prompt of assistant-ui's requests comes first, as a system
    message. Images become ``image_url`` parts (a ``data:`` URL or a URL);
    other files sent inline become ``file`` parts, and files only linked
    become a text part with their URL (the API takes files inline only).
    A chat-completions request's own messages come back as they were.
    """
    if isinstance(request, ChatCompletionRequest):
        return list(msgspec.to_builtins(request.messages))
    messages: list[dict[str, Any]] = []
    for turn in _turns(request):
        texts = [part for part in turn.parts if isinstance(part, str)]
        match turn.role:
            case "system":
                messages.append({"role": "system", "content": "\n\n".join(texts)})
            case "user" if len(texts) == len(turn.parts):
                messages.append({"role": "user", "content": "\n\n".join(texts)})
            case "user":
                messages.append({"role": "user", "content": [_openai_part(part) for part in turn.parts]})
            case "assistant":
                message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
                calls = [part for part in turn.parts if isinstance(part, _Call)]
                if calls:
                    message["tool_calls"] = [_openai_call(call) for call in calls]
                messages.append(message)
            case "tool":
                messages += [
                    {"role": "tool", "tool_call_id": result.call_id, "content": result.text}
                    for result in turn.parts
                    if isinstance(result, _Result)
                ]
    return messages


def _openai_part(part: _Part) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    assert isinstance(part, _Media), "a user turn holds text and media"
    if part.media_type.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": part.url}}
    if part.base64 is not None:
        return {"type": "file", "file": {"file_data": part.url, "filename": part.filename or "file"}}
    return {"type": "text", "text": part.url}


def _openai_call(call: _Call) -> dict[str, Any]:
    arguments = call.args if isinstance(call.args, str) else json.dumps({} if call.args is None else call.args)
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


def to_anthropic_messages(request: ClientMessages) -> AnthropicMessages:
    """The request's messages as Anthropic ``MessageParam`` dicts, and its system prompt.

    System messages (and the ``system`` prompt of assistant-ui's requests) are
    joined into ``system``. Tool results go back in a user message of
    ``tool_result`` blocks, before anything else in it; consecutive messages
    of one role are joined, as the API expects. Images become ``image``
    blocks, PDFs and plain text ``document`` blocks, other files a text
    block with their URL.
    """
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for turn in _turns(request):
        if turn.role == "system":
            system += [part for part in turn.parts if isinstance(part, str)]
            continue
        role = "assistant" if turn.role == "assistant" else "user"
        blocks = [_anthropic_block(part) for part in turn.parts if not (isinstance(part, str) and not part)]
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            blocks = messages.pop()["content"] + blocks
        results = [block for block in blocks if block["type"] == "tool_result"]
        messages.append({"role": role, "content": results + [block for block in blocks if block not in results]})
    return AnthropicMessages("\n\n".join(system) or None, messages)


def _anthropic_block(part: _Part) -> dict[str, Any]:
    match part:
        case str():
            return {"type": "text", "text": part}
        case _Call():
            args = part.args if isinstance(part.args, dict) else {}
            return {"type": "tool_use", "id": part.id, "name": part.name, "input": args}
        case _Result():
            return {"type": "tool_result", "tool_use_id": part.call_id, "content": part.text, "is_error": part.is_error}
        case _Media():
            return _anthropic_media(part)


def _anthropic_media(media: _Media) -> dict[str, Any]:
    data = media.base64
    if media.media_type in ("image/jpeg", "image/png", "image/gif", "image/webp"):
        kind = "image"
    elif media.media_type == "application/pdf":
        kind = "document"
    elif media.media_type == "text/plain" and data is not None:
        text = base64.b64decode(data).decode("utf-8", errors="replace")
        return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    else:
        return {"type": "text", "text": media.filename or media.url if data is not None else media.url}
    if data is None:
        return {"type": kind, "source": {"type": "url", "url": media.url}}
    return {"type": kind, "source": {"type": "base64", "media_type": media.media_type, "data": data}}


# -- out of a run: what each client keeps --------------------------------------------------


def to_ui_message(message: AssistantMessage, *, id: str) -> UIMessage:
    """The AI SDK ``UIMessage`` that ``useChat`` built from the run's UI message stream.

    Its parts in order (text, reasoning, ``tool-<name>`` parts with their
    input and output or error, ``source-url``, ``source-document``, ``file``), then the run's data
    as ``data-<kind>`` parts, with a ``step-start`` part where each step the stream announced
    begins (``convertToModelMessages`` makes one model message per step). A call that waited
    for approval keeps its ``approval``: in state ``approval-requested`` while it waits, with
    the decision once continued (``output-denied`` when denied). ``id`` is the message's id
    (the stream's ``messageId``). The ids the stream gave reasoning and data parts (``r1``,
    ``d1``, ...) are kept, as ``useChat`` keeps them.
    """
    parts: list[UIMessagePart] = []
    reasoning = 0
    for index, part in enumerate(message.parts):
        for piece in _split_at_steps(part, sorted(offset for at, offset in message.step_starts if at == index)):
            parts.append(piece)
            if piece.type == "reasoning":
                reasoning += 1
                piece.id = f"r{reasoning}"
    parts += [UIMessagePart("step-start") for at, _ in message.step_starts if at == len(message.parts)]
    parts += [UIMessagePart(_data_type(data), id=f"d{n}", data=data) for n, data in enumerate(message.data, 1)]
    return UIMessage(id=id, role="assistant", parts=parts)


def _split_at_steps(
    part: TextPart | ReasoningPart | ToolCallPart | SourcePart | FilePart, offsets: list[int]
) -> list[UIMessagePart]:
    """The UI parts of ``part``, with a ``step-start`` at each offset of its text where a step began."""
    if not isinstance(part, TextPart | ReasoningPart):
        return [*(UIMessagePart("step-start") for _ in offsets), _ui_part(part)]
    pieces: list[UIMessagePart] = []
    cut = 0
    for offset in offsets:
        if offset > cut:
            pieces.append(_ui_part(type(part)(part.text[cut:offset])))
            cut = offset
        pieces.append(UIMessagePart("step-start"))
    return [*pieces, _ui_part(type(part)(part.text[cut:]))]


def continue_ui_message(stored: UIMessage, message: AssistantMessage) -> UIMessage:
    """``stored`` (the ``UIMessage`` kept from an earlier run) continued by a run that carried its id
    (``message_id=request.continued_message_id``), as ``useChat`` continues it after a tool approval.

    A tool part of a call the run continued takes the call's new state (its output, or
    ``output-denied``) in place; the run's other parts follow the stored ones.
    """
    parts = list(stored.parts)
    where = {part.tool_call_id: index for index, part in enumerate(parts) if part.tool_call_id is not None}
    for part in to_ui_message(message, id=stored.id).parts:
        if part.tool_call_id in where:
            parts[where[part.tool_call_id]] = part
        else:
            parts.append(part)
    return UIMessage(id=stored.id, role="assistant", parts=parts, metadata=stored.metadata)


def _ui_part(part: TextPart | ReasoningPart | ToolCallPart | SourcePart | FilePart) -> UIMessagePart:
    match part:
        case TextPart() | ReasoningPart():
            return UIMessagePart("text" if isinstance(part, TextPart) else "reasoning", text=part.text, state="done")
        case ToolCallPart():
            approval = part.approval
            tool = UIMessagePart(f"tool-{part.tool_name}", tool_call_id=part.tool_call_id, input=part.args)
            tool.approval = None if approval is None else _decision(approval)
            if approval is not None and approval.approved is False:
                tool.state = "output-denied"
            elif approval is not None and not part.has_result:
                tool.state = "approval-requested" if approval.approved is None else "approval-responded"
            elif not part.has_result:
                tool.state = "input-available"
            elif part.is_error:
                tool.state, tool.error_text = "output-error", _error_text(part.result)
            else:
                tool.state, tool.output = "output-available", part.result
            return tool
        case SourcePart(source_type="document"):
            return UIMessagePart(
                "source-document",
                source_id=part.id,
                title=part.title,
                media_type=part.media_type,
                filename=part.filename,
            )
        case SourcePart():
            return UIMessagePart("source-url", source_id=part.id, url=part.url, title=part.title)
        case FilePart():
            return UIMessagePart("file", url=f"data:{part.mime_type};base64,{part.data}", media_type=part.mime_type)


def _decision(approval: ToolCallApproval) -> ApprovalDecision:
    return ApprovalDecision(approval.id, approval.approved, approval.reason, approval.signature)


def to_model_messages(message: AssistantMessage) -> list[ModelMessage]:
    """The run's message as assistant-ui's runtimes send it back: AI SDK 5 model messages.

    An assistant message (text and ``tool-call`` parts, a call that waited for
    approval with its ``approval``), then a tool message of the results
    (``output``: ``json`` or ``error-json``) if any call has one.
    """
    said: list[ModelMessagePart] = []
    results: list[ModelMessagePart] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            said.append(ModelMessagePart("text", text=part.text))
        elif isinstance(part, ToolCallPart):
            call_id, name = part.tool_call_id, part.tool_name
            call = ModelMessagePart("tool-call", tool_call_id=call_id, tool_name=name, input=part.args)
            call.approval = None if part.approval is None else _decision(part.approval)
            said.append(call)
            if part.has_result:
                output = {"type": "error-json" if part.is_error else "json", "value": part.result}
                results.append(ModelMessagePart("tool-result", tool_call_id=call_id, tool_name=name, output=output))
    return [ModelMessage("assistant", said)] + ([ModelMessage("tool", results)] if results else [])


def to_agui_messages(message: AssistantMessage, *, id: str) -> list[AGUIMessage]:
    """The run's message as an AG-UI client keeps it: an assistant message (its text and tool calls),
    then one tool message per result (id ``<id>-<tool call id>``)."""
    calls = message.tool_calls
    assistant = AGUIMessage(
        id,
        "assistant",
        content=message.text or None,
        tool_calls=[
            AGUIToolCall(call.tool_call_id, "function", AGUIFunctionCall(call.tool_name, call.args_text))
            for call in calls
        ]
        or None,
    )
    results = [
        AGUIMessage(
            f"{id}-{call.tool_call_id}",
            "tool",
            content=call.result if isinstance(call.result, str) else json.dumps(call.result),
            tool_call_id=call.tool_call_id,
            error=_error_text(call.result) if call.is_error else None,
        )
        for call in calls
        if call.has_result
    ]
    return [assistant, *results]
