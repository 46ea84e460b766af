"""JSON and SSE framing shared by the wire formats."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from .._json import encode_json as dumps

__all__ = ["GENERIC_ERROR", "SSE_DONE", "SSE_KEEPALIVE", "SSE_MEDIA_TYPE", "SSEFrames", "Usage", "dumps", "sse"]

SSE_MEDIA_TYPE: Final = "text/event-stream"
SSE_KEEPALIVE: Final = ": heartbeat\n\n"
SSE_DONE: Final = b"data: [DONE]\n\n"
GENERIC_ERROR: Final = "An error occurred."
"""Error text for a stream that failed without saying why."""


def sse(value: Any) -> bytes:
    """One SSE event whose data is ``value`` as JSON (on one line: JSON escapes CR and LF)."""
    return b"data: " + dumps(value) + b"\n\n"


class SSEFrames:
    """The SSE events written for one chunk, taken out together."""

    def __init__(self) -> None:
        self._frames: list[bytes] = []

    def add(self, value: Any) -> None:
        self._frames.append(sse(value))

    def take(self) -> bytes:
        frames = b"".join(self._frames)
        self._frames.clear()
        return frames


class Usage(msgspec.Struct, rename="camel"):
    """Token usage as assistant-stream writes it (a step's, or the sum of all steps')."""

    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
