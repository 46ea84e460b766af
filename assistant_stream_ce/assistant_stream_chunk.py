"""The chunk types a run produces.

Each chunk is a msgspec Struct tagged by ``type`` with the type names and
fields of assistant-stream 0.0.36, so ``chunk.type == "text-delta"`` and
``chunk.text_delta`` work as before, and ``msgspec.json.encode(chunk)`` gives
the tagged JSON object.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Literal, TypeAlias, TypedDict

import msgspec

__all__ = [
    "AnnotationsChunk",
    "AssistantStreamChunk",
    "DataChunk",
    "DataPartChunk",
    "DocumentSourceChunk",
    "ErrorChunk",
    "FileChunk",
    "MessageMetadataChunk",
    "ObjectStreamAppendTextOperation",
    "ObjectStreamOperation",
    "ObjectStreamSetOperation",
    "PreliminaryToolResultChunk",
    "ProviderMetadataChunk",
    "ReasoningDeltaChunk",
    "ReasoningPartStartChunk",
    "SourceChunk",
    "StepFinishChunk",
    "StepStartChunk",
    "TextDeltaChunk",
    "ToolCallArgsFinishChunk",
    "ToolCallArgsTextFinishChunk",
    "ToolCallBeginChunk",
    "ToolCallDeltaChunk",
    "ToolApprovalRequestChunk",
    "ToolApprovalResponseChunk",
    "ToolResultChunk",
    "UpdateStateChunk",
    "UsageChunk",
    "WarningChunk",
]


class _Chunk(msgspec.Struct, tag_field="type"):
    """Base of every chunk: tagged by ``type``, which is also a class attribute."""

    type: ClassVar[str]


class TextDeltaChunk(_Chunk, tag="text-delta"):
    """A piece of assistant text."""

    text_delta: str
    parent_id: str | None = None


class ReasoningDeltaChunk(_Chunk, tag="reasoning-delta"):
    """A piece of reasoning text."""

    reasoning_delta: str
    parent_id: str | None = None


class ReasoningPartStartChunk(_Chunk, tag="reasoning-part-start"):
    """A new reasoning part begins, with a summary the application wrote; the reasoning deltas after it fill it.

    Without a summary it starts nothing (reasoning parts otherwise begin with
    their first delta), as in assistant-stream's releases after 0.0.36.
    """

    unstable_summary: str | None = None
    parent_id: str | None = None


class ToolCallBeginChunk(_Chunk, tag="tool-call-begin"):
    """A tool call starts; its arguments follow as deltas."""

    tool_call_id: str
    tool_name: str
    parent_id: str | None = None


class ToolCallDeltaChunk(_Chunk, tag="tool-call-delta"):
    """A piece of a tool call's JSON arguments text."""

    tool_call_id: str
    args_text_delta: str


class ToolCallArgsFinishChunk(_Chunk, tag="tool-call-args-text-finish"):
    """A tool call's arguments are complete (no more deltas for it)."""

    tool_call_id: str


ToolCallArgsTextFinishChunk = ToolCallArgsFinishChunk
"""The name assistant-stream's releases after 0.0.36 give :class:`ToolCallArgsFinishChunk`."""


class ToolResultChunk(_Chunk, tag="tool-result"):
    """The one result of a tool call."""

    tool_call_id: str
    result: Any
    artifact: Any | None = None
    is_error: bool = False


class ToolApprovalRequestChunk(_Chunk, tag="tool-approval-request"):
    """A tool call whose arguments are finished waits for a person's decision; it has no result in this run.

    ``signature`` signs the approval id, the call's id, name and arguments
    (see :mod:`assistant_stream_ce.approval`).
    """

    tool_call_id: str
    approval_id: str
    signature: str


class ToolApprovalResponseChunk(_Chunk, tag="tool-approval-response"):
    """A call that an earlier run announced and asked approval for continues in this run with the decision.

    Its result follows (the tool's, or for a denial an error result saying so),
    for the same ``tool_call_id``; the call is not begun again.
    """

    tool_call_id: str
    tool_name: str
    args_text: str
    approval_id: str
    signature: str
    approved: bool
    reason: str | None = None
    parent_id: str | None = None


class DataChunk(_Chunk, tag="data"):
    """An application-defined JSON value."""

    data: Any


class ErrorChunk(_Chunk, tag="error"):
    """An error message for the client."""

    error: str


class ObjectStreamSetOperation(TypedDict):
    """Set the value at ``path`` (an empty path replaces the whole state)."""

    type: Literal["set"]
    path: list[str]
    value: Any


class ObjectStreamAppendTextOperation(TypedDict):
    """Append ``value`` to the string at ``path``."""

    type: Literal["append-text"]
    path: list[str]
    value: str


class ObjectStreamOperation(TypedDict):
    """One state operation as it goes on the wire: ``set`` or ``append-text``."""

    type: Literal["set", "append-text"]
    path: list[str]
    value: Any


class UpdateStateChunk(_Chunk, tag="update-state"):
    """A batch of state operations, applied in order."""

    operations: list[ObjectStreamOperation]


class SourceChunk(_Chunk, tag="source"):
    """A citation or source the answer refers to."""

    id: str
    url: str
    source_type: str = "url"
    title: str | None = None
    parent_id: str | None = None


class FileChunk(_Chunk, tag="file"):
    """A file, as base64 ``data`` with its MIME type."""

    data: str
    mime_type: str
    parent_id: str | None = None


class AnnotationsChunk(_Chunk, tag="annotations"):
    """Message annotations (a list of JSON values)."""

    annotations: list[Any]


class StepStartChunk(_Chunk, tag="step-start"):
    """A model generation step begins."""

    message_id: str


class StepFinishChunk(_Chunk, tag="step-finish"):
    """A model generation step ends, with its usage."""

    finish_reason: str
    input_tokens: int = 0
    output_tokens: int = 0
    is_continued: bool = False


# -- beyond assistant-stream 0.0.36 ---------------------------------------------

ProviderMetadata: TypeAlias = dict[str, dict[str, Any]]
"""Provider-specific data of a part, by provider name (``{"anthropic": {"signature": "..."}}``)."""


class MessageMetadataChunk(_Chunk, tag="message-metadata"):
    """Metadata of the assistant message (a JSON object), merged into what was set before."""

    metadata: dict[str, Any]


class UsageChunk(_Chunk, tag="usage"):
    """Tokens a model call used; the message's usage is the sum of these and of the steps' usage."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None


class ProviderMetadataChunk(_Chunk, tag="provider-metadata"):
    """Provider metadata of a part: the tool call ``tool_call_id`` (while its arguments stream),
    or else the text or reasoning part written by the chunk just before."""

    provider_metadata: ProviderMetadata
    tool_call_id: str | None = None


class DocumentSourceChunk(_Chunk, tag="source-document"):
    """A document the answer refers to (a source without a URL)."""

    id: str
    title: str
    media_type: str
    filename: str | None = None
    parent_id: str | None = None


class PreliminaryToolResultChunk(_Chunk, tag="tool-result-preliminary"):
    """A tool call's result so far; its final result (a :class:`ToolResultChunk`) follows."""

    tool_call_id: str
    result: Any
    artifact: Any | None = None


class WarningChunk(_Chunk, tag="warning"):
    """An error that does not fail the run: ``severity`` is ``"warning"`` or ``"info"``."""

    error: str
    severity: Literal["warning", "info"] = "warning"
    code: str | None = None


class DataPartChunk(_Chunk, tag="data-part"):
    """A named data part of the message. One with the ``id`` of an earlier one replaces its data;
    a ``transient`` one is shown to the client but not kept in the message."""

    name: str
    data: Any
    id: str | None = None
    transient: bool = False
    parent_id: str | None = None


AssistantStreamChunk: TypeAlias = (
    TextDeltaChunk
    | ReasoningDeltaChunk
    | ReasoningPartStartChunk
    | ToolCallBeginChunk
    | ToolCallDeltaChunk
    | ToolCallArgsFinishChunk
    | ToolResultChunk
    | ToolApprovalRequestChunk
    | ToolApprovalResponseChunk
    | DataChunk
    | ErrorChunk
    | UpdateStateChunk
    | SourceChunk
    | FileChunk
    | AnnotationsChunk
    | StepStartChunk
    | StepFinishChunk
    | MessageMetadataChunk
    | UsageChunk
    | ProviderMetadataChunk
    | DocumentSourceChunk
    | PreliminaryToolResultChunk
    | WarningChunk
    | DataPartChunk
)


for _cls in typing.get_args(AssistantStreamChunk):
    _cls.type = _cls.__struct_config__.tag
del _cls
