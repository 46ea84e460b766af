"""The encoder contract every wire format implements.

A :class:`StreamEncoder` describes a format (media type, headers, keepalive)
and opens one :class:`FrameWriter` per stream. The writer turns chunks into
frames and, once, writes the terminal frames, so an HTTP response can drive it
chunk by chunk and still end every stream well-formed.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Literal, Protocol

from .._run import default_error_message
from ..assistant_stream_chunk import AssistantStreamChunk, ErrorChunk
from ._frames import SSE_KEEPALIVE, SSE_MEDIA_TYPE

__all__ = ["FinishStatus", "FrameWriter", "StreamEncoder"]

logger = logging.getLogger("assistant_stream_ce")

FinishStatus = Literal["completed", "error", "cancelled"]


class FrameWriter(Protocol):
    """Per-stream encoding state (open parts, tool calls, ids)."""

    def encode(self, chunk: AssistantStreamChunk) -> bytes:
        """The frames for one chunk (``b""`` when the format has none, or after :meth:`finish`)."""
        ...

    def finish(self, status: FinishStatus) -> bytes:
        """Close what is open, then write the format's terminal frames; ``b""`` on later calls."""
        ...


class StreamEncoder(ABC):
    """A wire format: what to send for a stream of chunks, and how to label it."""

    @abstractmethod
    def get_media_type(self) -> str:
        """The response's content type."""

    def get_headers(self) -> dict[str, str]:
        """Extra response headers the format's clients look for."""
        return {}

    def get_keepalive_token(self) -> str | None:
        """What to send while idle, ignored by the format's clients (``None``: nothing is safe)."""
        return SSE_KEEPALIVE if self.get_media_type() == SSE_MEDIA_TYPE else None

    def open(self) -> FrameWriter:
        """A fresh writer for one stream.

        Encoders written for assistant-stream 0.0.36 implement only
        :meth:`encode_stream`; the responses stream those through it.
        """
        raise NotImplementedError(f"{type(self).__name__} only implements encode_stream()")

    async def encode_stream(self, stream: AsyncIterable[AssistantStreamChunk]) -> AsyncGenerator[str, None]:
        """Encode a whole stream as ``str`` frames, ending with the terminal frames.

        If ``stream`` raises, the exception is logged and the stream still ends
        well-formed: an error frame (unless the stream sent an error chunk just
        before raising, as a run does), then the terminal frames for "error".
        """
        writer = self.open()
        iterator = aiter(stream)
        status: FinishStatus = "completed"
        last: AssistantStreamChunk | None = None
        try:
            while True:
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    logger.error("the stream being encoded raised", exc_info=exc)
                    status = "error"
                    if not isinstance(last, ErrorChunk):
                        frames = writer.encode(ErrorChunk(error=default_error_message(exc)))
                        if frames:
                            yield frames.decode()
                    break
                last = chunk
                frames = writer.encode(chunk)
                if frames:
                    yield frames.decode()
            yield writer.finish(status).decode()
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
