"""``AssistantStreamResponse``: a Starlette response (and ASGI app) that owns the run it streams.

:func:`streaming_headers`, :func:`response_settings` and :func:`serve` are
what every streaming response of this package is made of (the resumable
responses too): one set of headers, one set of options, one exchange, which
sends a body: a delivery of a run or an async iterable of chunks, or a
resumable stream's stored frames.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from .. import _detached
from .._run import DEFAULT_GRACE_PERIOD, ErrorMessage, OnFinish, default_error_message, positive_seconds
from ..assistant_stream_chunk import AssistantStreamChunk
from ._delivery import Body, Delivery, as_source
from ._exchange import Exchange, Settings
from ._feed import DetachedFeed, Put
from .heartbeat import DEFAULT_HEARTBEAT_INTERVAL, HeartbeatOption, resolve_heartbeat_interval
from .stream_encoder import StreamEncoder, split_frames, writes_frames

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "DEFAULT_SEND_TIMEOUT", "AssistantStreamResponse"]

DEFAULT_SEND_TIMEOUT = 30.0

_STREAMING_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def streaming_headers(encoder: StreamEncoder, headers: Mapping[str, str] | None) -> dict[str, str]:
    """No caching and no proxy buffering, then the format's headers, then ``headers``; names in lower case."""
    get_headers = getattr(encoder, "get_headers", None)  # 0.0.36-style encoders have none
    merged = {**_STREAMING_HEADERS}
    for extra in (get_headers() if get_headers is not None else {}, headers or {}):
        merged.update((name.lower(), value) for name, value in extra.items())
    return merged


def response_settings(
    heartbeat: HeartbeatOption,
    send_timeout: float,
    grace_period: float,
    on_finish: OnFinish | None,
    error_message: ErrorMessage = default_error_message,
) -> Settings:
    """A streaming response's options, checked (a ValueError names the bad one)."""
    if not callable(error_message):
        raise TypeError(f"error_message must be a function of the exception, not {error_message!r}")
    return Settings(
        heartbeat=resolve_heartbeat_interval(heartbeat),
        send_timeout=positive_seconds(send_timeout, "send_timeout"),
        grace_period=positive_seconds(grace_period, "grace_period"),
        on_finish=on_finish,
        error_message=error_message,
    )


async def serve(
    response: Response, body: Body, encoder: StreamEncoder, settings: Settings, receive: Receive, send: Send
) -> None:
    """Stream ``body`` as ``response`` (its status and headers) to the client; return when all of it is over."""
    start = {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    with _detached.named_backend():
        await Exchange(body, encoder, start, settings, receive, send).run()


class AssistantStreamResponse(Response):
    """Stream ``stream`` to the client through ``stream_encoder``; usable from FastAPI and Starlette
    routes, or mounted as an ASGI app.

    The run lives in this response's ``__call__``, which returns once it has ended: pass
    ``create_run(cb)`` (consumed in its structured form) or any async iterable
    of chunks (which then owns its outcome as a run does). When the client
    disconnects, a send fails, or a send takes longer than ``send_timeout``
    seconds (a client that stopped reading), the run is cancelled and its
    cleanup finishes before the response returns.

    ``heartbeat``: seconds of silence after which the encoder's keepalive (an
    SSE comment, a blank data-stream line) is written; ``True`` for the
    default of 15 s, ``None``, ``False`` or ``0`` for none. ``on_finish`` is
    handed to the stream's owner (the run, whose own ``on_finish`` gets the
    same outcome), which calls it once with a
    :class:`~assistant_stream_ce.RunOutcome`: the status (``"completed"`` once
    the last frame was sent, ``"error"`` if the stream raised, ``"cancelled"``
    if the client went away first) and the message as written to the client.
    ``grace_period`` bounds ``on_finish`` and the stream's own cleanup. If the
    stream raises, the client gets the format's error frame and then its
    finish frames, and the exception is logged to the
    ``assistant_stream_ce`` logger. ``error_message`` words that error for a
    stream that is not a run (a run is worded by its own ``error_message``):
    by default the exception's message, never a traceback.

    :attr:`body_iterator` gives the body as a plain async iterator, for code
    that reads a response without serving it.
    """

    def __init__(
        self,
        stream: AsyncIterable[AssistantStreamChunk],
        stream_encoder: StreamEncoder,
        heartbeat: HeartbeatOption = DEFAULT_HEARTBEAT_INTERVAL,
        *,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        on_finish: OnFinish | None = None,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        error_message: ErrorMessage = default_error_message,
    ) -> None:
        self.stream = stream
        self.stream_encoder = stream_encoder
        self.status_code = status_code
        self.media_type = stream_encoder.get_media_type()
        self.background = None
        self.init_headers(streaming_headers(stream_encoder, headers))
        self._settings = response_settings(heartbeat, send_timeout, grace_period, on_finish, error_message)
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._started:
            raise RuntimeError("an AssistantStreamResponse streams its run once; create one per request")
        self._started = True
        settings = self._settings
        body = Delivery(
            as_source(self.stream, settings.grace_period),
            self.stream_encoder,
            on_finish=settings.on_finish,
            error_message=settings.error_message,
            grace_period=settings.grace_period,
        )
        await serve(self, body, self.stream_encoder, settings, receive, send)

    @property
    def body_iterator(self) -> AsyncIterator[str]:
        """The body, one frame per item (keepalives included), as a client reading it would get it.

        For code written against assistant-stream 0.0.36, whose responses were
        Starlette ``StreamingResponse`` objects: ``async for frame in
        response.body_iterator``. The response is served exactly as over HTTP
        (same run, heartbeats, ``send_timeout``, ``on_finish``) to an in-memory
        client, from a task that the iterator owns; ``aclose()`` on it, or
        leaving it, disconnects that client. Like serving it, this consumes the
        response once.
        """
        return DetachedFeed(self._serve_in_memory, self._settings.grace_period)

    async def _serve_in_memory(self, put: Put[str]) -> None:
        encoder = self.stream_encoder
        split = writes_frames(encoder)  # an encode_stream-only encoder: one item per string it yields

        async def receive() -> Message:
            await anyio.Event().wait()  # this client leaves only by stopping its reads, which cancels the exchange
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            body = message.get("body", b"") if message["type"] == "http.response.body" else b""
            for frame in split_frames(body, encoder) if split else [body.decode()] if body else []:
                await put(frame)

        await self({"type": "http", "asgi": {"version": "3.0"}}, receive, send)
