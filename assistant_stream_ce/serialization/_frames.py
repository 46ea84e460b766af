"""JSON and SSE framing shared by the wire formats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from .._json import encode_json as dumps
from ..assistant_stream_chunk import StepFinishChunk, UsageChunk
from ..message import Usage as MessageUsage

__all__ = [
    "GENERIC_ERROR",
    "MAX_FRAME_BYTES",
    "SSE_DONE",
    "SSE_KEEPALIVE",
    "SSE_MEDIA_TYPE",
    "SSEFrames",
    "TokenUsage",
    "Usage",
    "UsageRecord",
    "dumps",
    "delta_frames",
    "sse",
]

SSE_MEDIA_TYPE: Final = "text/event-stream"
SSE_KEEPALIVE: Final = ": heartbeat\n\n"
SSE_DONE: Final = b"data: [DONE]\n\n"
GENERIC_ERROR: Final = "An error occurred."
"""Error text for a stream that failed without saying why."""
MAX_FRAME_BYTES: Final = 1 << 20
"""The largest frame carrying a delta (clients cap a line or an event at 10 to 64 MiB)."""


def sse(value: Any) -> bytes:
    """One SSE event whose data is ``value`` as JSON (on one line: JSON escapes CR and LF)."""
    return b"data: " + dumps(value) + b"\n\n"


def delta_frames(text: str, frame: Callable[[str], bytes], first: Callable[[str], bytes] | None = None) -> bytes:
    """``frame(text)``; if that is over :data:`MAX_FRAME_BYTES`, the frames of consecutive pieces of ``text``.

    For a delta (text, reasoning, tool arguments), which clients join back
    together. Each piece's whole frame is measured (JSON escapes can make it
    up to twelve bytes a character), and pieces end between characters, never
    between the two halves of a surrogate pair. ``first``, if given, frames
    the first piece instead (a frame that opens the stream says more).
    """
    first = first or frame
    whole = first(text)
    return whole if len(whole) <= MAX_FRAME_BYTES else _split(text, whole, frame, first)


def _split(text: str, whole: bytes, frame: Callable[[str], bytes], first: Callable[[str], bytes]) -> bytes:
    """The frames of consecutive pieces of ``text``, whose one frame ``whole`` is too big."""
    frames = []
    start = 0
    step = max(1, len(text) * (MAX_FRAME_BYTES * 9 // 10) // len(whole))  # characters a frame holds, about
    while start < len(text):
        framed = first if start == 0 else frame
        end = _piece_end(text, start, start + step)
        piece = framed(text[start:end])
        while len(piece) > MAX_FRAME_BYTES:  # denser text than the estimate: halve until it fits
            end = _piece_end(text, start, start + max(1, (end - start) // 2))
            piece = framed(text[start:end])
        frames.append(piece)
        step, start = end - start, end
    return b"".join(frames)


def _piece_end(text: str, start: int, end: int) -> int:
    """``end`` (at most the text's end), moved back off the middle of a surrogate pair unless that empties the piece."""
    if end >= len(text):
        return len(text)
    if end - 1 > start and "\ud800" <= text[end - 1] <= "\udbff" and "\udc00" <= text[end] <= "\udfff":
        return end - 1
    return end


class SSEFrames:
    """The SSE events written for one chunk, taken out together."""

    def __init__(self) -> None:
        self._frames: list[bytes] = []

    def add(self, value: Any) -> None:
        self._frames.append(sse(value))

    def add_delta(self, delta: str, event: Callable[[str], Any]) -> None:
        """The events ``event(piece)`` carrying ``delta``, split so that none is over :data:`MAX_FRAME_BYTES`."""
        whole = sse(event(delta))
        if len(whole) > MAX_FRAME_BYTES:

            def frame(piece: str) -> bytes:
                return sse(event(piece))

            whole = _split(delta, whole, frame, frame)
        self._frames.append(whole)

    def take(self) -> bytes:
        frames = self._frames
        if len(frames) == 1:
            return frames.pop()  # most chunks make one event
        taken = b"".join(frames)
        frames.clear()
        return taken


class Usage(msgspec.Struct, rename="camel"):
    """Token usage as assistant-stream writes it (a step's, or the sum of all steps')."""

    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens


class TokenUsage(msgspec.Struct, rename="camel", omit_defaults=True):
    """A run's token usage as the AI SDK and AG-UI write it: with the total, and the optional details."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None


class UsageRecord:
    """The usage a stream's run recorded (usage chunks and step finishes), for formats that send it once."""

    def __init__(self) -> None:
        self.usage: MessageUsage | None = None  # None until the run records any
        self.recorded = False  # the run called add_usage (not only step finishes with tokens)

    def add(self, chunk: UsageChunk | StepFinishChunk) -> None:
        if self.usage is None:
            self.usage = MessageUsage()
        if isinstance(chunk, StepFinishChunk):
            chunk = UsageChunk(chunk.input_tokens, chunk.output_tokens)
        else:
            self.recorded = True
        self.usage.add(chunk)

    def token_usage(self) -> TokenUsage | None:
        usage = self.usage
        if usage is None:
            return None
        total = usage.input_tokens + usage.output_tokens
        return TokenUsage(
            usage.input_tokens, usage.output_tokens, total, usage.reasoning_tokens, usage.cached_input_tokens
        )
