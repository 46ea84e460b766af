"""The assistant-transport format: assistant-ui's part-addressed chunks as SSE ``data:`` events.

Content is framed as parts: ``part-start`` opens one at the next index, deltas
and results address it by ``path`` and ``part-finish`` closes it. Consecutive
text (or reasoning) deltas with the same parent share a part. The frames are
those of assistant-stream 0.0.36 for the same chunks; the stream ends with a
``message-finish`` frame (new) and ``data: [DONE]``. A call whose arguments
were still streaming when the run failed or was cancelled is finished as a
part without ``tool-call-args-text-finish`` (which would announce them complete).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
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
    UpdateStateChunk,
    UsageChunk,
    WarningChunk,
)
from ._frames import GENERIC_ERROR, SSE_DONE, SSE_MEDIA_TYPE, SSEFrames, Usage
from ._parts import TextKind, TextParts
from ._tools import EMPTY_ARGS, Approval, ToolCalls, WireToolCall, finish_reason
from .assistant_stream_response import AssistantStreamResponse
from .data_stream import StateProxyJSONEncoder
from .heartbeat import HeartbeatOption
from .stream_encoder import FinishStatus, StreamEncoder

__all__ = ["AssistantTransportEncoder", "AssistantTransportResponse", "StateProxyJSONEncoder"]


class _Part(msgspec.Struct, tag_field="type", rename="camel", omit_defaults=True):
    pass


class _TextPart(_Part, tag="text"):
    parent_id: str | None = None


class _ReasoningPart(_Part, tag="reasoning"):
    parent_id: str | None = None
    unstable_summary: str | None = msgspec.field(default=None, name="unstable_summary")


class _ToolCallPart(_Part, tag="tool-call"):
    tool_call_id: str
    tool_name: str
    parent_id: str | None = None


class _SourcePart(_Part, tag="source"):
    source_type: str
    id: str
    url: str
    title: str | None = None
    parent_id: str | None = None


class _DocumentSourcePart(_Part, tag="source"):
    source_type: Literal["document"]
    id: str
    title: str
    media_type: str
    filename: str | None = None
    parent_id: str | None = None


class _DataPart(_Part, tag="data"):
    name: str
    data: Any
    parent_id: str | None = None


class _FilePart(_Part, tag="file"):
    data: str
    mime_type: str
    parent_id: str | None = None


class _Frame(msgspec.Struct, tag_field="type", rename="camel", omit_defaults=True):
    pass


class _PartStart(_Frame, tag="part-start"):
    part: _Part
    path: list[int]  # always []: a new part goes at the end of the message


class _TextDelta(_Frame, tag="text-delta"):
    text_delta: str
    path: list[int]
    provider_metadata: ProviderMetadata | None = None


class _Result(_Frame, tag="result"):
    result: Any
    is_error: bool
    path: list[int]
    artifact: Any = None
    is_preliminary: bool = False


class _ArgsFinish(_Frame, tag="tool-call-args-text-finish"):
    path: list[int]


class _ToolCallApproval(_Frame, tag="tool-call-approval"):
    approval: Approval
    path: list[int]


class _PartFinish(_Frame, tag="part-finish"):
    path: list[int]


class _Data(_Frame, tag="data"):
    data: list[Any]


class _Annotations(_Frame, tag="annotations"):
    annotations: list[Any]


class _StepStart(_Frame, tag="step-start"):
    message_id: str


class _StepFinish(_Frame, tag="step-finish"):
    finish_reason: str
    usage: Usage
    is_continued: bool


class _MessageFinish(_Frame, tag="message-finish"):
    finish_reason: str
    usage: Usage


class _Error(_Frame, tag="error"):
    error: str


class _Warning(_Frame, tag="error"):
    error: str
    severity: str
    code: str | None = None


class _UpdateState(_Frame, tag="update-state"):
    operations: list[Any]


def _deltas_at(path: list[int]) -> Callable[[str], _TextDelta]:
    """The ``text-delta`` frame of a piece at ``path``: text, reasoning and tool arguments all stream as these."""
    return lambda piece: _TextDelta(piece, path)


class _AssistantTransportWriter:
    def __init__(self) -> None:
        self._out = SSEFrames()
        self._parts = 0
        self._text = TextParts(self._out, self._start_text, lambda kind, path: _deltas_at(path), self._end_text)
        self._tools = ToolCalls()
        self._paths: dict[str, list[int]] = {}
        self._usage = Usage()  # all steps together
        self._error_sent = False
        self._finished = False

    def encode(self, chunk: object) -> bytes:
        """Frames for ``chunk``; an object of a type this format does not know gets none."""
        if self._finished:
            return b""
        out = self._out
        match chunk:
            case TextDeltaChunk():
                self._text.delta("text", chunk.text_delta, chunk.parent_id)
            case ReasoningDeltaChunk():
                self._text.delta("reasoning", chunk.reasoning_delta, chunk.parent_id)
            case ReasoningPartStartChunk(unstable_summary=str(summary)):
                self._text.start("reasoning", chunk.parent_id, summary)
            case ToolCallBeginChunk():
                call = self._tools.begin(chunk)
                if call is not None:
                    self._text.close()
                    self._paths[call.tool_call_id] = self._next_path()
                    out.add(_PartStart(_ToolCallPart(chunk.tool_call_id, chunk.tool_name, chunk.parent_id), []))
            case ToolCallDeltaChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is not None:
                    streaming.append_args(chunk.args_text_delta)
                    self._args_delta(chunk.args_text_delta, self._paths[chunk.tool_call_id])
            case ToolCallArgsFinishChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is not None:
                    self._finish_args(streaming)
            case ToolResultChunk():
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is not None:
                    call.has_result = True
                    out.add(_Result(chunk.result, chunk.is_error, self._paths[call.tool_call_id], chunk.artifact))
                    self._close_tool(call)
            case ToolApprovalRequestChunk():
                call = self._tools.request_approval(chunk)
                if call is not None:
                    if not call.args_finished:
                        self._finish_args(call)
                    approval = Approval(chunk.approval_id, chunk.signature)
                    out.add(_ToolCallApproval(approval, self._paths[call.tool_call_id]))
            case ToolApprovalResponseChunk():
                # The stream's own decoder knows only the calls begun in it: the call is shown again, decided.
                call = self._tools.continue_call(chunk)
                if call is not None:
                    self._text.close()
                    path = self._paths[call.tool_call_id] = self._next_path()
                    out.add(_PartStart(_ToolCallPart(chunk.tool_call_id, chunk.tool_name, chunk.parent_id), []))
                    self._args_delta(chunk.args_text, path)
                    out.add(_ArgsFinish(path))
                    decided = Approval(chunk.approval_id, chunk.signature, chunk.approved, chunk.reason)
                    out.add(_ToolCallApproval(decided, path))
            case SourceChunk():
                self._whole_part(_SourcePart(chunk.source_type, chunk.id, chunk.url, chunk.title, chunk.parent_id))
            case FileChunk():
                self._whole_part(_FilePart(chunk.data, chunk.mime_type, chunk.parent_id))
            case PreliminaryToolResultChunk():
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is not None:
                    if not call.args_finished:
                        self._finish_args(call)
                    path = self._paths[call.tool_call_id]
                    out.add(_Result(chunk.result, False, path, chunk.artifact, is_preliminary=True))
            case ProviderMetadataChunk(tool_call_id=None) if (part := self._text.open) is not None:
                out.add(_TextDelta("", part.id, chunk.provider_metadata))
            case DocumentSourceChunk():
                self._whole_part(
                    _DocumentSourcePart(
                        "document", chunk.id, chunk.title, chunk.media_type, chunk.filename, chunk.parent_id
                    )
                )
            case DataPartChunk(transient=False):
                self._whole_part(_DataPart(chunk.name, chunk.data, chunk.parent_id))
            case WarningChunk():
                out.add(_Warning(chunk.error, chunk.severity, chunk.code))
            case UsageChunk():
                self._usage.add(chunk.input_tokens, chunk.output_tokens)
            case DataChunk():
                out.add(_Data([chunk.data]))
            case AnnotationsChunk():
                out.add(_Annotations(chunk.annotations))
            case StepStartChunk():
                out.add(_StepStart(chunk.message_id))
            case StepFinishChunk():
                self._usage.add(chunk.input_tokens, chunk.output_tokens)
                usage = Usage(chunk.input_tokens, chunk.output_tokens)
                out.add(_StepFinish(chunk.finish_reason, usage, chunk.is_continued))
            case ErrorChunk():
                self._error_sent = True
                out.add(_Error(chunk.error))
            case UpdateStateChunk():
                out.add(_UpdateState(chunk.operations))
        return out.take()

    def _next_path(self) -> list[int]:
        path = [self._parts]
        self._parts += 1
        return path

    def _start_text(self, kind: TextKind, parent_id: str | None, summary: str | None) -> list[int]:
        """A new text or reasoning part at the next index: its path."""
        part = _TextPart(parent_id) if kind == "text" else _ReasoningPart(parent_id, summary)
        path = self._next_path()
        self._out.add(_PartStart(part, []))
        return path

    def _end_text(self, kind: TextKind, path: list[int]) -> None:
        self._out.add(_PartFinish(path))

    def _args_delta(self, delta: str, path: list[int]) -> None:
        self._out.add_delta(delta, _deltas_at(path))

    def _whole_part(self, part: _Part) -> None:
        """A part with no deltas (source, file): start and finish at once."""
        self._text.close()
        path = self._next_path()
        self._out.add(_PartStart(part, []))
        self._out.add(_PartFinish(path))

    def _finish_args(self, call: WireToolCall) -> None:
        call.args_finished = True
        path = self._paths[call.tool_call_id]
        if not call.args:
            self._out.add(_TextDelta(EMPTY_ARGS, path))
        self._out.add(_ArgsFinish(path))

    def _close_tool(self, call: WireToolCall, *, complete: bool = True) -> None:
        """Finish a call's part; ``complete``: its arguments are whole, if not finished yet."""
        if not call.args_finished and complete:
            self._finish_args(call)
        self._out.add(_PartFinish(self._paths.pop(call.tool_call_id)))

    def finish(self, status: FinishStatus) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        self._text.close()
        for call in self._tools.pending():
            self._close_tool(call, complete=status == "completed")
        if status == "error" and not self._error_sent:
            self._out.add(_Error(GENERIC_ERROR))
        self._out.add(_MessageFinish(finish_reason(status, self._tools), self._usage))
        return self._out.take() + SSE_DONE


class AssistantTransportEncoder(StreamEncoder):
    """The assistant-transport format, read by assistant-ui's ``AssistantTransportDecoder``."""

    def get_media_type(self) -> str:
        return SSE_MEDIA_TYPE

    def open(self) -> _AssistantTransportWriter:
        return _AssistantTransportWriter()


class AssistantTransportResponse(AssistantStreamResponse):
    """A streaming HTTP response in the assistant-transport format."""

    def __init__(
        self, stream: AsyncIterable[AssistantStreamChunk], heartbeat: HeartbeatOption = True, **kwargs: Any
    ) -> None:
        super().__init__(stream, AssistantTransportEncoder(), heartbeat, **kwargs)
