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
    ErrorChunk,
    FileChunk,
    ReasoningDeltaChunk,
    ReasoningPartStartChunk,
    SourceChunk,
    StepFinishChunk,
    StepStartChunk,
    TextDeltaChunk,
    ToolApprovalResponseChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UpdateStateChunk,
)
from .state import fold_operations

__all__ = [
    "AssistantMessage",
    "FilePart",
    "MessageBuilder",
    "ReasoningPart",
    "SourcePart",
    "TextPart",
    "ToolCallPart",
]


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: str
    parent_id: str | None = None


class ReasoningPart(msgspec.Struct, tag="reasoning", tag_field="type"):
    text: str
    parent_id: str | None = None
    unstable_summary: str | None = None  # set on a part begun by ``add_reasoning_part``


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

    @property
    def args(self) -> Any:
        """The decoded arguments (``{}`` while there are none or they are not valid JSON yet)."""
        try:
            return msgspec.json.decode(self.args_text or "{}")
        except msgspec.DecodeError:
            return {}


class SourcePart(msgspec.Struct, tag="source", tag_field="type"):
    id: str
    url: str
    source_type: str = "url"
    title: str | None = None
    parent_id: str | None = None


class FilePart(msgspec.Struct, tag="file", tag_field="type"):
    data: str
    mime_type: str
    parent_id: str | None = None


Part = TextPart | ReasoningPart | ToolCallPart | SourcePart | FilePart


class Step(msgspec.Struct):
    message_id: str | None = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    is_continued: bool = False


class AssistantMessage(msgspec.Struct):
    """Parts in order, plus the run's data, annotations, errors, steps and state."""

    parts: list[Part] = msgspec.field(default_factory=list)
    data: list[Any] = msgspec.field(default_factory=list)
    annotations: list[Any] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)
    steps: list[Step] = msgspec.field(default_factory=list)
    state: Any = None

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

    State updates change ``initial_state`` in place: pass a tree that nothing else holds.
    """

    def __init__(self, initial_state: Any = None) -> None:
        self.message = AssistantMessage(state=initial_state)
        self._tools: dict[str, ToolCallPart] = {}

    def add(self, chunk: AssistantStreamChunk) -> None:
        message, parts = self.message, self.message.parts
        match chunk:
            case TextDeltaChunk(text_delta=delta, parent_id=parent_id):
                self._append(TextPart, delta, parent_id)
            case ReasoningDeltaChunk(reasoning_delta=delta, parent_id=parent_id):
                self._append(ReasoningPart, delta, parent_id)
            case ReasoningPartStartChunk(unstable_summary=str(summary), parent_id=parent_id):
                parts.append(ReasoningPart("", parent_id, summary))
            case ToolCallBeginChunk():
                part = ToolCallPart(chunk.tool_call_id, chunk.tool_name, parent_id=chunk.parent_id)
                self._tools[part.tool_call_id] = part
                parts.append(part)
            case ToolCallDeltaChunk():
                self._tools[chunk.tool_call_id].args_text += chunk.args_text_delta
            case ToolCallArgsFinishChunk():
                self._tools[chunk.tool_call_id].args_finished = True
            case ToolApprovalResponseChunk():  # a call of an earlier run, continued in this one
                part = ToolCallPart(chunk.tool_call_id, chunk.tool_name, parent_id=chunk.parent_id)
                part.args_text, part.args_finished = chunk.args_text, True
                self._tools[part.tool_call_id] = part
                parts.append(part)
            case ToolResultChunk():
                tool = self._tools[chunk.tool_call_id]
                tool.args_finished = tool.has_result = True
                tool.result, tool.artifact, tool.is_error = chunk.result, chunk.artifact, chunk.is_error
            case SourceChunk():
                parts.append(SourcePart(chunk.id, chunk.url, chunk.source_type, chunk.title, chunk.parent_id))
            case FileChunk():
                parts.append(FilePart(chunk.data, chunk.mime_type, chunk.parent_id))
            case DataChunk():
                message.data.append(chunk.data)
            case AnnotationsChunk():
                message.annotations.extend(chunk.annotations)
            case ErrorChunk():
                message.errors.append(chunk.error)
            case UpdateStateChunk():
                message.state = fold_operations(message.state, chunk.operations)
            case StepStartChunk():
                message.steps.append(Step(message_id=chunk.message_id))
            case StepFinishChunk():
                if not message.steps or message.steps[-1].finish_reason is not None:
                    message.steps.append(Step())
                step = message.steps[-1]
                step.finish_reason = chunk.finish_reason
                step.input_tokens, step.output_tokens = chunk.input_tokens, chunk.output_tokens
                step.is_continued = chunk.is_continued

    def _append(self, cls: type[TextPart] | type[ReasoningPart], delta: str, parent_id: str | None) -> None:
        parts = self.message.parts
        last = parts[-1] if parts else None
        if type(last) is cls and last.parent_id == parent_id:
            last.text += delta
        else:
            parts.append(cls(text=delta, parent_id=parent_id))
