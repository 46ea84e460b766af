"""Per-stream bookkeeping of tool calls, shared by the wire formats."""

from __future__ import annotations

import json
from typing import Final

import msgspec

from ..assistant_stream_chunk import ToolApprovalRequestChunk, ToolApprovalResponseChunk, ToolCallBeginChunk
from .stream_encoder import FinishStatus

__all__ = [
    "EMPTY_ARGS",
    "Approval",
    "UNFINISHED_ARGS_ERROR",
    "ToolCalls",
    "WireToolCall",
    "finish_reason",
    "parse_args",
]

EMPTY_ARGS: Final = "{}"
"""Argument text sent for a call that finishes without any (so clients can parse it)."""
UNFINISHED_ARGS_ERROR: Final = "The run ended before this tool call's arguments were complete."
"""The error a call ends with, where a format ends it as failed, when the run ended mid-arguments."""


class Approval(msgspec.Struct, rename="camel", omit_defaults=True):
    """assistant-stream's ``ToolCallApproval``: the client keeps it on the call and sends it back decided."""

    id: str
    signature: str
    approved: bool | None = None
    reason: str | None = None


class WireToolCall:
    """One call as the stream has shown it so far."""

    __slots__ = (
        "approval",
        "args",
        "args_finished",
        "continued",
        "denied",
        "has_result",
        "index",
        "tool_call_id",
        "tool_name",
    )

    def __init__(self, tool_call_id: str, tool_name: str, index: int) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.index = index
        self.args: list[str] = []
        self.args_finished = False
        self.has_result = False
        self.approval: ToolApprovalRequestChunk | None = None  # it waits for a decision
        self.continued = False  # announced by an earlier stream, continued with its decision in this one
        self.denied = False

    def append_args(self, delta: str) -> None:
        if delta:  # so that ``args`` is empty exactly when there is no argument text
            self.args.append(delta)

    @property
    def args_text(self) -> str:
        return "".join(self.args)


class ToolCalls:
    """The stream's tool calls by id, in the order they began."""

    def __init__(self) -> None:
        self._calls: dict[str, WireToolCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, tool_call_id: object) -> bool:
        return tool_call_id in self._calls

    def begin(self, chunk: ToolCallBeginChunk) -> WireToolCall | None:
        """Register a call; ``None`` for a duplicate id (which no client accepts twice)."""
        if chunk.tool_call_id in self._calls:
            return None
        call = self._calls[chunk.tool_call_id] = WireToolCall(chunk.tool_call_id, chunk.tool_name, len(self._calls))
        return call

    def continue_call(self, chunk: ToolApprovalResponseChunk) -> WireToolCall | None:
        """Register a call an earlier stream announced, with its arguments finished; ``None`` for a duplicate id."""
        call = self.begin(ToolCallBeginChunk(chunk.tool_call_id, chunk.tool_name))
        if call is not None:
            call.append_args(chunk.args_text)
            call.args_finished = call.continued = True
            call.denied = not chunk.approved
        return call

    def request_approval(self, chunk: ToolApprovalRequestChunk) -> WireToolCall | None:
        """The call if an approval may be asked for it now (arguments finished, no result, none asked yet)."""
        call = self._calls.get(chunk.tool_call_id)
        if call is None or call.has_result or call.approval is not None:
            return None
        call.approval = chunk
        return call

    def streaming(self, tool_call_id: str) -> WireToolCall | None:
        """The call if its arguments are still open (else a delta or finish for it is dropped)."""
        call = self._calls.get(tool_call_id)
        return call if call is not None and not call.args_finished else None

    def awaiting_result(self, tool_call_id: str) -> WireToolCall | None:
        """The call if it has no result yet (else a result for it is dropped)."""
        call = self._calls.get(tool_call_id)
        return call if call is not None and not call.has_result and call.approval is None else None

    def open_args(self) -> list[WireToolCall]:
        return [call for call in self._calls.values() if not call.args_finished]

    def pending(self) -> list[WireToolCall]:
        """Calls without a result (among them those waiting for approval): the client is expected to act on them."""
        return [call for call in self._calls.values() if not call.has_result]

    def awaiting_approval(self) -> list[WireToolCall]:
        """Calls that wait for a person's decision."""
        return [call for call in self._calls.values() if call.approval is not None]


def finish_reason(status: FinishStatus, tools: ToolCalls) -> str:
    """The AI SDK finish reason of a stream that ended with ``status``."""
    if status == "error":
        return "error"
    if status == "cancelled":
        return "other"
    return "tool-calls" if tools.pending() else "stop"


def parse_args(text: str) -> object:
    """A call's arguments as JSON (``{}`` when empty; the text itself when it is not JSON)."""
    if not text:
        return {}
    try:
        return msgspec.json.decode(text)
    except (msgspec.DecodeError, UnicodeEncodeError):
        pass
    try:  # msgspec refuses lone surrogates, raw or escaped; the stdlib parser keeps them
        return json.loads(text)
    except ValueError:
        return text
