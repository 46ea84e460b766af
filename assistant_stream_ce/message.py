"""The assistant message as a client would assemble it from a run's chunks.

A run keeps one of these for what it has actually sent, and hands it to
``on_finish`` (also after a disconnect, so an application can save a partial
answer). Tests use it as the Python side's statement of what a stream means.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .assistant_stream_chunk import (
    AnnotationsChunk,
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
    UpdateStateChunk,
    UsageChunk,
    WarningChunk,
)
from .state import fold_operations

__all__ = [
    "AssistantMessage",
    "DataPart",
    "FilePart",
    "MessageBuilder",
    "ReasoningPart",
    "RunWarning",
    "SourcePart",
    "TextPart",
    "ToolCallApproval",
    "ToolCallPart",
    "Usage",
    "merge_metadata",
]


def merge_metadata(existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """``existing`` with ``incoming`` merged in, as ``useChat`` merges message metadata:
    objects in both merge key by key, any other value replaces."""
    merged = dict(existing)
    for key, value in incoming.items():
        before = merged.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            merged[key] = merge_metadata(before, value)
        else:
            merged[key] = value
    return merged


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: str
    parent_id: str | None = None
    provider_metadata: ProviderMetadata | None = None


class ReasoningPart(msgspec.Struct, tag="reasoning", tag_field="type"):
    text: str
    parent_id: str | None = None
    provider_metadata: ProviderMetadata | None = None
    unstable_summary: str | None = None  # set on a part begun by ``add_reasoning_part``


class ToolCallApproval(msgspec.Struct):
    """The approval a call waited for: ``approved`` is None until the person decided."""

    id: str
    signature: str
    approved: bool | None = None
    reason: str | None = None


class ToolCallPart(msgspec.Struct, tag="tool-call", tag_field="type"):
    tool_call_id: str
    tool_name: str
    args_text: str = ""
    args_finished: bool = False
    has_result: bool = False
    result: Any = None
    artifact: Any = None
    is_error: bool = False
    parent_id: str | None = None
    provider_metadata: ProviderMetadata | None = None
    #: Set when the call waited for a person's approval (and the decision, once it came).
    approval: ToolCallApproval | None = None
    #: Every preliminary result, in order (the client shows the latest until the final one).
    preliminary_results: list[Any] = msgspec.field(default_factory=list)

    @property
    def args(self) -> Any:
        """The decoded arguments (``{}`` while there are none or they are not valid JSON yet)."""
        try:
            return msgspec.json.decode(self.args_text or "{}")
        except msgspec.DecodeError:
            return {}


class SourcePart(msgspec.Struct, tag="source", tag_field="type"):
    """A URL source, or a document source (``source_type="document"``, no ``url``, a ``media_type``)."""

    id: str
    url: str
    source_type: str = "url"
    title: str | None = None
    parent_id: str | None = None
    media_type: str | None = None
    filename: str | None = None


class FilePart(msgspec.Struct, tag="file", tag_field="type"):
    data: str
    mime_type: str
    parent_id: str | None = None


Part = TextPart | ReasoningPart | ToolCallPart | SourcePart | FilePart


class DataPart(msgspec.Struct):
    """A named data part; a later one with the same name and ``id`` replaced its data."""

    name: str
    data: Any
    id: str | None = None
    parent_id: str | None = None


class RunWarning(msgspec.Struct):
    """An error with a severity that did not fail the run."""

    error: str
    severity: str = "warning"
    code: str | None = None


class Usage(msgspec.Struct):
    """Tokens used: the sum of every usage record and step finish of the run."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None

    def add(self, chunk: UsageChunk) -> None:
        self.input_tokens += chunk.input_tokens
        self.output_tokens += chunk.output_tokens
        if chunk.reasoning_tokens is not None:
            self.reasoning_tokens = (self.reasoning_tokens or 0) + chunk.reasoning_tokens
        if chunk.cached_input_tokens is not None:
            self.cached_input_tokens = (self.cached_input_tokens or 0) + chunk.cached_input_tokens


class Step(msgspec.Struct):
    message_id: str | None = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    is_continued: bool = False


class AssistantMessage(msgspec.Struct):
    """Parts in order, plus the run's data, annotations, errors, steps and state,
    its data parts, warnings, metadata and token usage."""

    parts: list[Part] = msgspec.field(default_factory=list)
    data: list[Any] = msgspec.field(default_factory=list)
    annotations: list[Any] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)
    steps: list[Step] = msgspec.field(default_factory=list)
    state: Any = None
    data_parts: list[DataPart] = msgspec.field(default_factory=list)
    warnings: list[RunWarning] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    usage: Usage = msgspec.field(default_factory=Usage)
    #: Where the steps the UI message stream announces begin: for each, the index in ``parts`` of its
    #: first part (``len(parts)`` for a step that has none yet) and the offset in that part's text
    #: (not 0 when text went on across the step's start, into the same part, as the other clients keep it).
    step_starts: list[tuple[int, int]] = msgspec.field(default_factory=list)

    @property
    def text(self) -> str:
        """All text parts joined."""
        return "".join(part.text for part in self.parts if type(part) is TextPart)

    @property
    def reasoning(self) -> str:
        """All reasoning parts joined."""
        return "".join(part.text for part in self.parts if type(part) is ReasoningPart)

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [part for part in self.parts if type(part) is ToolCallPart]


class MessageBuilder:
    """Folds chunks into an :class:`AssistantMessage`, the way the clients do.

    Steps begin where the UI message stream writer begins them: at an explicit
    step start, and at the first new part after tool outputs (the next model
    turn) once no call in the step still streams its arguments.

    State updates change ``initial_state`` in place: pass a tree that nothing else holds.
    """

    def __init__(self, initial_state: Any = None) -> None:
        self.message = AssistantMessage(state=initial_state)
        self._tools: dict[str, ToolCallPart] = {}
        self._writing: TextPart | ReasoningPart | None = None  # the part the previous chunk wrote to
        self._step_open = False
        self._step_has_output = False  # a tool output was sent in the open step

    def add(self, chunk: AssistantStreamChunk) -> None:
        writing, self._writing = self._writing, None
        message, parts = self.message, self.message.parts
        match chunk:
            case TextDeltaChunk(text_delta=delta, parent_id=parent_id):
                self._append(TextPart, delta, parent_id)
            case ReasoningDeltaChunk(reasoning_delta=delta, parent_id=parent_id):
                self._append(ReasoningPart, delta, parent_id)
            case ReasoningPartStartChunk(unstable_summary=str(summary), parent_id=parent_id):
                self._new_part()
                parts.append(ReasoningPart("", parent_id, unstable_summary=summary))
            case ToolCallBeginChunk():
                part = ToolCallPart(chunk.tool_call_id, chunk.tool_name, parent_id=chunk.parent_id)
                self._tools[part.tool_call_id] = part
                self._new_part()  # with the call streaming its arguments: a call never begins a step
                parts.append(part)
            case ToolCallDeltaChunk():
                self._tools[chunk.tool_call_id].args_text += chunk.args_text_delta
            case ToolCallArgsFinishChunk():
                self._tools[chunk.tool_call_id].args_finished = True
            case ToolApprovalRequestChunk():
                tool = self._tools[chunk.tool_call_id]
                tool.args_finished = True
                tool.approval = ToolCallApproval(chunk.approval_id, chunk.signature)
            case ToolApprovalResponseChunk():  # a call of an earlier run, continued in this one
                part = ToolCallPart(chunk.tool_call_id, chunk.tool_name, parent_id=chunk.parent_id)
                part.args_text, part.args_finished = chunk.args_text, True
                part.approval = ToolCallApproval(chunk.approval_id, chunk.signature, chunk.approved, chunk.reason)
                self._tools[part.tool_call_id] = part
                parts.append(part)
            case ToolResultChunk():
                tool = self._tools[chunk.tool_call_id]
                if tool.approval is not None and tool.approval.approved is not None and not self._step_open:
                    self._start_step()  # the output of a call an earlier run announced
                self._step_has_output = True
                tool.args_finished = tool.has_result = True
                tool.result, tool.artifact, tool.is_error = chunk.result, chunk.artifact, chunk.is_error
            case PreliminaryToolResultChunk():
                tool = self._tools[chunk.tool_call_id]
                tool.args_finished = True
                tool.preliminary_results.append(chunk.result)
            case ProviderMetadataChunk(tool_call_id=str(tool_call_id)):
                self._tools[tool_call_id].provider_metadata = chunk.provider_metadata
            case ProviderMetadataChunk():
                if writing is not None:
                    writing.provider_metadata = chunk.provider_metadata
                    self._writing = writing
            case SourceChunk():
                self._new_part()
                parts.append(SourcePart(chunk.id, chunk.url, chunk.source_type, chunk.title, chunk.parent_id))
            case DocumentSourceChunk():
                self._new_part()
                parts.append(
                    SourcePart(chunk.id, "", "document", chunk.title, chunk.parent_id, chunk.media_type, chunk.filename)
                )
            case DataPartChunk(transient=False):
                self._new_part()
                self._data_part(chunk)
            case WarningChunk():
                message.warnings.append(RunWarning(chunk.error, chunk.severity, chunk.code))
            case MessageMetadataChunk():
                message.metadata = merge_metadata(message.metadata, chunk.metadata)
            case UsageChunk():
                message.usage.add(chunk)
            case FileChunk():
                self._new_part()
                parts.append(FilePart(chunk.data, chunk.mime_type, chunk.parent_id))
            case DataChunk():
                self._new_part()
                message.data.append(chunk.data)
            case AnnotationsChunk():
                message.annotations.extend(chunk.annotations)
            case ErrorChunk():
                message.errors.append(chunk.error)
            case UpdateStateChunk():
                message.state = fold_operations(message.state, chunk.operations)
            case StepStartChunk():
                message.steps.append(Step(message_id=chunk.message_id))
                self._start_step()
            case StepFinishChunk():
                self._step_open = False
                if not message.steps or message.steps[-1].finish_reason is not None:
                    message.steps.append(Step())
                step = message.steps[-1]
                step.finish_reason = chunk.finish_reason
                step.input_tokens, step.output_tokens = chunk.input_tokens, chunk.output_tokens
                step.is_continued = chunk.is_continued
                message.usage.add(UsageChunk(chunk.input_tokens, chunk.output_tokens))

    def _start_step(self) -> None:
        self.message.step_starts.append((len(self.message.parts), 0))
        self._step_open, self._step_has_output = True, False

    def _new_part(self) -> None:
        """Before a new part: a new step if none is open, or if the open one has tool outputs
        and no call in it still streams its arguments."""
        if self._step_open and self._step_has_output:
            self._step_open = any(not tool.args_finished for tool in self._tools.values())
        if not self._step_open:
            self._start_step()

    def _data_part(self, chunk: DataPartChunk) -> None:
        if chunk.id is not None:
            for part in self.message.data_parts:
                if part.name == chunk.name and part.id == chunk.id:
                    part.data = chunk.data
                    return
        self.message.data_parts.append(DataPart(chunk.name, chunk.data, chunk.id, chunk.parent_id))

    def _append(self, cls: type[TextPart] | type[ReasoningPart], delta: str, parent_id: str | None) -> None:
        parts = self.message.parts
        last = parts[-1] if parts else None
        if type(last) is cls and last.parent_id == parent_id:
            if not self._step_open:
                self._start_step()
            starts = self.message.step_starts
            for index in range(len(starts) - 1, -1, -1):  # steps begun after the part: inside its text
                if starts[index] != (len(parts), 0):
                    break
                starts[index] = (len(parts) - 1, len(last.text))
            last.text += delta
        else:
            self._new_part()
            last = cls(text=delta, parent_id=parent_id)
            parts.append(last)
        self._writing = last
