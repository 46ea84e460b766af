"""The data stream format: AI SDK data stream lines plus assistant-ui's ``aui-*`` lines.

Each frame is one line, ``<prefix>:<JSON>\\n``; the frames and values are those
of assistant-stream 0.0.36 for the same chunks. The stream ends with finish
frames (``e:`` for a step still open, then ``d:``), which 0.0.36 did not send.
A call whose arguments were still streaming when the run failed or was
cancelled ends with an error result instead of a final ``c:`` (``isFinal``):
the client completes open arguments itself at ``d:``, and runs a call's tool
only if it has no result.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any, Literal

import msgspec

from ..assistant_stream_chunk import (
    AnnotationsChunk,
    AssistantStreamChunk,
    DataChunk,
    DataPartChunk,
    DocumentSourceChunk,
    ErrorChunk,
    FileChunk,
    PreliminaryToolResultChunk,
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
    UpdateStateChunk,
    UsageChunk,
    WarningChunk,
)
from ..state import StateProxy
from ._frames import GENERIC_ERROR, MAX_FRAME_BYTES, Usage, delta_frames, dumps
from ._tools import EMPTY_ARGS, UNFINISHED_ARGS_ERROR, Approval, ToolCalls, WireToolCall, finish_reason
from .assistant_stream_response import AssistantStreamResponse
from .heartbeat import DATA_STREAM_KEEPALIVE_LINE, HeartbeatOption
from .stream_encoder import FinishStatus, StreamEncoder

__all__ = ["DataStreamEncoder", "DataStreamResponse", "StateProxyJSONEncoder"]


class StateProxyJSONEncoder(json.JSONEncoder):
    """``json.dumps(value, cls=StateProxyJSONEncoder)`` writes a :class:`StateProxy` as the value it views."""

    def default(self, o: Any) -> Any:
        if isinstance(o, StateProxy):
            return o._value()
        return super().default(o)


class _Frame(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class _ParentedText(_Frame):
    text_delta: str
    parent_id: str


class _ParentedReasoning(_Frame):
    reasoning_delta: str
    parent_id: str


class _ReasoningPartStart(_Frame):
    unstable_summary: str = msgspec.field(name="unstable_summary")
    parent_id: str | None = None


class _ToolCallStart(_Frame):
    tool_call_id: str
    tool_name: str
    parent_id: str | None = None


class _ArgsDelta(_Frame):
    tool_call_id: str
    args_text_delta: str
    is_final: bool = False


class _ToolResult(_Frame):
    tool_call_id: str
    result: Any
    artifact: Any = None
    is_error: bool = False
    is_preliminary: bool = False


class _ToolCallApproval(_Frame):
    tool_call_id: str
    approval: Approval


class _Source(_Frame):
    source_type: str
    id: str
    url: str
    title: str | None = None
    parent_id: str | None = None


class _DocumentSource(_Frame):
    source_type: Literal["document"]
    id: str
    title: str
    media_type: str
    filename: str | None = None
    parent_id: str | None = None


class _Warning(_Frame):
    error: str
    severity: str
    code: str | None = None


class _DataPart(_Frame):
    name: str
    data: Any
    parent_id: str | None = None


class _File(_Frame):
    data: str
    mime_type: str
    parent_id: str | None = None


class _StepStart(_Frame):
    message_id: str


class _StepFinish(_Frame):
    finish_reason: str
    usage: Usage
    is_continued: bool


class _MessageFinish(_Frame):
    finish_reason: str
    usage: Usage


def _line(prefix: bytes, value: Any) -> bytes:
    return prefix + dumps(value) + b"\n"


def _text_line(text: str) -> bytes:
    """The frame of an unparented text delta (a function of its own: the commonest frame)."""
    return b"0:" + dumps(text) + b"\n"


class _DataStreamWriter:
    def __init__(self) -> None:
        self._tools = ToolCalls()
        self._step_open = False
        self._usage = Usage()  # all steps together
        self._error_sent = False
        self._finished = False

    def encode(self, chunk: object) -> bytes:
        """Frames for ``chunk``; an object of a type this format does not know gets none."""
        if self._finished:
            return b""
        if type(chunk) is TextDeltaChunk and not chunk.parent_id:  # the commonest chunk, ahead of the match
            frame = _text_line(chunk.text_delta)  # what delta_frames() makes of it when it fits one frame
            return frame if len(frame) <= MAX_FRAME_BYTES else delta_frames(chunk.text_delta, _text_line)
        match chunk:
            case TextDeltaChunk(text_delta=delta, parent_id=str(parent)) if parent:
                return delta_frames(delta, lambda piece: _line(b"aui-text-delta:", _ParentedText(piece, parent)))
            case TextDeltaChunk():
                return delta_frames(chunk.text_delta, _text_line)
            case ReasoningDeltaChunk(reasoning_delta=delta, parent_id=str(parent)) if parent:
                return delta_frames(
                    delta, lambda piece: _line(b"aui-reasoning-delta:", _ParentedReasoning(piece, parent))
                )
            case ReasoningDeltaChunk():
                return delta_frames(chunk.reasoning_delta, lambda piece: _line(b"g:", piece))
            case ReasoningPartStartChunk(unstable_summary=str(summary)):
                return _line(b"aui-reasoning-part-start:", _ReasoningPartStart(summary, chunk.parent_id or None))
            case ToolCallBeginChunk():
                if self._tools.begin(chunk) is None:
                    return b""
                return _line(b"b:", _ToolCallStart(chunk.tool_call_id, chunk.tool_name, chunk.parent_id or None))
            case ToolCallDeltaChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is None:
                    return b""
                streaming.append_args(chunk.args_text_delta)
                call_id = chunk.tool_call_id
                return delta_frames(chunk.args_text_delta, lambda piece: _line(b"c:", _ArgsDelta(call_id, piece)))
            case ToolCallArgsFinishChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                return b"" if streaming is None else self._finish_args(streaming)
            case ToolResultChunk():
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is None:
                    return b""
                return self._result(call, chunk.result, chunk.artifact, chunk.is_error)
            case ToolApprovalRequestChunk():
                call = self._tools.request_approval(chunk)
                if call is None:
                    return b""
                finish = b"" if call.args_finished else self._finish_args(call)
                approval = Approval(chunk.approval_id, chunk.signature)
                return finish + _line(b"aui-tool-call-approval:", _ToolCallApproval(chunk.tool_call_id, approval))
            case ToolApprovalResponseChunk():
                # The stream's own decoder knows only the calls begun in it: the call is shown again, decided.
                call = self._tools.continue_call(chunk)
                if call is None:
                    return b""
                call_id = chunk.tool_call_id
                begin = _line(b"b:", _ToolCallStart(call_id, chunk.tool_name, chunk.parent_id or None))
                args = delta_frames(chunk.args_text, lambda piece: _line(b"c:", _ArgsDelta(call_id, piece)))
                decided = Approval(chunk.approval_id, chunk.signature, chunk.approved, chunk.reason)
                finish = _line(b"c:", _ArgsDelta(call_id, "", is_final=True))
                return begin + args + finish + _line(b"aui-tool-call-approval:", _ToolCallApproval(call_id, decided))
            case DataChunk():
                return _line(b"2:", [chunk.data])
            case ErrorChunk():
                self._error_sent = True
                return _line(b"3:", chunk.error)
            case SourceChunk():
                source = _Source(chunk.source_type, chunk.id, chunk.url, chunk.title, chunk.parent_id or None)
                return _line(b"h:", source)
            case FileChunk():
                return _line(b"k:", _File(chunk.data, chunk.mime_type, chunk.parent_id or None))
            case PreliminaryToolResultChunk():
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is None:
                    return b""
                call.args_finished = True
                result = _ToolResult(call.tool_call_id, chunk.result, chunk.artifact, is_preliminary=True)
                return _line(b"a:", result)
            case DocumentSourceChunk():
                document = _DocumentSource(
                    "document", chunk.id, chunk.title, chunk.media_type, chunk.filename, chunk.parent_id
                )
                return _line(b"h:", document)
            case WarningChunk():
                return _line(b"3:", _Warning(chunk.error, chunk.severity, chunk.code))
            case UsageChunk():
                self._usage.add(chunk.input_tokens, chunk.output_tokens)
            case DataPartChunk(transient=False):
                return _line(b"aui-data:", _DataPart(chunk.name, chunk.data, chunk.parent_id))
            case UpdateStateChunk():
                return _line(b"aui-state:", chunk.operations)
            case AnnotationsChunk():
                return _line(b"8:", chunk.annotations)
            case StepStartChunk():
                self._step_open = True
                return _line(b"f:", _StepStart(chunk.message_id))
            case StepFinishChunk():
                self._step_open = False
                self._usage.add(chunk.input_tokens, chunk.output_tokens)
                usage = Usage(chunk.input_tokens, chunk.output_tokens)
                return _line(b"e:", _StepFinish(chunk.finish_reason, usage, chunk.is_continued))
        return b""

    def _result(self, call: WireToolCall, result: Any, artifact: Any, is_error: bool) -> bytes:
        call.args_finished = call.has_result = True
        return _line(b"a:", _ToolResult(call.tool_call_id, result, artifact, is_error))

    def _finish_args(self, call: WireToolCall) -> bytes:
        """``c:`` with ``isFinal``, as the npm encoder writes it ("{}" for a call without arguments)."""
        call.args_finished = True
        return _line(b"c:", _ArgsDelta(call.tool_call_id, "" if call.args else EMPTY_ARGS, is_final=True))

    def finish(self, status: FinishStatus) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        if status == "completed":
            frames = [self._finish_args(call) for call in self._tools.open_args()]
        else:
            frames = [self._result(call, UNFINISHED_ARGS_ERROR, None, True) for call in self._tools.open_args()]
        if status == "error" and not self._error_sent:
            frames.append(_line(b"3:", GENERIC_ERROR))
        reason = finish_reason(status, self._tools)
        if self._step_open:
            frames.append(_line(b"e:", _StepFinish(reason, Usage(), is_continued=False)))
        frames.append(_line(b"d:", _MessageFinish(reason, self._usage)))
        return b"".join(frames)


class DataStreamEncoder(StreamEncoder):
    """The data stream format (``x-vercel-ai-data-stream: v1``), read by assistant-ui's ``DataStreamDecoder``."""

    frame_end = "\n"

    def get_media_type(self) -> str:
        return "text/plain; charset=utf-8"

    def get_headers(self) -> dict[str, str]:
        return {"x-vercel-ai-data-stream": "v1"}

    def get_keepalive_token(self) -> str:
        return DATA_STREAM_KEEPALIVE_LINE

    def open(self) -> _DataStreamWriter:
        return _DataStreamWriter()


class DataStreamResponse(AssistantStreamResponse):
    """A streaming HTTP response in the data stream format.

    As in assistant-stream 0.0.36, it writes no keepalives unless ``heartbeat``
    asks for them (``True`` for every 15 s, or seconds).
    """

    def __init__(
        self, stream: AsyncIterable[AssistantStreamChunk], heartbeat: HeartbeatOption = False, **kwargs: Any
    ) -> None:
        super().__init__(stream, DataStreamEncoder(), heartbeat, **kwargs)
