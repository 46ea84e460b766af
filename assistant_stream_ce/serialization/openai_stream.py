"""OpenAI chat-completions streaming: ``chat.completion.chunk`` objects as SSE ``data:`` events.

Text becomes ``content`` deltas and tool calls become ``tool_calls`` deltas
(index, id, function name, then argument pieces), as OpenAI's API streams them,
so OpenAI client libraries rebuild the same message. The last chunk carries
``finish_reason`` (``stop``, ``tool_calls``, or ``length`` for a cancelled run,
whose unfinished tool arguments stay as they were), an error is an ``error``
event instead, and the stream ends with ``data: [DONE]``. When the request
asked for usage (``stream_options.include_usage``), a last chunk with no
choices carries the run's token usage, as OpenAI's does.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import AsyncIterable
from typing import Any, Final, Literal, NoReturn, TypeVar

import msgspec

from ..assistant_stream_chunk import (
    AssistantStreamChunk,
    ErrorChunk,
    StepFinishChunk,
    TextDeltaChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UsageChunk,
)
from ._frames import GENERIC_ERROR, SSE_DONE, SSE_MEDIA_TYPE, UsageRecord, delta_frames, sse
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


class _TokenDetails(msgspec.Struct, omit_defaults=True):
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None


class _Usage(msgspec.Struct, omit_defaults=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: _TokenDetails | None = None
    prompt_tokens_details: _TokenDetails | None = None


class _UsageChunk(_Chunk, kw_only=True):
    """The last chunk of a stream whose request asked for usage: no choices, the usage."""

    usage: _Usage


_C = TypeVar("_C", bound=_Chunk)


class _ErrorBody(msgspec.Struct):
    message: str
    type: str = "server_error"
    param: None = None
    code: None = None


class _Error(msgspec.Struct):
    error: _ErrorBody


class _OpenAIWriter:
    def __init__(self, model: str, system_fingerprint: str, include_usage: bool) -> None:
        self._id = generate_openai_style_id()
        self._usage = UsageRecord() if include_usage else None
        self._created = int(time.time())
        self._model = model
        self._fingerprint = system_fingerprint
        self._role_sent = False
        self._role_named = False
        self._tools = ToolCalls()
        self._error_sent = False
        self._failure: str | None = None  # why encode() failed the stream, for its error event
        self._finished = False

    def _chunk(self, delta: _Delta, finish_reason: str | None = None) -> bytes:
        return sse(self._fields(_Chunk, choices=[_Choice(delta=delta, finish_reason=finish_reason)]))

    def _fields(self, kind: type[_C], **fields: Any) -> _C:
        """A chunk of this stream (its id, time, model and fingerprint) with ``fields``."""
        return kind(
            id=self._id, created=self._created, model=self._model, system_fingerprint=self._fingerprint, **fields
        )

    def _tool_delta(self, call: WireToolCall, arguments: str) -> bytes:
        return self._chunk(_Delta(tool_calls=[_ToolCallDelta(call.index, _Function(arguments))]))

    def _args_deltas(self, call: WireToolCall, arguments: str) -> bytes:
        return delta_frames(arguments, lambda piece: self._tool_delta(call, piece))

    def encode(self, chunk: AssistantStreamChunk) -> bytes:
        if self._finished:
            return b""
        frames = self._encode(chunk)
        self._role_sent = self._role_named  # once a frame of this chunk named it, later ones must not
        return frames

    def _opening(self, delta: _Delta) -> _Delta:
        """``delta``, naming the role if it opens the stream (the SDKs need it once, and join repeats)."""
        if not self._role_sent:
            delta.role = "assistant"
            self._role_named = True
        return delta

    def _encode(self, chunk: AssistantStreamChunk) -> bytes:
        match chunk:
            case TextDeltaChunk():
                return delta_frames(
                    chunk.text_delta,
                    lambda piece: self._chunk(_Delta(content=piece)),
                    lambda piece: self._chunk(self._opening(_Delta(content=piece))),
                )
            case ToolCallBeginChunk():
                if len(self._tools) >= MAX_TOOL_CALLS and chunk.tool_call_id not in self._tools:
                    self._too_many_calls(chunk)
                call = self._tools.begin(chunk)
                if call is None:
                    return b""
                start = _ToolCallDelta(call.index, _Function("", call.tool_name), call.tool_call_id, "function")
                return self._chunk(self._opening(_Delta(tool_calls=[start])))
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
            case UsageChunk() | StepFinishChunk() if self._usage is not None:
                self._usage.add(chunk)
        return b""

    def _usage_chunk(self) -> bytes:
        """The usage chunk, if the request asked for it (zeros when the run recorded none)."""
        if self._usage is None:
            return b""
        usage = self._usage.token_usage()
        if usage is None:
            return self._usage_frame(_Usage(0, 0, 0))
        completion = None if usage.reasoning_tokens is None else _TokenDetails(reasoning_tokens=usage.reasoning_tokens)
        prompt = None if usage.cached_input_tokens is None else _TokenDetails(cached_tokens=usage.cached_input_tokens)
        values = (usage.input_tokens, usage.output_tokens, usage.total_tokens, completion, prompt)
        return self._usage_frame(_Usage(*values))

    def _usage_frame(self, usage: _Usage) -> bytes:
        return sse(self._fields(_UsageChunk, choices=[], usage=usage))

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
            frames.append(self._chunk(self._opening(_Delta()), "tool_calls" if self._tools.pending() else "stop"))
            frames.append(self._usage_chunk())
        elif status == "cancelled":
            # A cut-off turn: the SDKs' helpers need a finish_reason, and "length" is the one that
            # says the turn did not finish (their tool runners refuse it rather than run a call).
            frames.append(self._chunk(self._opening(_Delta()), "length"))
            frames.append(self._usage_chunk())
        elif not self._error_sent:
            frames.append(sse(_Error(_ErrorBody(self._failure or GENERIC_ERROR))))
        frames.append(SSE_DONE)
        return b"".join(frames)


class OpenAIStreamEncoder(StreamEncoder):
    """OpenAI chat-completions chunks over SSE.

    ``include_usage``: end with a chunk carrying the run's token usage, as
    OpenAI does for a request with ``stream_options: {"include_usage": true}``.
    """

    def __init__(
        self, model: str = "assistant_stream", system_fingerprint: str = "fp_0000000000", *, include_usage: bool = False
    ) -> None:
        self.model = model
        self.system_fingerprint = system_fingerprint
        self.include_usage = include_usage

    def get_media_type(self) -> str:
        return SSE_MEDIA_TYPE

    def open(self) -> _OpenAIWriter:
        return _OpenAIWriter(self.model, self.system_fingerprint, self.include_usage)


class OpenAIStreamResponse(AssistantStreamResponse):
    """A streaming HTTP response of OpenAI chat-completions chunks."""

    def __init__(
        self,
        stream: AsyncIterable[AssistantStreamChunk],
        heartbeat: HeartbeatOption = True,
        *,
        model: str = "assistant_stream",
        include_usage: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(stream, OpenAIStreamEncoder(model=model, include_usage=include_usage), heartbeat, **kwargs)
