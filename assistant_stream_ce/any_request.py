"""One route for every client: recognise who sent a chat request and answer in that client's format.

:func:`read_any_chat_request` reads a body with :func:`read_chat_request`'s
limits, tells from its top-level keys which client sent it, decodes it into
that client's request struct, and returns an :class:`AnyChatRequest` whose
:meth:`~AnyChatRequest.respond` streams a run in the format that client reads:

=============================================  ================================  ===========================
The body has                                   Read as                           Answered with
=============================================  ================================  ===========================
``commands``                                   :class:`AssistantTransportRequest`  :class:`AssistantTransportResponse`
``trigger`` (the AI SDK's ``useChat``)         :class:`ChatRequest`              :class:`UIMessageStreamResponse`
``threadId`` and ``runId`` (AG-UI)             :class:`RunAgentInput`            :class:`AGUIResponse`
``model`` (OpenAI-style chat completions)      :class:`ChatCompletionRequest`    :class:`OpenAIStreamResponse`
``messages`` (assistant-ui's data stream)      :class:`DataStreamRequest`        :class:`DataStreamResponse`
=============================================  ================================  ===========================

The first row that matches wins. The clients' headers do not tell them apart
(all of them send ``Content-Type: application/json``), so the body decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

import msgspec
from starlette.requests import Request

from ._run import OnFinish
from .assistant_stream_chunk import AssistantStreamChunk
from .chat_request import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_VALUES,
    AssistantTransportRequest,
    ChatCompletionRequest,
    ChatRequest,
    ChatRequestError,
    DataStreamRequest,
    RunAgentInput,
    decode_body,
    read_chat_request,
)
from .serialization import (
    AGUIResponse,
    AssistantStreamResponse,
    AssistantTransportResponse,
    DataStreamResponse,
    OpenAIStreamResponse,
    UIMessageStreamResponse,
)
from .serialization.heartbeat import HeartbeatOption

__all__ = [
    "ACCEPTED_SHAPES",
    "AnyChatRequest",
    "ClientRequest",
    "ResponseOptions",
    "WireFormat",
    "read_any_chat_request",
]

#: The format a client reads, named as in :mod:`assistant_stream_ce.serialization`.
WireFormat = Literal["assistant-transport", "ui-message-stream", "ag-ui", "openai", "data-stream"]

#: The request structs :func:`read_any_chat_request` decodes into.
ClientRequest = AssistantTransportRequest | ChatRequest | RunAgentInput | ChatCompletionRequest | DataStreamRequest

#: What each format's body looks like, for the 422 of a body that is none of them.
ACCEPTED_SHAPES = (
    "assistant-ui assistant transport {commands}",
    "AI SDK useChat {messages, trigger}",
    "AG-UI RunAgentInput {threadId, runId, messages}",
    "OpenAI chat completions {model, messages, stream: true}",
    "assistant-ui data stream {messages}",
)


class ResponseOptions(TypedDict, total=False):
    """Keyword arguments of :class:`~assistant_stream_ce.AssistantStreamResponse` that every format takes."""

    heartbeat: HeartbeatOption
    send_timeout: float
    on_finish: OnFinish | None
    grace_period: float
    status_code: int
    headers: Mapping[str, str] | None


@dataclass(frozen=True)
class AnyChatRequest:
    """A decoded request, the format its client reads, and how to answer it.

    ``request`` is one of the structs of :data:`ClientRequest`; ``match`` on it
    (``case ChatRequest(): ...``) where the clients differ.
    """

    format: WireFormat
    request: ClientRequest

    @property
    def state(self) -> Any:
        """The state the client sent (assistant transport, data stream, AG-UI), else None."""
        request = self.request
        return None if isinstance(request, ChatRequest | ChatCompletionRequest) else request.state

    def respond(
        self,
        stream: AsyncIterable[AssistantStreamChunk],
        *,
        message_id: str | None = None,
        **options: Unpack[ResponseOptions],
    ) -> AssistantStreamResponse:
        """Stream ``stream`` (a ``create_run(...)``) in this client's format.

        AG-UI answers carry the request's ``threadId``, ``runId`` and state; UI
        message streams continue the request's last assistant message, if any;
        OpenAI-style chunks carry its ``model``. Each format keeps its own
        heartbeat default unless ``heartbeat`` is given.

        ``message_id`` names the assistant message a ``useChat`` client builds
        from the answer (the ``start`` frame's ``messageId``, a random one when
        not given), so the app can store the answer under the id the client
        keeps and sends back. An answer that continues a message keeps that
        message's id (``ChatRequest.continued_message_id``) instead: a new one
        would make ``useChat`` add a second message. The other formats ignore it.
        """
        request = self.request
        match request:
            case AssistantTransportRequest():
                return AssistantTransportResponse(stream, **options)
            case ChatRequest():
                return UIMessageStreamResponse(stream, message_id=request.continued_message_id or message_id, **options)
            case RunAgentInput():
                return AGUIResponse(
                    stream, thread_id=request.thread_id, run_id=request.run_id, state=request.state, **options
                )
            case ChatCompletionRequest():
                return OpenAIStreamResponse(stream, model=request.model, **options)
            case DataStreamRequest():
                return DataStreamResponse(stream, **options)


class _TopLevel(msgspec.Struct, rename="camel"):
    """The keys that tell the clients' bodies apart (present or not)."""

    commands: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    trigger: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    thread_id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    run_id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    model: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    messages: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_READ_AS: dict[WireFormat, tuple[type[ClientRequest], str]] = {
    "assistant-transport": (AssistantTransportRequest, "an assistant-ui assistant-transport request"),
    "ui-message-stream": (ChatRequest, "an AI SDK useChat request"),
    "ag-ui": (RunAgentInput, "an AG-UI RunAgentInput"),
    "openai": (ChatCompletionRequest, "an OpenAI chat-completions request"),
    "data-stream": (DataStreamRequest, "an assistant-ui data-stream request"),
}


def _format_of(keys: _TopLevel) -> WireFormat | None:
    if keys.commands is not msgspec.UNSET:
        return "assistant-transport"
    if keys.trigger is not msgspec.UNSET:
        return "ui-message-stream"
    if keys.thread_id is not msgspec.UNSET and keys.run_id is not msgspec.UNSET:
        return "ag-ui"
    if keys.model is not msgspec.UNSET:
        return "openai"
    if keys.messages is not msgspec.UNSET:
        return "data-stream"
    return None


async def read_any_chat_request(
    request: Request,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_values: int = DEFAULT_MAX_VALUES,
) -> AnyChatRequest:
    """Read the body of ``request``, recognise its client, and decode it into that client's struct.

    The limits and errors are those of
    :func:`~assistant_stream_ce.chat_request.read_chat_request`. A body that
    is none of the clients' shapes gets a 422 that lists them; one that is
    recognised but malformed gets a 422 naming the place and the shape it was
    read as. An OpenAI-style request must ask for a stream (``"stream": true``):
    the answer is always one.
    """
    body = await read_chat_request(
        request, msgspec.Raw, max_bytes=max_bytes, max_depth=max_depth, max_values=max_values
    )
    wire_format = _format_of(decode_body(body, _TopLevel))
    if wire_format is None:
        raise ChatRequestError(422, "unrecognised request body: expected one of " + "; ".join(ACCEPTED_SHAPES))
    request_type, read_as = _READ_AS[wire_format]
    decoded = decode_body(body, request_type, read_as=read_as)
    if isinstance(decoded, ChatCompletionRequest) and not decoded.stream:
        raise ChatRequestError(422, 'invalid request body: only streamed chat completions are served ("stream": true)')
    return AnyChatRequest(wire_format, decoded)
