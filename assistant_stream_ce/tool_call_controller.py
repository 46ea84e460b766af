"""Tool calls the caller drives, and what every tool call shares.

``controller.add_tool_call`` (and ``create_tool_call`` outside a run) give a
:class:`ToolCallController`: the caller streams the arguments and sets the
result, as in assistant-stream 0.0.36. A call's id and its checked result
chunk are made here for the structured tool calls (:mod:`.tool_calls`) too.
``assistant_stream_ce.modules.tool_call`` (0.0.36's path) re-exports this module.
"""

from __future__ import annotations

import secrets
import string
import warnings
from collections.abc import AsyncIterator
from typing import Any

from ._json import encoded_size
from ._merger import Merger
from .approval import approval_request
from .assistant_stream_chunk import AssistantStreamChunk, ToolResultChunk

__all__ = ["ToolCallController", "create_tool_call", "generate_openai_style_tool_call_id"]

_ALPHABET = string.ascii_letters + string.digits


def generate_openai_style_tool_call_id() -> str:
    """A fresh id shaped like OpenAI's (``call_`` and 24 letters or digits)."""
    return "call_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def tool_result_chunk(
    tool_call_id: str, result: Any, artifact: Any = None, is_error: bool = False
) -> tuple[ToolResultChunk, int]:
    """A checked result chunk and what it weighs in the buffer."""
    if not isinstance(is_error, bool):
        raise TypeError(f"is_error must be bool, not {type(is_error).__name__}")
    cost = encoded_size(result, f"the result of tool call {tool_call_id!r}")
    cost += encoded_size(artifact, f"the artifact of tool call {tool_call_id!r}")
    return ToolResultChunk(tool_call_id, result, artifact, is_error), cost


class ToolCallController:
    """One tool call of a run, driven by the caller (``controller.add_tool_call``)."""

    def __init__(self, merger: Merger, tool_name: str, tool_call_id: str) -> None:
        self._merger = merger
        self.tool_name = tool_name
        self.tool_call_id = tool_call_id

    def append_args_text(self, args_text_delta: str) -> None:
        """Stream a piece of the JSON arguments text."""
        self._merger.args_delta(self.tool_call_id, args_text_delta)

    def set_response(self, result: Any, *, artifact: Any | None = None, is_error: bool = False) -> None:
        """Finish the arguments and send the one result of this call."""
        chunk, cost = tool_result_chunk(self.tool_call_id, result, artifact, is_error)
        self._merger.result(chunk, cost)

    def set_result(self, result: Any) -> None:
        """Deprecated spelling of :meth:`set_response`."""
        warnings.warn("set_result() is deprecated; use set_response()", DeprecationWarning, stacklevel=2)
        self.set_response(result)

    def close(self) -> None:
        """Finish the arguments without a result (the client will run the tool)."""
        self._merger.finish_args(self.tool_call_id)

    def request_approval(self, args: dict[str, Any]) -> None:
        """Finish the arguments and ask a person to approve the call: it has no result in this run.

        ``args`` are the streamed arguments, parsed: what the person decides
        on, signed. The next request carries the decision, and
        ``start_tool_call(..., approval=...)`` runs the call or sends its denial.
        """
        if not isinstance(args, dict):
            raise TypeError(f"args must be a dict, not {type(args).__name__}")
        chunk = approval_request(self.tool_call_id, self.tool_name, args)
        self._merger.finish_args(self.tool_call_id)
        self._merger.request_approval(chunk)


class _OwnStreamToolCall(ToolCallController):
    """A tool call with a chunk stream of its own, which its result or ``close()`` ends."""

    def set_response(self, result: Any, *, artifact: Any | None = None, is_error: bool = False) -> None:
        super().set_response(result, artifact=artifact, is_error=is_error)
        self._merger.close()

    def close(self) -> None:
        super().close()
        self._merger.close()

    def request_approval(self, args: dict[str, Any]) -> None:
        super().request_approval(args)
        self._merger.close()


async def create_tool_call(
    tool_name: str, tool_call_id: str, parent_id: str | None = None
) -> tuple[AsyncIterator[AssistantStreamChunk], ToolCallController]:
    """A tool call outside any run: its chunk stream (begin, arguments, result) and its controller.

    As in assistant-stream 0.0.36: pass the stream to ``controller.add_stream``
    of a run, or encode it yourself; ``set_response()`` or ``close()`` ends it.
    """
    merger = Merger()
    merger.begin_tool(tool_call_id, tool_name, parent_id)

    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        while True:
            try:
                chunk = await merger.get()
            except StopAsyncIteration:
                return
            yield chunk

    return chunks(), _OwnStreamToolCall(merger, tool_name, tool_call_id)
