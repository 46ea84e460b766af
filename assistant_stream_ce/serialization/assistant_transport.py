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
from ._frames import GENERIC_ERROR, SSE_DONE, SSE_MEDIA_TYPE, Usage, delta_frames, sse
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


class _AssistantTransportWriter:
    def __init__(self) -> None:
        self._parts = 0
        # the open text or reasoning part: its kind, parent id and path
        self._text: tuple[type[_TextPart | _ReasoningPart], str | None, list[int]] | None = None
        self._tools = ToolCalls()
        self._paths: dict[str, list[int]] = {}
        self._usage = Usage()  # all steps together
        self._error_sent = False
        self._finished = False

    def encode(self, chunk: object) -> bytes:
        """Frames for ``chunk``; an object of a type this format does not know gets none."""
        if self._finished:
            return b""
        match chunk:
            case TextDeltaChunk():
                return self._text_delta(_TextPart, chunk.text_delta, chunk.parent_id)
            case ReasoningDeltaChunk():
                return self._text_delta(_ReasoningPart, chunk.reasoning_delta, chunk.parent_id)
            case ReasoningPartStartChunk(unstable_summary=str(summary)):
                return self._open_text(_ReasoningPart(chunk.parent_id, summary))[0]
            case ToolCallBeginChunk():
                call = self._tools.begin(chunk)
                if call is None:
                    return b""
                frames = self._close_text()
                self._paths[call.tool_call_id] = self._next_path()
                part = _ToolCallPart(chunk.tool_call_id, chunk.tool_name, chunk.parent_id)
                return frames + sse(_PartStart(part, []))
            case ToolCallDeltaChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is None:
                    return b""
                streaming.append_args(chunk.args_text_delta)
                return self._delta(chunk.args_text_delta, self._paths[chunk.tool_call_id])
            case ToolCallArgsFinishChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                return b"" if streaming is None else self._finish_args(streaming)
            case ToolResultChunk():
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is None:
                    return b""
                call.has_result = True
                path = self._paths[call.tool_call_id]
                result = sse(_Result(chunk.result, chunk.is_error, path, chunk.artifact))
                return result + self._close_tool(call)
            case ToolApprovalRequestChunk():
                call = self._tools.request_approval(chunk)
                if call is None:
                    return b""
                path = self._paths[call.tool_call_id]
                finish = b"" if call.args_finished else self._finish_args(call)
                return finish + sse(_ToolCallApproval(Approval(chunk.approval_id, chunk.signature), path))
            case ToolApprovalResponseChunk():
                # The stream's own decoder knows only the calls begun in it: the call is shown again, decided.
                call = self._tools.continue_call(chunk)
                if call is None:
                    return b""
                frames = self._close_text()
                path = self._paths[call.tool_call_id] = self._next_path()
                part = _ToolCallPart(chunk.tool_call_id, chunk.tool_name, chunk.parent_id)
                frames += sse(_PartStart(part, [])) + self._delta(chunk.args_text, path) + sse(_ArgsFinish(path))
                decided = Approval(chunk.approval_id, chunk.signature, chunk.approved, chunk.reason)
                return frames + sse(_ToolCallApproval(decided, path))
            case SourceChunk():
                source = _SourcePart(chunk.source_type, chunk.id, chunk.url, chunk.title, chunk.parent_id)
                return self._whole_part(source)
            case FileChunk():
                return self._whole_part(_FilePart(chunk.data, chunk.mime_type, chunk.parent_id))
            case PreliminaryToolResultChunk():
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is None:
                    return b""
                frames = b"" if call.args_finished else self._finish_args(call)
                path = self._paths[call.tool_call_id]
                return frames + sse(_Result(chunk.result, False, path, chunk.artifact, is_preliminary=True))
            case ProviderMetadataChunk(tool_call_id=None) if self._text is not None:
                return sse(_TextDelta("", self._text[2], chunk.provider_metadata))
            case DocumentSourceChunk():
                document = _DocumentSourcePart(
                    "document", chunk.id, chunk.title, chunk.media_type, chunk.filename, chunk.parent_id
                )
                return self._whole_part(document)
            case DataPartChunk(transient=False):
                return self._whole_part(_DataPart(chunk.name, chunk.data, chunk.parent_id))
            case WarningChunk():
                return sse(_Warning(chunk.error, chunk.severity, chunk.code))
            case UsageChunk():
                self._usage.add(chunk.input_tokens, chunk.output_tokens)
            case DataChunk():
                return sse(_Data([chunk.data]))
            case AnnotationsChunk():
                return sse(_Annotations(chunk.annotations))
            case StepStartChunk():
                return sse(_StepStart(chunk.message_id))
            case StepFinishChunk():
                self._usage.add(chunk.input_tokens, chunk.output_tokens)
                usage = Usage(chunk.input_tokens, chunk.output_tokens)
                return sse(_StepFinish(chunk.finish_reason, usage, chunk.is_continued))
            case ErrorChunk():
                self._error_sent = True
                return sse(_Error(chunk.error))
            case UpdateStateChunk():
                return sse(_UpdateState(chunk.operations))
        return b""

    def _next_path(self) -> list[int]:
        path = [self._parts]
        self._parts += 1
        return path

    def _text_delta(self, kind: type[_TextPart | _ReasoningPart], delta: str, parent_id: str | None) -> bytes:
        text = self._text
        if text is not None and text[0] is kind and text[1] == parent_id:
            return self._delta(delta, text[2])
        frames, path = self._open_text(kind(parent_id=parent_id))
        return frames + self._delta(delta, path)

    def _open_text(self, part: _TextPart | _ReasoningPart) -> tuple[bytes, list[int]]:
        """End the open text part and open ``part`` (frames, path): the next deltas of its kind and parent fill it."""
        frames = self._close_text()
        path = self._next_path()
        self._text = (type(part), part.parent_id, path)
        return frames + sse(_PartStart(part, [])), path

    @staticmethod
    def _delta(delta: str, path: list[int]) -> bytes:
        return delta_frames(delta, lambda piece: sse(_TextDelta(piece, path)))

    def _close_text(self) -> bytes:
        if self._text is None:
            return b""
        path = self._text[2]
        self._text = None
        return sse(_PartFinish(path))

    def _whole_part(self, part: _Part) -> bytes:
        """A part with no deltas (source, file): start and finish at once."""
        frames = self._close_text()
        path = self._next_path()
        return frames + sse(_PartStart(part, [])) + sse(_PartFinish(path))

    def _finish_args(self, call: WireToolCall) -> bytes:
        call.args_finished = True
        path = self._paths[call.tool_call_id]
        empty = b"" if call.args else sse(_TextDelta(EMPTY_ARGS, path))
        return empty + sse(_ArgsFinish(path))

    def _close_tool(self, call: WireToolCall, *, complete: bool = True) -> bytes:
        """Finish a call's part; ``complete``: its arguments are whole, if not finished yet."""
        frames = b"" if call.args_finished or not complete else self._finish_args(call)
        return frames + sse(_PartFinish(self._paths.pop(call.tool_call_id)))

    def finish(self, status: FinishStatus) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        frames = [self._close_text()]
        frames += [self._close_tool(call, complete=status == "completed") for call in self._tools.pending()]
        if status == "error" and not self._error_sent:
            frames.append(sse(_Error(GENERIC_ERROR)))
        frames.append(sse(_MessageFinish(finish_reason(status, self._tools), self._usage)))
        frames.append(SSE_DONE)
        return b"".join(frames)


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
