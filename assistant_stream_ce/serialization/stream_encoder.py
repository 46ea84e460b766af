"""The encoder contract every wire format implements.

A :class:`StreamEncoder` describes a format (media type, headers, keepalive)
and opens one :class:`FrameWriter` per stream. The writer turns chunks into
frames and, once, writes the terminal frames, so an HTTP response can drive it
chunk by chunk and still end every stream well-formed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable
from typing import ClassVar, Protocol

from .._run import DEFAULT_GRACE_PERIOD, FinishStatus, close_quietly
from ..assistant_stream_chunk import AssistantStreamChunk
from ._delivery import Delivery, as_source
from ._frames import SSE_KEEPALIVE, SSE_MEDIA_TYPE

__all__ = ["FinishStatus", "FrameWriter", "StreamEncoder"]


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

    frame_end: ClassVar[str] = "\n\n"
    """What ends each frame of the format's writer: an SSE event's blank line (the data stream: ``"\\n"``)."""

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

    def encode_chunk(self, chunk: AssistantStreamChunk) -> str:
        """The frames for one chunk, as assistant-stream 0.0.36's encoders had it.

        Successive calls continue one stream of this encoder's own (a tool
        result needs its tool call's begin first); :meth:`encode_stream` and the
        responses each start their own stream. No terminal frames are written.
        """
        writer: FrameWriter | None = getattr(self, "_chunk_writer", None)
        if writer is None:
            writer = self._chunk_writer = self.open()
        return writer.encode(chunk).decode()

    async def encode_stream(self, stream: AsyncIterable[AssistantStreamChunk]) -> AsyncGenerator[str, None]:
        """Encode a whole stream, one frame per item (a data-stream line, an SSE event), ending with the
        terminal frames.

        If ``stream`` raises, the exception is logged and the stream still ends
        well-formed: an error frame (unless the stream sent an error chunk just
        before raising, as a run does), then the terminal frames for "error".
        The frames come from the one delivery loop that HTTP responses and
        resumable producers use too.
        """
        if not writes_frames(self):
            self.open()  # raises: an encoder needs a frame writer or its own encode_stream
        delivery = Delivery(as_source(stream, DEFAULT_GRACE_PERIOD), self, confirmed=False)
        frames = delivery.frames()
        delivered = False
        try:
            async for data in frames:
                for frame in split_frames(data, self):
                    yield frame
            for frame in split_frames(delivery.last_frames(), self):
                yield frame
            delivered = True  # the consumer asked for more after the last frame
        finally:
            await close_quietly(frames, DEFAULT_GRACE_PERIOD)
            await delivery.close(delivered)


def writes_frames(encoder: object) -> bool:
    """Whether ``encoder`` has a frame writer (:meth:`StreamEncoder.open`); 0.0.36-style encoders only stream."""
    open_writer = getattr(type(encoder), "open", None)
    return open_writer is not None and open_writer is not StreamEncoder.open


def split_frames(data: bytes, encoder: StreamEncoder) -> list[str]:
    """What ``encoder``'s writer wrote at once, one frame per item.

    Frames end in ``encoder.frame_end`` and hold no raw line break of their
    own (JSON escapes them), so cutting there is exact.
    """
    end = encoder.frame_end
    pieces = data.decode().split(end)
    frames = [piece + end for piece in pieces[:-1]]
    if pieces[-1]:
        frames.append(pieces[-1])
    return frames
