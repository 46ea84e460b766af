"""One streaming endpoint per wire format, as a bare Starlette app (``fastapi_app`` has the same routes).

``POST /stream/{format}?scenario=...&run=...`` reads the body the format's
client sends (with :func:`read_chat_request`, limit ``MAX_BYTES``) and
streams a scenario of :mod:`scenarios` with the format's response class.
Query options: ``heartbeat`` and ``send_timeout`` (seconds), ``gap`` (the
idle scenario's silence), ``cancel_window`` (seconds, the run's). ``GET /events/{run}`` tells what the server saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from assistant_stream_ce import create_run
from assistant_stream_ce.chat_request import (
    AssistantTransportRequest,
    ChatRequest,
    DataStreamRequest,
    read_chat_request,
)
from assistant_stream_ce.serialization.ag_ui import AGUIResponse
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse
from assistant_stream_ce.serialization.assistant_transport import AssistantTransportResponse
from assistant_stream_ce.serialization.data_stream import DataStreamResponse
from assistant_stream_ce.serialization.openai_stream import OpenAIStreamResponse
from assistant_stream_ce.serialization.ui_message_stream import UIMessageStreamResponse

from . import scenarios

MAX_BYTES = 64 * 1024


class _Recorder(logging.Handler):
    """The library's log records become events of the run being served (no tracebacks on stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        scenarios.record("log", "log", level=record.levelname, message=record.getMessage())


_library_logger = logging.getLogger("assistant_stream_ce")
_library_logger.addHandler(_Recorder())
_library_logger.propagate = False


def _text_of_transport(body: AssistantTransportRequest) -> str:
    for command in body.commands:
        if command.type == "add-message":
            return "".join(part.text or "" for part in command.message.parts)
    return ""


def _text_of_data_stream(body: DataStreamRequest) -> str:
    if not body.messages:
        return ""
    content = body.messages[-1].content
    return content if isinstance(content, str) else "".join(part.text or "" for part in content)


def _text_of_chat(body: ChatRequest) -> str:
    return body.messages[-1].text if body.messages else ""


Respond = Callable[..., AssistantStreamResponse]

#: format -> (request body type, its user text, response class)
FORMATS: dict[str, tuple[type[Any], Callable[[Any], str], Respond]] = {
    "data-stream": (DataStreamRequest, _text_of_data_stream, DataStreamResponse),
    "assistant-transport": (AssistantTransportRequest, _text_of_transport, AssistantTransportResponse),
    "ui-message-stream": (ChatRequest, _text_of_chat, UIMessageStreamResponse),
    "openai": (ChatRequest, _text_of_chat, OpenAIStreamResponse),
    "ag-ui": (ChatRequest, _text_of_chat, AGUIResponse),
}


def _seconds(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    return None if value in (None, "", "none") else float(value)


async def stream(request: Request) -> Response:
    fmt = request.path_params["format"]
    if fmt not in FORMATS:
        return PlainTextResponse(f"unknown format {fmt}", status_code=404)
    body_type, text_of, respond = FORMATS[fmt]
    body = await read_chat_request(request, body_type, max_bytes=MAX_BYTES)
    query = request.query_params
    run = query["run"]
    callback = scenarios.make(query.get("scenario", "full"), run, text_of(body), _seconds(request, "gap") or 0.0)
    options: dict[str, Any] = {"heartbeat": _seconds(request, "heartbeat"), "on_finish": scenarios.on_finish(run)}
    send_timeout = _seconds(request, "send_timeout")
    if send_timeout is not None:
        options["send_timeout"] = send_timeout
    cancel_window = _seconds(request, "cancel_window")
    run_options = {} if cancel_window is None else {"cancel_window": cancel_window}
    return respond(create_run(callback, **run_options), **options)


async def events(request: Request) -> Response:
    return Response(scenarios.events_body(request.path_params["run"]), media_type="application/json")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


starlette_app = Starlette(
    routes=[
        Route("/stream/{format}", stream, methods=["POST"]),
        Route("/events/{run}", events),
        Route("/health", health),
    ]
)
