"""The AI SDK UI message stream (AI SDK 5+), read by ``useChat``: typed chunks as SSE ``data:`` events.

The client validates every frame and keeps strict order, so the writer keeps
the state the client keeps: a part is started before its deltas and ended
before the next part; a tool call's input is announced before its output; a
step (``start-step`` .. ``finish-step``) is always open around content. As in
the AI SDK, a step ends once tool outputs have been sent and new content
follows (the next model turn), so ``useChat`` sees every answered tool call in
a finished step.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Callable
from functools import partial
from typing import Any, Literal

import msgspec

from ..assistant_stream_chunk import (
    AssistantStreamChunk,
    DataChunk,
    DataPartChunk,
    DocumentSourceChunk,
    ErrorChunk,
    FileChunk,
    MessageMetadataChunk,
    PreliminaryToolResultChunk,
    ProviderMetadata,
    ProviderMetadataChunk,
    ReasoningDeltaChunk,
    ReasoningPartStartChunk,
    SourceChunk,
    StepFinishChunk,
    StepStartChunk,
    TextDeltaChunk,
    ToolApprovalRequestChunk,
    ToolApprovalResponseChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UsageChunk,
    WarningChunk,
)
from ._frames import GENERIC_ERROR, SSE_DONE, SSE_MEDIA_TYPE, SSEFrames, UsageRecord, dumps
from ._parts import TextKind, TextParts
from ._tools import UNFINISHED_ARGS_ERROR, ToolCalls, WireToolCall, parse_args
from .assistant_stream_response import AssistantStreamResponse
from .stream_encoder import FinishStatus, StreamEncoder

__all__ = ["UIMessageStreamEncoder", "UIMessageStreamResponse"]


class _Frame(msgspec.Struct, tag_field="type", rename="camel", omit_defaults=True):
    pass


class _Start(_Frame, tag="start"):
    message_id: str
    message_metadata: dict[str, Any] | None = None


class _MessageMetadata(_Frame, tag="message-metadata"):
    message_metadata: dict[str, Any]


class _StartStep(_Frame, tag="start-step"):
    pass


class _FinishStep(_Frame, tag="finish-step"):
    pass


class _TextStart(_Frame, tag="text-start"):
    id: str


class _TextDelta(_Frame, tag="text-delta"):
    id: str
    delta: str
    provider_metadata: ProviderMetadata | None = None


class _TextEnd(_Frame, tag="text-end"):
    id: str


class _ReasoningStart(_Frame, tag="reasoning-start"):
    id: str


class _ReasoningDelta(_Frame, tag="reasoning-delta"):
    id: str
    delta: str
    provider_metadata: ProviderMetadata | None = None


class _ReasoningEnd(_Frame, tag="reasoning-end"):
    id: str


class _ToolInputStart(_Frame, tag="tool-input-start"):
    tool_call_id: str
    tool_name: str


class _ToolInputDelta(_Frame, tag="tool-input-delta"):
    tool_call_id: str
    input_text_delta: str


class _ToolInputAvailable(_Frame, tag="tool-input-available"):
    tool_call_id: str
    tool_name: str
    input: Any
    provider_metadata: ProviderMetadata | None = None


class _ToolInputError(_Frame, tag="tool-input-error"):
    tool_call_id: str
    tool_name: str
    input: Any
    error_text: str
    provider_metadata: ProviderMetadata | None = None


class _ToolApprovalRequest(_Frame, tag="tool-approval-request"):
    approval_id: str
    tool_call_id: str
    signature: str


class _ToolOutputDenied(_Frame, tag="tool-output-denied"):
    tool_call_id: str


class _ToolOutputAvailable(_Frame, tag="tool-output-available"):
    tool_call_id: str
    output: Any
    preliminary: bool = False


class _ToolOutputError(_Frame, tag="tool-output-error"):
    tool_call_id: str
    error_text: str


class _SourceUrl(_Frame, tag="source-url"):
    source_id: str
    url: str
    title: str | None = None


class _SourceDocument(_Frame, tag="source-document"):
    source_id: str
    media_type: str
    title: str
    filename: str | None = None


class _File(_Frame, tag="file"):
    url: str
    media_type: str


class _DataPart(msgspec.Struct, omit_defaults=True, kw_only=True):
    type: str
    id: str | None = None
    data: Any
    transient: bool = False


class _Error(_Frame, tag="error"):
    error_text: str


class _Finish(_Frame, tag="finish"):
    finish_reason: str
    message_metadata: dict[str, Any] | None = None


class _Abort(_Frame, tag="abort"):
    pass


_PART_STARTS: dict[TextKind, type[_TextStart | _ReasoningStart]] = {"text": _TextStart, "reasoning": _ReasoningStart}
_PART_DELTAS: dict[TextKind, type[_TextDelta | _ReasoningDelta]] = {"text": _TextDelta, "reasoning": _ReasoningDelta}
_PART_ENDS: dict[TextKind, type[_TextEnd | _ReasoningEnd]] = {"text": _TextEnd, "reasoning": _ReasoningEnd}


def _delta_event(kind: TextKind, part_id: str) -> Callable[[str], _TextDelta | _ReasoningDelta]:
    return partial(_PART_DELTAS[kind], part_id)


def _data_type(data: Any) -> str:
    """``data-<kind>`` for an object with a string ``kind``, else ``data-data``."""
    kind = data.get("kind") if isinstance(data, dict) else None
    return f"data-{kind}" if isinstance(kind, str) and kind else "data-data"


def _error_text(result: Any) -> str:
    """A failed tool's message: the result if it is a string, its ``error`` string, else its JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict) and isinstance(result.get("error"), str):
        return str(result["error"])
    return dumps(result).decode()


class _UIMessageStreamWriter:
    def __init__(self, message_id: str) -> None:
        self._message_id = message_id
        self._out = SSEFrames()
        self._started = False
        self._step_open = False
        self._step_has_output = False
        self._text = TextParts(self._out, self._start_text, _delta_event, self._end_text)
        self._counters = {"text": 0, "reasoning": 0, "data": 0}
        self._tools = ToolCalls()
        self._tool_metadata: dict[str, ProviderMetadata] = {}
        self._usage = UsageRecord()
        self._error_sent = False
        self._finished = False

    def _next_id(self, kind: Literal["text", "reasoning", "data"]) -> str:
        self._counters[kind] += 1
        return f"{kind[0]}{self._counters[kind]}"

    def _ensure_started(self, metadata: dict[str, Any] | None = None) -> None:
        if not self._started:
            self._started = True
            self._out.add(_Start(self._message_id, metadata))
        elif metadata is not None:
            self._out.add(_MessageMetadata(metadata))

    def _close_open_parts(self) -> None:
        """End the open text part and the arguments of every call still streaming them."""
        self._text.close()
        for call in self._tools.open_args():
            self._input_available(call)

    def _fail_open_calls(self) -> None:
        """The run failed or was cancelled: calls still streaming their arguments end as input errors."""
        self._text.close()
        for call in self._tools.open_args():
            call.args_finished = call.has_result = True
            input = parse_args(call.args_text)
            metadata = self._tool_metadata.get(call.tool_call_id)
            self._out.add(_ToolInputError(call.tool_call_id, call.tool_name, input, UNFINISHED_ARGS_ERROR, metadata))

    def _finish_step(self) -> None:
        # useChat looks a call's input frames up in the current step only: end them in this one.
        self._close_open_parts()
        if self._step_open:
            self._step_open = False
            self._out.add(_FinishStep())

    def _start_step(self) -> None:
        self._ensure_started()
        self._step_open, self._step_has_output = True, False
        self._out.add(_StartStep())

    def _new_part(self) -> None:
        """Before a new part: end the open text part, and the step once it has tool outputs
        and no call in it is still streaming its input."""
        self._text.close()
        if self._step_open and self._step_has_output and not self._tools.open_args():
            self._finish_step()
        if not self._step_open:
            self._start_step()

    def encode(self, chunk: AssistantStreamChunk) -> bytes:
        if self._finished:
            return b""
        match chunk:
            case TextDeltaChunk():
                self._text.delta("text", chunk.text_delta, chunk.parent_id)
            case ReasoningDeltaChunk():
                self._text.delta("reasoning", chunk.reasoning_delta, chunk.parent_id)
            case ReasoningPartStartChunk(unstable_summary=str()):
                self._text.start("reasoning", chunk.parent_id)  # the format has no field for the summary
            case ToolCallBeginChunk():
                if self._tools.begin(chunk) is not None:
                    self._new_part()
                    self._out.add(_ToolInputStart(chunk.tool_call_id, chunk.tool_name))
            case ToolCallDeltaChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is not None:
                    streaming.append_args(chunk.args_text_delta)
                    call_id = chunk.tool_call_id
                    self._out.add_delta(chunk.args_text_delta, lambda piece: _ToolInputDelta(call_id, piece))
            case ToolCallArgsFinishChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is not None:
                    self._input_available(streaming)
            case ToolResultChunk():
                self._tool_result(chunk)
            case ToolApprovalRequestChunk():
                call = self._tools.request_approval(chunk)
                if call is not None:
                    if not call.args_finished:
                        self._input_available(call)
                    self._out.add(_ToolApprovalRequest(chunk.approval_id, chunk.tool_call_id, chunk.signature))
            case ToolApprovalResponseChunk():
                # The client continues the message that holds the call (``start`` carries its id).
                self._tools.continue_call(chunk)
            case SourceChunk():
                self._new_part()
                self._out.add(_SourceUrl(chunk.id, chunk.url, chunk.title))
            case FileChunk():
                self._new_part()
                self._out.add(_File(f"data:{chunk.mime_type};base64,{chunk.data}", chunk.mime_type))
            case DataChunk():
                self._new_part()
                self._out.add(_DataPart(type=_data_type(chunk.data), id=self._next_id("data"), data=chunk.data))
            case DataPartChunk(transient=True):
                self._ensure_started()
                self._out.add(_DataPart(type=f"data-{chunk.name}", id=chunk.id, data=chunk.data, transient=True))
            case DataPartChunk():
                self._new_part()
                self._out.add(_DataPart(type=f"data-{chunk.name}", id=chunk.id, data=chunk.data))
            case WarningChunk():
                # useChat stops at an `error` frame: a warning is a transient part, for `onData`.
                self._ensure_started()
                warning = {"error": chunk.error, "severity": chunk.severity}
                if chunk.code is not None:
                    warning["code"] = chunk.code
                self._out.add(_DataPart(type="data-warning", data=warning, transient=True))
            case DocumentSourceChunk():
                self._new_part()
                self._out.add(_SourceDocument(chunk.id, chunk.media_type, chunk.title, chunk.filename))
            case PreliminaryToolResultChunk():
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is not None:
                    if not call.args_finished:
                        self._input_available(call)
                    self._out.add(_ToolOutputAvailable(call.tool_call_id, chunk.result, preliminary=True))
            case ProviderMetadataChunk(tool_call_id=str(tool_call_id)):
                if self._tools.streaming(tool_call_id) is not None:
                    self._tool_metadata[tool_call_id] = chunk.provider_metadata
            case ProviderMetadataChunk() if (part := self._text.open) is not None:
                self._out.add(_PART_DELTAS[part.kind](part.id, "", chunk.provider_metadata))
            case MessageMetadataChunk():
                self._ensure_started(chunk.metadata)
            case UsageChunk():
                self._usage.add(chunk)
            case ErrorChunk():
                # useChat stops reading at an error: end what is open first.
                self._ensure_started()
                self._fail_open_calls()
                self._error_sent = True
                self._out.add(_Error(chunk.error))
            case StepStartChunk():
                self._finish_step()
                self._start_step()
            case StepFinishChunk():
                self._finish_step()
                self._usage.add(chunk)
        return self._out.take()

    def _finish_metadata(self) -> dict[str, Any] | None:
        """The finish frame's message metadata: the run's token usage (as the AI SDK's), once it called
        ``add_usage`` (as in the AI SDK, usage of steps alone is not sent)."""
        usage = self._usage.token_usage()
        return None if usage is None or not self._usage.recorded else {"usage": usage}

    def _start_text(self, kind: TextKind, parent_id: str | None, summary: str | None) -> str:
        """A new text or reasoning part (its id), in a step that is open."""
        self._new_part()
        part_id = self._next_id(kind)
        self._out.add(_PART_STARTS[kind](part_id))
        return part_id

    def _end_text(self, kind: TextKind, part_id: str) -> None:
        self._out.add(_PART_ENDS[kind](part_id))

    def _input_available(self, call: WireToolCall) -> None:
        call.args_finished = True
        metadata = self._tool_metadata.get(call.tool_call_id)
        input = parse_args(call.args_text)
        self._out.add(_ToolInputAvailable(call.tool_call_id, call.tool_name, input, metadata))

    def _tool_result(self, chunk: ToolResultChunk) -> None:
        call = self._tools.awaiting_result(chunk.tool_call_id)
        if call is None:
            return
        if not call.args_finished:
            self._input_available(call)
        call.has_result = True
        if call.continued:
            self._text.close()
            if not self._step_open:
                self._start_step()
        self._step_has_output = True
        if call.denied:
            self._out.add(_ToolOutputDenied(call.tool_call_id))
        elif chunk.is_error:
            self._out.add(_ToolOutputError(call.tool_call_id, _error_text(chunk.result)))
        else:
            self._out.add(_ToolOutputAvailable(call.tool_call_id, chunk.result))

    def finish(self, status: FinishStatus) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        self._ensure_started()
        if status != "completed":
            self._fail_open_calls()
        self._finish_step()
        if status == "cancelled":
            self._out.add(_Abort())
        else:
            if status == "error" and not self._error_sent:
                self._out.add(_Error(GENERIC_ERROR))
            reason = "error" if status == "error" else "tool-calls" if self._tools.pending() else "stop"
            self._out.add(_Finish(reason, self._finish_metadata()))
        return self._out.take() + SSE_DONE


class UIMessageStreamEncoder(StreamEncoder):
    """The AI SDK UI message stream (``x-vercel-ai-ui-message-stream: v1``).

    ``message_id`` is the id of the assistant message the client builds
    (default: a new random id per stream). A stream that continues the
    client's last assistant message (after a tool approval) must carry that
    message's id, or the client adds a second message:
    ``ChatRequest.continued_message_id``.
    """

    def __init__(self, message_id: str | None = None) -> None:
        self.message_id = message_id

    def get_media_type(self) -> str:
        return SSE_MEDIA_TYPE

    def get_headers(self) -> dict[str, str]:
        return {"x-vercel-ai-ui-message-stream": "v1"}

    def open(self) -> _UIMessageStreamWriter:
        return _UIMessageStreamWriter(self.message_id or f"msg-{uuid.uuid4().hex}")


class UIMessageStreamResponse(AssistantStreamResponse):
    """A streaming HTTP response in the AI SDK UI message stream format, for ``useChat``."""

    def __init__(
        self, stream: AsyncIterable[AssistantStreamChunk], *, message_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(stream, UIMessageStreamEncoder(message_id), **kwargs)
