"""Placeholder until the HTTP response lands: a StreamingResponse over the encoder."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

from starlette.responses import StreamingResponse

from ..assistant_stream_chunk import AssistantStreamChunk


class AssistantStreamResponse(StreamingResponse):
    def __init__(self, stream: AsyncIterable[AssistantStreamChunk], stream_encoder: Any, **kwargs: Any) -> None:
        super().__init__(
            stream_encoder.encode_stream(stream),
            media_type=stream_encoder.get_media_type(),
            headers=stream_encoder.get_headers(),
        )
