"""The LangGraph functions at assistant-stream 0.0.36's module path.

They live in :mod:`assistant_stream_ce.adapters.langgraph`; the core never imports this module.
"""

from ..adapters.langgraph import (
    LANGGRAPH_INTERRUPT_REASON,
    InterruptResumeError,
    LangGraphChatRequest,
    LangGraphDataStreamRequest,
    append_langgraph_event,
    get_tool_call_subgraph_state,
    interrupt_data,
    langgraph_command,
)

__all__ = [
    "LANGGRAPH_INTERRUPT_REASON",
    "InterruptResumeError",
    "LangGraphChatRequest",
    "LangGraphDataStreamRequest",
    "append_langgraph_event",
    "get_tool_call_subgraph_state",
    "interrupt_data",
    "langgraph_command",
]
