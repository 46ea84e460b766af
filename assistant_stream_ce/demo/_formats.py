"""The wire formats the demo page can switch between, and the response class of each."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass

from starlette.responses import Response

from ..assistant_stream_chunk import AssistantStreamChunk
from ..serialization.assistant_transport import AssistantTransportResponse
from ..serialization.data_stream import DataStreamResponse
from ..serialization.ui_message_stream import UIMessageStreamResponse

__all__ = ["FORMATS", "FORMATS_BY_ID", "Format"]


@dataclass(frozen=True)
class Format:
    """A wire format; ``carries_state`` is False for formats without state frames (the run state then
    also goes out as ``{"kind": "state"}`` data parts, the AI SDK's way to send app data)."""

    id: str
    label: str
    response: Callable[[AsyncIterable[AssistantStreamChunk]], Response]
    carries_state: bool = True


FORMATS = (
    Format("data-stream", "Data stream", DataStreamResponse),
    Format("assistant-transport", "Assistant transport", AssistantTransportResponse),
    Format("ui-message-stream", "UI message stream", UIMessageStreamResponse, carries_state=False),
)

FORMATS_BY_ID = {fmt.id: fmt for fmt in FORMATS}
