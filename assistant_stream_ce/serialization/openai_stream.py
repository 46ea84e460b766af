"""OpenAI chat-completions streaming: ``chat.completion.chunk`` objects as SSE ``data:`` events.

Text becomes ``content`` deltas and tool calls become ``tool_calls`` deltas
(index, id, function name, then argument pieces), as OpenAI's API streams them,
so OpenAI client libraries rebuild the same message. The last chunk carries
``finish_reason`` (``stop``, ``tool_calls``, or ``length`` for a cancelled run,
whose unfinished tool arguments stay as they were), an error is an ``error``
event instead, and the stream ends with ``data: [DONE]``.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import AsyncIterable
from typing import Any, Final, Literal, NoReturn

import msgspec

from ..assistant_stream_chunk import (
    AssistantStreamChunk,
    ErrorChunk,
    TextDeltaChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
)
from ._frames import GENERIC_ERROR, SSE_DONE, SSE_MEDIA_TYPE, delta_frames, sse
from ._tools import EMPTY_ARGS, ToolCalls, WireToolCall
from .assistant_stream_response import AssistantStreamResponse
from .heartbeat import HeartbeatOption
from .stream_encoder import FinishStatus, StreamEncoder

__all__ = ["OpenAIStreamEncoder", "OpenAIStreamResponse", "generate_openai_style_id"]

_ID_ALPHABET = string.ascii_letters + string.digits
MAX_TOOL_CALLS: Final = 128
"""Tool calls one message may hold: OpenAI's SDKs reject a tool call index of 128 or more."""


def generate_openai_style_id() -> str:
    """A fresh completion id shaped like OpenAI's (``chatcmpl-`` and 24 letters or digits)."""
    return "chatcmpl-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


class _Function(msgspec.Struct, omit_defaults=True):
    arguments: str
    name: str | None = None


class _ToolCallDelta(msgspec.Struct, omit_defaults=True):
    index: int
    function: _Function
    id: str | None = None
    type: Literal["function"] | None = None


class _Delta(msgspec.Struct, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _Choice(msgspec.Struct, kw_only=True):
    index: int = 0
    delta: _Delta
    logprobs: None = None
    finish_reason: str | None


class _Chunk(msgspec.Struct, kw_only=True):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str
    choices: list[_Choice]


class _ErrorBody(msgspec.Struct):
    message: str
    type: str = "server_error"
    param: None = None
    code: None = None


class _Error(msgspec.Struct):
    error: _ErrorBody


class _OpenAIWriter:
    def __init__(self, model: str, system_fingerprint: str) -> None:
        self._id = generate_openai_style_id()
        self._created = int(time.time())
        self._model = model
        self._fingerprint = system_fingerprint
        self._role_sent = False
        self._tools = ToolCalls()
        self._error_sent = False
        self._failure: str | None = None  # why encode() failed the stream, for its error event
        self._finished = False

    def _chunk(self, delta: _Delta, finish_reason: str | None = None) -> bytes:
        choice = _Choice(delta=delta, finish_reason=finish_reason)
        return sse(
            _Chunk(
                id=self._id,
                created=self._created,
                model=self._model,
                system_fingerprint=self._fingerprint,
                choices=[choice],
            )
        )

    def _tool_delta(self, call: WireToolCall, arguments: str) -> bytes:
        return self._chunk(_Delta(tool_calls=[_ToolCallDelta(call.index, _Function(arguments))]))

    def _args_deltas(self, call: WireToolCall, arguments: str) -> bytes:
        return delta_frames(arguments, lambda piece: self._tool_delta(call, piece))

    def _opening(self) -> bytes:
        """The stream's first chunk names the role, alone (as OpenAI's does), so a split delta never repeats it."""
        if self._role_sent:
            return b""
        self._role_sent = True
        return self._chunk(_Delta(role="assistant"))

    def encode(self, chunk: AssistantStreamChunk) -> bytes:
        if self._finished:
            return b""
        frames = self._encode(chunk)
        return self._opening() + frames if frames else b""

    def _encode(self, chunk: AssistantStreamChunk) -> bytes:
        match chunk:
            case TextDeltaChunk():
                return delta_frames(chunk.text_delta, lambda piece: self._chunk(_Delta(content=piece)))
            case ToolCallBeginChunk():
                if len(self._tools) >= MAX_TOOL_CALLS and chunk.tool_call_id not in self._tools:
                    self._too_many_calls(chunk)
                call = self._tools.begin(chunk)
                if call is None:
                    return b""
                start = _ToolCallDelta(call.index, _Function("", call.tool_name), call.tool_call_id, "function")
                return self._chunk(_Delta(tool_calls=[start]))
            case ToolCallDeltaChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                if streaming is None:
                    return b""
                streaming.append_args(chunk.args_text_delta)
                return self._args_deltas(streaming, chunk.args_text_delta)
            case ToolCallArgsFinishChunk():
                streaming = self._tools.streaming(chunk.tool_call_id)
                return b"" if streaming is None else self._finish_args(streaming)
            case ToolResultChunk():
                # The format has no tool results: the call only counts as answered.
                call = self._tools.awaiting_result(chunk.tool_call_id)
                if call is None:
                    return b""
                call.has_result = True
                return self._finish_args(call) if not call.args_finished else b""
            case ErrorChunk():
                self._error_sent = True
                return sse(_Error(_ErrorBody(chunk.error)))
        return b""

    def _too_many_calls(self, chunk: ToolCallBeginChunk) -> NoReturn:
        """Fail the stream before a call the clients would throw on: the response ends it with this error."""
        self._failure = (
            f"tool call {chunk.tool_call_id!r} ({chunk.tool_name}) would be the {MAX_TOOL_CALLS + 1}th of this "
            f"message, and the OpenAI chat-completions format carries at most {MAX_TOOL_CALLS} tool calls "
            "per message (OpenAI's SDKs reject a larger index)"
        )
        raise ValueError(self._failure)

    def _finish_args(self, call: WireToolCall) -> bytes:
        """Arguments are complete: a call that had none gets ``{}``, so clients can parse them."""
        call.args_finished = True
        return b"" if call.args else self._tool_delta(call, EMPTY_ARGS)

    def finish(self, status: FinishStatus) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        frames = []
        if status == "completed":
            frames += [self._finish_args(call) for call in self._tools.open_args()]
            frames.append(self._chunk(_Delta(), "tool_calls" if self._tools.pending() else "stop"))
        elif status == "cancelled":
            # A cut-off turn: the SDKs' helpers need a finish_reason, and "length" is the one that
            # says the turn did not finish (their tool runners refuse it rather than run a call).
            frames.append(self._chunk(_Delta(), "length"))
        elif not self._error_sent:
            frames.append(sse(_Error(_ErrorBody(self._failure or GENERIC_ERROR))))
        frames.append(SSE_DONE)
        return self._opening() + b"".join(frames)


class OpenAIStreamEncoder(StreamEncoder):
    """OpenAI chat-completions chunks over SSE."""

    def __init__(self, model: str = "assistant_stream", system_fingerprint: str = "fp_0000000000") -> None:
        self.model = model
        self.system_fingerprint = system_fingerprint

    def get_media_type(self) -> str:
        return SSE_MEDIA_TYPE

    def open(self) -> _OpenAIWriter:
        return _OpenAIWriter(self.model, self.system_fingerprint)


class OpenAIStreamResponse(AssistantStreamResponse):
    """A streaming HTTP response of OpenAI chat-completions chunks."""

    def __init__(
        self,
        stream: AsyncIterable[AssistantStreamChunk],
        heartbeat: HeartbeatOption = True,
        *,
        model: str = "assistant_stream",
        **kwargs: Any,
    ) -> None:
        super().__init__(stream, OpenAIStreamEncoder(model=model), heartbeat, **kwargs)
