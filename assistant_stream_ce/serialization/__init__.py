"""Wire formats: each is a StreamEncoder plus a Starlette response.

Every format's frames are made by one delivery loop (``_delivery``) and sent
over HTTP by one exchange (``_exchange``).
"""

from .ag_ui import AGUIEncoder, AGUIResponse
from .assistant_stream_response import AssistantStreamResponse
from .assistant_transport import AssistantTransportEncoder, AssistantTransportResponse
from .data_stream import DataStreamEncoder, DataStreamResponse
from .openai_stream import OpenAIStreamEncoder, OpenAIStreamResponse
from .stream_encoder import FinishStatus, FrameWriter, StreamEncoder
from .ui_message_stream import UIMessageStreamEncoder, UIMessageStreamResponse

__all__ = [
    "AGUIEncoder",
    "AGUIResponse",
    "AssistantStreamResponse",
    "AssistantTransportEncoder",
    "AssistantTransportResponse",
    "DataStreamEncoder",
    "DataStreamResponse",
    "FinishStatus",
    "FrameWriter",
    "OpenAIStreamEncoder",
    "OpenAIStreamResponse",
    "StreamEncoder",
    "UIMessageStreamEncoder",
    "UIMessageStreamResponse",
]
