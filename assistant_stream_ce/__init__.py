"""Stream AI-assistant responses from Python to assistant-ui, the AI SDK and OpenAI-style clients.

A run is an AnyIO task group: ``create_run(callback)`` runs ``callback(controller)``
and yields typed chunks, on asyncio and trio alike.
"""

from ._run import DanglingToolCallWarning
from .assistant_stream_chunk import (
    AnnotationsChunk,
    AssistantStreamChunk,
    DataChunk,
    ErrorChunk,
    FileChunk,
    ObjectStreamOperation,
    ReasoningDeltaChunk,
    SourceChunk,
    StepFinishChunk,
    StepStartChunk,
    TextDeltaChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UpdateStateChunk,
)
from .create_run import CancellationSignal, Run, RunController, RunOutcome, create_run
from .message import AssistantMessage
from .modules.tool_call import ToolCallController
from .state import StateKeyError, StateProxy
from .tool_calls import ToolCall, ToolCallBatch, ToolCallHandle

__all__ = [
    "AnnotationsChunk",
    "AssistantMessage",
    "AssistantStreamChunk",
    "CancellationSignal",
    "DanglingToolCallWarning",
    "DataChunk",
    "ErrorChunk",
    "FileChunk",
    "ObjectStreamOperation",
    "ReasoningDeltaChunk",
    "Run",
    "RunController",
    "RunOutcome",
    "SourceChunk",
    "StateKeyError",
    "StateProxy",
    "StepFinishChunk",
    "StepStartChunk",
    "TextDeltaChunk",
    "ToolCall",
    "ToolCallArgsFinishChunk",
    "ToolCallBatch",
    "ToolCallBeginChunk",
    "ToolCallController",
    "ToolCallDeltaChunk",
    "ToolCallHandle",
    "ToolResultChunk",
    "UpdateStateChunk",
    "create_run",
]
