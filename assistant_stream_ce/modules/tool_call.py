"""The tool-call controller at assistant-stream 0.0.36's module path.

It lives in :mod:`assistant_stream_ce.tool_call_controller`; the core never imports this module.
"""

from ..tool_call_controller import ToolCallController, create_tool_call, generate_openai_style_tool_call_id

__all__ = ["ToolCallController", "create_tool_call", "generate_openai_style_tool_call_id"]
