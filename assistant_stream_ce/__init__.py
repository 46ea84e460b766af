"""Stream AI-assistant responses from Python to assistant-ui, the AI SDK and OpenAI-style clients.

A run is an AnyIO task group: ``create_run(callback)`` runs ``callback(controller)``
and yields typed chunks, on asyncio and trio alike.
"""

import importlib.util
from typing import Any

from ._run import DanglingToolCallWarning
from .any_request import AnyChatRequest, read_any_chat_request
from .approval import ToolApproval, ToolApprovalError, set_approval_key
from .assistant_stream_chunk import (
    AnnotationsChunk,
    AssistantStreamChunk,
    DataChunk,
    DataPartChunk,
    DocumentSourceChunk,
    ErrorChunk,
    FileChunk,
    MessageMetadataChunk,
    ObjectStreamOperation,
    PreliminaryToolResultChunk,
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
    ToolCallArgsTextFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UpdateStateChunk,
    UsageChunk,
    WarningChunk,
)
from .conversion import (
    continue_ui_message,
    to_agui_messages,
    to_anthropic_messages,
    to_model_messages,
    to_openai_messages,
    to_ui_message,
)
from .create_run import CancellationSignal, Run, RunController, RunOutcome, create_run
from .message import AssistantMessage
from .serialization import (
    AGUIEncoder,
    AGUIResponse,
    AssistantStreamResponse,
    AssistantTransportEncoder,
    AssistantTransportResponse,
    DataStreamEncoder,
    DataStreamResponse,
    OpenAIStreamEncoder,
    OpenAIStreamResponse,
    StreamEncoder,
    UIMessageStreamEncoder,
    UIMessageStreamResponse,
)
from .shutdown import GracefulShutdown
from .state import StateKeyError, StateProxy
from .tool_call_controller import ToolCallController
from .tool_calls import ToolCall, ToolCallBatch, ToolCallHandle

__all__ = [
    "AGUIEncoder",
    "AGUIResponse",
    "AssistantStreamResponse",
    "AssistantTransportEncoder",
    "AssistantTransportResponse",
    "DataStreamEncoder",
    "DataStreamResponse",
    "OpenAIStreamEncoder",
    "OpenAIStreamResponse",
    "StreamEncoder",
    "UIMessageStreamEncoder",
    "UIMessageStreamResponse",
    "AnnotationsChunk",
    "AnyChatRequest",
    "AssistantMessage",
    "AssistantStreamChunk",
    "CancellationSignal",
    "DanglingToolCallWarning",
    "DataChunk",
    "DataPartChunk",
    "DocumentSourceChunk",
    "ErrorChunk",
    "FileChunk",
    "GracefulShutdown",
    "MessageMetadataChunk",
    "ObjectStreamOperation",
    "PreliminaryToolResultChunk",
    "ProviderMetadataChunk",
    "ReasoningDeltaChunk",
    "ReasoningPartStartChunk",
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
    "ToolCallArgsTextFinishChunk",
    "ToolCallBatch",
    "ToolCallBeginChunk",
    "ToolCallController",
    "ToolCallDeltaChunk",
    "ToolCallHandle",
    "ToolApproval",
    "ToolApprovalError",
    "ToolApprovalRequestChunk",
    "ToolApprovalResponseChunk",
    "ToolResultChunk",
    "UpdateStateChunk",
    "UsageChunk",
    "WarningChunk",
    "create_run",
    "read_any_chat_request",
    "set_approval_key",
    "to_agui_messages",
    "to_anthropic_messages",
    "to_model_messages",
    "to_openai_messages",
    "to_ui_message",
    "continue_ui_message",
]

# The langgraph extra is exported from the package root, as in assistant-stream 0.0.36,
# but imported on first use: langchain-core takes about a second to import.
_LANGGRAPH_NAMES = ("append_langgraph_event", "get_tool_call_subgraph_state")
if importlib.util.find_spec("langchain_core") is not None:
    __all__ += _LANGGRAPH_NAMES


def __getattr__(name: str) -> Any:
    if name in _LANGGRAPH_NAMES:
        from .adapters import langgraph

        return getattr(langgraph, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
