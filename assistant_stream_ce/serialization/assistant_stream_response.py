"""``AssistantStreamResponse``: a Starlette response (and ASGI app) that owns the run it streams."""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._run import OnFinish
from ..assistant_stream_chunk import AssistantStreamChunk
from ._exchange import Exchange, Settings, positive_seconds, resolve_heartbeat
from .stream_encoder import StreamEncoder

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "DEFAULT_SEND_TIMEOUT", "AssistantStreamResponse"]

DEFAULT_HEARTBEAT_INTERVAL = 15.0
DEFAULT_SEND_TIMEOUT = 30.0

_STREAMING_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class AssistantStreamResponse(Response):
    """Stream ``stream`` to the client through ``stream_encoder``; usable from FastAPI and Starlette
    routes, or mounted as an ASGI app.

    The run lives in the task group of this response's ``__call__``: pass
    ``create_run(cb)`` (consumed in its structured form) or any async iterable
    of chunks. When the client disconnects, a send fails, or a send takes longer
    than ``send_timeout`` seconds (a client that stopped reading), the run is
    cancelled and its cleanup finishes before the response returns.

    ``heartbeat``: seconds of silence after which the encoder's keepalive (an
    SSE comment, a blank data-stream line) is written; ``True`` for the
    default of 15 s, ``None``, ``False`` or ``0`` for none. ``on_finish`` is
    called once with a :class:`~assistant_stream_ce.RunOutcome`: the status
    (``"completed"`` once the last frame was sent, ``"error"`` if the stream
    raised, ``"cancelled"`` if the client went away first) and the message as
    written to the client. ``grace_period`` bounds ``on_finish`` and the
    stream's own cleanup. If the stream raises, the client gets the format's
    error frame and then its finish frames, and the exception is logged to the
    ``assistant_stream_ce`` logger.
    """

    def __init__(
        self,
        stream: AsyncIterable[AssistantStreamChunk],
        stream_encoder: StreamEncoder,
        *,
        heartbeat: float | bool | None = DEFAULT_HEARTBEAT_INTERVAL,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        on_finish: OnFinish | None = None,
        grace_period: float = 5.0,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.stream = stream
        self.stream_encoder = stream_encoder
        self.status_code = status_code
        self.media_type = stream_encoder.get_media_type()
        self.background = None
        get_headers = getattr(stream_encoder, "get_headers", None)  # 0.0.36-style encoders have none
        merged = {**_STREAMING_HEADERS}
        for extra in (get_headers() if get_headers is not None else {}, headers or {}):
            merged.update((name.lower(), value) for name, value in extra.items())
        self.init_headers(merged)
        self._settings = Settings(
            heartbeat=resolve_heartbeat(heartbeat, DEFAULT_HEARTBEAT_INTERVAL),
            send_timeout=positive_seconds(send_timeout, "send_timeout"),
            grace_period=positive_seconds(grace_period, "grace_period"),
            on_finish=on_finish,
        )
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._started:
            raise RuntimeError("an AssistantStreamResponse streams its run once; create one per request")
        self._started = True
        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        await Exchange(self.stream, self.stream_encoder, start, self._settings, receive, send).run()
