"""AG-UI events over SSE, for AG-UI clients (``@ag-ui/client``'s ``HttpAgent``, CopilotKit).

A run is ``RUN_STARTED``, then events, then exactly one ``RUN_FINISHED`` or
``RUN_ERROR``, with every message, tool call and step closed before it. Text
and tool calls of one model turn form one assistant message (tool calls name
it as ``parentMessageId``); after tool results, the next turn is a new
assistant message. State goes out as one ``STATE_SNAPSHOT`` and then
``STATE_DELTA`` JSON Patches (RFC 6902). Sources, files, data and annotations,
which AG-UI has no events for, go out as ``CUSTOM`` events. A call whose
arguments were still streaming when the run failed gets no ``TOOL_CALL_END``
before ``RUN_ERROR``; when it was cancelled, the call ends with its arguments
as they were (``RUN_FINISHED`` requires every call ended; its ``cancelled``
outcome names no call for the client to run). A run with calls that wait for
approval finishes with the outcome ``interrupt``, one interrupt per call
(``reason`` ``tool_approval``, its ``toolCallId``); the next run's ``resume``
answers them, and a continued call's result is a ``TOOL_CALL_RESULT`` for
the call already in the client's history. A data value ``{"kind":
"interrupt", "id", "reason", "value"}`` (a LangGraph interrupt, say) is not
sent as ``CUSTOM``: the run finishes with it as an interrupt too (its
``message`` the value when that is a string, ``metadata: {"value": ...}``).
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import AsyncIterable, Callable
from functools import partial
from typing import Any, Literal

import msgspec

from ..approval import approval_token
from ..assistant_stream_chunk import (
    AnnotationsChunk,
    AssistantStreamChunk,
    DataChunk,
    DataPartChunk,
    DocumentSourceChunk,
    ErrorChunk,
    FileChunk,
    MessageMetadataChunk,
    ObjectStreamOperation,
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
from ..message import merge_metadata
from ._frames import GENERIC_ERROR, SSE_MEDIA_TYPE, SSEFrames, TokenUsage, UsageRecord, dumps
from ._json_patch import PatchOperation, StatePatcher
from ._parts import TextKind, TextParts
from ._tools import EMPTY_ARGS, ToolCalls, WireToolCall
from .assistant_stream_response import AssistantStreamResponse
from .stream_encoder import FinishStatus, StreamEncoder

__all__ = ["AGUIEncoder", "AGUIResponse"]

logger = logging.getLogger("assistant_stream_ce")


class _Event(msgspec.Struct, tag_field="type", rename="camel", omit_defaults=True):
    pass


class _RunStarted(_Event, tag="RUN_STARTED"):
    thread_id: str
    run_id: str


class _Interrupt(msgspec.Struct, rename="camel", omit_defaults=True):
    id: str
    reason: str
    tool_call_id: str | None = None
    message: str | None = None
    metadata: dict[str, Any] | None = None


class _Outcome(msgspec.Struct, rename="camel", omit_defaults=True):
    type: Literal["success", "cancelled", "interrupt"]
    pending_tool_call_ids: list[str] | None = None
    interrupts: list[_Interrupt] | None = None


#: The ``reason`` of the interrupt a tool call that waits for approval ends a run with.
TOOL_APPROVAL_REASON = "tool_approval"


class _RunFinished(_Event, tag="RUN_FINISHED"):
    thread_id: str
    run_id: str
    outcome: _Outcome
    usage: list[TokenUsage] | None = None
    metadata: dict[str, Any] | None = None


class _RunError(_Event, tag="RUN_ERROR"):
    message: str
    usage: list[TokenUsage] | None = None
    metadata: dict[str, Any] | None = None


class _ActivitySnapshot(_Event, tag="ACTIVITY_SNAPSHOT"):
    message_id: str
    activity_type: str
    content: dict[str, Any]


class _TextMessageStart(_Event, tag="TEXT_MESSAGE_START"):
    message_id: str
    role: str = "assistant"


class _TextMessageContent(_Event, tag="TEXT_MESSAGE_CONTENT"):
    message_id: str
    delta: str


class _TextMessageEnd(_Event, tag="TEXT_MESSAGE_END"):
    message_id: str


class _ReasoningStart(_Event, tag="REASONING_START"):
    message_id: str


class _ReasoningMessageStart(_Event, tag="REASONING_MESSAGE_START"):
    message_id: str
    role: Literal["reasoning"]


class _ReasoningMessageContent(_Event, tag="REASONING_MESSAGE_CONTENT"):
    message_id: str
    delta: str


class _ReasoningMessageEnd(_Event, tag="REASONING_MESSAGE_END"):
    message_id: str


class _ReasoningEnd(_Event, tag="REASONING_END"):
    message_id: str


class _ToolCallStart(_Event, tag="TOOL_CALL_START"):
    tool_call_id: str
    tool_call_name: str
    parent_message_id: str


class _ToolCallArgs(_Event, tag="TOOL_CALL_ARGS"):
    tool_call_id: str
    delta: str


class _ToolCallEnd(_Event, tag="TOOL_CALL_END"):
    tool_call_id: str


class _ToolCallResult(_Event, tag="TOOL_CALL_RESULT"):
    message_id: str
    tool_call_id: str
    content: str
    role: Literal["tool"]


class _StepStarted(_Event, tag="STEP_STARTED"):
    step_name: str


class _StepFinished(_Event, tag="STEP_FINISHED"):
    step_name: str


class _StateSnapshot(_Event, tag="STATE_SNAPSHOT"):
    snapshot: Any


class _StateDelta(_Event, tag="STATE_DELTA"):
    delta: list[PatchOperation]


_CONTENT_EVENTS: dict[TextKind, type[_TextMessageContent | _ReasoningMessageContent]] = {
    "text": _TextMessageContent,
    "reasoning": _ReasoningMessageContent,
}


def _content_event(kind: TextKind, message_id: str) -> Callable[[str], _TextMessageContent | _ReasoningMessageContent]:
    return partial(_CONTENT_EVENTS[kind], message_id)


class _Custom(_Event, tag="CUSTOM"):
    name: str
    value: Any


class _SourceValue(msgspec.Struct, rename="camel", omit_defaults=True):
    source_type: str
    id: str
    url: str
    title: str | None = None


class _DocumentValue(msgspec.Struct, rename="camel", omit_defaults=True):
    source_type: Literal["document"]
    id: str
    title: str
    media_type: str
    filename: str | None = None


class _WarningValue(msgspec.Struct, omit_defaults=True):
    error: str
    severity: str
    code: str | None = None


class _FileValue(msgspec.Struct, rename="camel"):
    data: str
    mime_type: str


def _content(result: Any) -> str:
    """A tool result as AG-UI message content: a string as is, anything else as JSON text."""
    return result if isinstance(result, str) else dumps(result).decode()


def _interrupt(request: ToolApprovalRequestChunk) -> _Interrupt:
    """The interrupt of a call that waits for approval; its id carries the signature (AG-UI has no field for it)."""
    token = approval_token(request.approval_id, request.signature)
    return _Interrupt(token, TOOL_APPROVAL_REASON, request.tool_call_id)


def _data_interrupt(data: Any) -> _Interrupt | None:
    """The interrupt a data value ``{"kind": "interrupt", "id": str, "reason": str, "value": ...}`` stands for."""
    if not isinstance(data, dict) or data.get("kind") != "interrupt":
        return None
    interrupt_id, reason, value = data.get("id"), data.get("reason"), data.get("value")
    if not isinstance(interrupt_id, str) or not isinstance(reason, str):
        return None
    message = value if isinstance(value, str) else None
    return _Interrupt(interrupt_id, reason, message=message, metadata={"value": value})


class _AGUIWriter:
    def __init__(self, thread_id: str, run_id: str, state: Any) -> None:
        self._thread_id = thread_id
        self._run_id = run_id
        self._ids = uuid.uuid4().hex[:12]
        self._counter = 0
        self._out = SSEFrames()
        self._started = False
        self._message_id: str | None = None  # the assistant message of the current turn
        self._text = TextParts(self._out, self._start_text, _content_event, self._end_text)
        self._tools = ToolCalls()
        self._interrupts: list[_Interrupt] = []  # the run's own interrupts (not tool approvals)
        self._step: str | None = None
        self._state = StatePatcher(state)
        self._error: str | None = None
        self._usage = UsageRecord()
        self._metadata: dict[str, Any] | None = None
        self._finished = False

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            self._out.add(_RunStarted(self._thread_id, self._run_id))

    def _new_id(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}-{self._ids}-{self._counter}"

    def _turn_message(self) -> str:
        if self._message_id is None:
            self._message_id = self._new_id("msg")
        return self._message_id

    def encode(self, chunk: AssistantStreamChunk) -> bytes:
        if self._finished:
            return b""
        self._ensure_started()
        match chunk:
            case TextDeltaChunk():
                if chunk.text_delta:
                    self._text.delta("text", chunk.text_delta, chunk.parent_id)
            case ReasoningDeltaChunk():
                if chunk.reasoning_delta:
                    self._text.delta("reasoning", chunk.reasoning_delta, chunk.parent_id)
            case ReasoningPartStartChunk(unstable_summary=str()):
                self._text.start("reasoning", chunk.parent_id)  # a new reasoning message; AG-UI has no summary
            case ToolCallBeginChunk():
                if self._tools.begin(chunk) is not None:
                    self._text.close()
                    self._out.add(_ToolCallStart(chunk.tool_call_id, chunk.tool_name, self._turn_message()))
            case ToolCallDeltaChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is not None and chunk.args_text_delta:
                    streaming.append_args(chunk.args_text_delta)
                    call_id = chunk.tool_call_id
                    self._out.add_delta(chunk.args_text_delta, lambda piece: _ToolCallArgs(call_id, piece))
            case ToolCallArgsFinishChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is not None:
                    self._end_tool_call(streaming)
            case ToolResultChunk():
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is not None:
                    if not call.args_finished:
                        self._end_tool_call(call)
                    call.has_result = True
                    result_id = self._new_id("result")
                    self._out.add(_ToolCallResult(result_id, call.tool_call_id, _content(chunk.result), "tool"))
                    self._message_id = None  # what follows the results is the next turn
            case ToolApprovalRequestChunk():
                call = self._tools.request_approval(chunk)
                if call is not None and not call.args_finished:
                    self._end_tool_call(call)
            case ToolApprovalResponseChunk():
                # The call is in the client's history already: only its result follows.
                self._tools.continue_call(chunk)
            case UpdateStateChunk():
                self._update_state(chunk.operations)
            case StepStartChunk():
                self._text.close()
                self._finish_step()
                self._step = chunk.message_id
                self._out.add(_StepStarted(chunk.message_id))
            case ErrorChunk():
                self._error = chunk.error  # sent as RUN_ERROR: AG-UI ends a run at its first error
            case SourceChunk():
                self._out.add(_Custom("source", _SourceValue(chunk.source_type, chunk.id, chunk.url, chunk.title)))
            case FileChunk():
                self._out.add(_Custom("file", _FileValue(chunk.data, chunk.mime_type)))
            case DataChunk():
                if (interrupt := _data_interrupt(chunk.data)) is not None:
                    self._interrupts.append(interrupt)
                else:
                    self._out.add(_Custom("data", chunk.data))
            case AnnotationsChunk():
                self._out.add(_Custom("annotations", chunk.annotations))
            case DocumentSourceChunk():
                value = _DocumentValue("document", chunk.id, chunk.title, chunk.media_type, chunk.filename)
                self._out.add(_Custom("source", value))
            case WarningChunk():
                self._out.add(_Custom("warning", _WarningValue(chunk.error, chunk.severity, chunk.code)))
            case DataPartChunk(transient=True):
                self._out.add(_Custom(f"data-{chunk.name}", chunk.data))
            case DataPartChunk():
                # An activity message: a snapshot with the id of an earlier one replaces its content.
                message_id = chunk.id if chunk.id is not None else self._new_id("data")
                self._out.add(_ActivitySnapshot(message_id, chunk.name, {"data": chunk.data}))
            case MessageMetadataChunk():
                self._metadata = merge_metadata(self._metadata or {}, chunk.metadata)
            case UsageChunk():
                self._usage.add(chunk)
            case StepFinishChunk():
                self._text.close()
                self._finish_step()
                self._usage.add(chunk)
        return self._out.take()

    def _start_text(self, kind: TextKind, parent_id: str | None, summary: str | None) -> str:
        """A text message (the turn's assistant message) or a new reasoning message: its id."""
        if kind == "text":
            part_id = self._turn_message()
            self._out.add(_TextMessageStart(part_id))
        else:
            part_id = self._new_id("reasoning")
            self._out.add(_ReasoningStart(part_id))
            self._out.add(_ReasoningMessageStart(part_id, "reasoning"))
        return part_id

    def _end_text(self, kind: TextKind, part_id: str) -> None:
        if kind == "text":
            self._out.add(_TextMessageEnd(part_id))
        else:
            self._out.add(_ReasoningMessageEnd(part_id))
            self._out.add(_ReasoningEnd(part_id))

    def _end_tool_call(self, call: WireToolCall) -> None:
        call.args_finished = True
        if not call.args:
            self._out.add(_ToolCallArgs(call.tool_call_id, EMPTY_ARGS))
        self._out.add(_ToolCallEnd(call.tool_call_id))

    def _finish_step(self) -> None:
        if self._step is not None:
            self._out.add(_StepFinished(self._step))
            self._step = None

    def _update_state(self, operations: list[ObjectStreamOperation]) -> None:
        try:
            patch = self._state.apply(operations)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("AG-UI: state operations do not apply to the state the encoder was given: %s", exc)
            return
        if patch is None:
            self._out.add(_StateSnapshot(self._state.state))
        elif patch:
            self._out.add(_StateDelta(patch))

    def finish(self, status: FinishStatus) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        self._ensure_started()
        self._text.close()
        failed = status == "error" or self._error is not None
        for call in self._tools.open_args():
            if status == "completed" and not failed:
                self._end_tool_call(call)
            elif not failed:
                self._out.add(_ToolCallEnd(call.tool_call_id))
        self._finish_step()
        # AG-UI has one usage entry per model; the run does not say which, so there is one.
        token_usage = self._usage.token_usage()
        usage, metadata = None if token_usage is None else [token_usage], self._metadata
        if failed:
            self._out.add(_RunError(self._error or GENERIC_ERROR, usage, metadata))
        elif status == "cancelled":
            self._out.add(_RunFinished(self._thread_id, self._run_id, _Outcome("cancelled"), usage, metadata))
        elif interrupts := [
            *(_interrupt(call.approval) for call in self._tools.awaiting_approval() if call.approval is not None),
            *self._interrupts,
        ]:
            outcome = _Outcome("interrupt", interrupts=interrupts)
            self._out.add(_RunFinished(self._thread_id, self._run_id, outcome, usage, metadata))
        else:
            outcome = _Outcome("success", [call.tool_call_id for call in self._tools.pending()] or None)
            self._out.add(_RunFinished(self._thread_id, self._run_id, outcome, usage, metadata))
        return self._out.take()


class AGUIEncoder(StreamEncoder):
    """AG-UI events over SSE.

    ``thread_id`` and ``run_id`` are those of the client's ``RunAgentInput``
    (default: new random ids). ``state`` is the state the client sent (the
    same value the run starts from); the run's state changes are applied to it
    to produce the snapshot and the patches.
    """

    def __init__(self, *, thread_id: str | None = None, run_id: str | None = None, state: Any = None) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.state = state

    def get_media_type(self) -> str:
        return SSE_MEDIA_TYPE

    def open(self) -> _AGUIWriter:
        return _AGUIWriter(
            self.thread_id or f"thread-{uuid.uuid4().hex}",
            self.run_id or f"run-{uuid.uuid4().hex}",
            copy.deepcopy(self.state),
        )


class AGUIResponse(AssistantStreamResponse):
    """A streaming HTTP response of AG-UI events."""

    def __init__(
        self,
        stream: AsyncIterable[AssistantStreamChunk],
        *,
        thread_id: str | None = None,
        run_id: str | None = None,
        state: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(stream, AGUIEncoder(thread_id=thread_id, run_id=run_id, state=state), **kwargs)
