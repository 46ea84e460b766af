"""HTTP responses for resumable runs: start one, resume one by id and cursor, or cancel one.

Status codes: 400 for a malformed id (start, cancel) or cursor, 404 for a
stream that does not exist (and, as in 0.0.36, for a malformed id on resume,
under which nothing can exist), 503 when the store fails. Error texts go
through ``error_message``, the run's hook: a run's error is its message by
default; a store failure reaches the hook as a ResumableStreamError that says
"stream unavailable" (the real one is its ``__cause__``, and is logged), so
internal addresses never reach the client unless the hook sends them.

The first client and a client that resumes are served as a live response is
(:class:`ResumableStreamResponse`): the stored frames go through the same
exchange, with keepalives in a silence, ``send_timeout`` for a client that
stops reading, and the same headers, plus ``x-resumable-stream-id``. The
producer's run reaches the store through the one delivery loop a live
response uses (:mod:`~assistant_stream_ce.serialization._delivery`): the same
frames, error frame and finish frames (those of a cancelled run too, so that
readers end), and the run reports its outcome once its end is stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .._run import (
    DEFAULT_GRACE_PERIOD,
    ErrorMessage,
    OnFinish,
    beyond_cancellation,
    close_quietly,
    default_error_message,
    error_text,
)
from ..create_run import RunController, create_run
from ..serialization._delivery import Delivery, EncodedFrames, deliver, error_ending
from ..serialization.assistant_stream_response import (
    DEFAULT_SEND_TIMEOUT,
    response_settings,
    serve,
    streaming_headers,
)
from ..serialization.data_stream import DataStreamEncoder
from ..serialization.heartbeat import DEFAULT_HEARTBEAT_INTERVAL, HeartbeatOption
from ..serialization.stream_encoder import StreamEncoder
from .context import Emit, ResumableStreamContext
from .errors import ResumableStreamError, parse_cursor, validate_stream_id

__all__ = [
    "RESUMABLE_STREAM_ID_HEADER",
    "ResumableStreamResponse",
    "create_cancel_assistant_stream_response",
    "create_resumable_assistant_stream_response",
    "create_resume_assistant_stream_response",
    "resume_cursor",
]

logger = logging.getLogger("assistant_stream_ce.resumable")

RESUMABLE_STREAM_ID_HEADER = "x-resumable-stream-id"

_NOT_FOUND = "stream not found or expired"


def _store_failed(exc: BaseException, stream_id: str, error_message: ErrorMessage) -> str:
    """Log a store failure; the client's text is the hook's, for the store's own error.

    A ``ResumableStreamError`` of code ``"lost"`` (frames lost, the producer's
    lease lapsed) says nothing internal and goes to the hook as it is; any
    other failure (a connection error naming an address) as an error that says
    only "stream unavailable".
    """
    logger.error("resumable stream %s: the store failed: %s", stream_id, exc, exc_info=exc)
    if isinstance(exc, ResumableStreamError) and exc.code == "lost":
        unavailable = exc
    else:
        unavailable = ResumableStreamError("unavailable", "stream unavailable")
        unavailable.__cause__ = exc
    return error_text(error_message, unavailable)


def _error(message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def _separator(encoder: StreamEncoder) -> bytes:
    return b"\n\n" if encoder.get_media_type().startswith("text/event-stream") else b"\n"


async def _relay(
    body: AsyncIterator[bytes], encoder: StreamEncoder, stream_id: str, error_message: ErrorMessage, cursor: int = 0
) -> AsyncIterator[bytes]:
    """Frames from the store after ``cursor``; if the store fails, a well-formed error ending instead of a cut.

    An SSE frame gets an ``id:`` line, the cursor after it, so a client that sends the last id
    it saw back as ``Last-Event-ID`` resumes exactly after it.
    """
    event_ids = _separator(encoder) == b"\n\n"
    try:
        async for frame in body:
            cursor += 1
            yield b"id: %d\n%s" % (cursor, frame) if event_ids else frame
    except Exception as exc:
        yield error_ending(encoder, _store_failed(exc, stream_id, error_message))
    finally:
        await close_quietly(body, DEFAULT_GRACE_PERIOD)


class ResumableStreamResponse(StreamingResponse):
    """A resumable stream's frames from the store, served as a live response of this package is.

    Keepalives in a silence (``heartbeat``), ``send_timeout`` for a client
    that stops reading, the live response's headers plus
    ``x-resumable-stream-id``, and one disconnect watcher. ``on_hang_up`` is
    awaited if the client goes before the stream ends. A Starlette
    ``StreamingResponse``, as 0.0.36's were: :attr:`body_iterator` gives the
    stored frames (bytes; SSE ones with their ``id:`` line), for code that reads a response
    without serving it.
    """

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        encoder: StreamEncoder,
        stream_id: str,
        *,
        headers: Mapping[str, str] | None = None,
        heartbeat: HeartbeatOption = DEFAULT_HEARTBEAT_INTERVAL,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        on_hang_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        merged = streaming_headers(encoder, headers)
        merged[RESUMABLE_STREAM_ID_HEADER] = stream_id  # names are in lower case: this one replaces any other
        super().__init__(frames, media_type=encoder.get_media_type(), headers=merged)
        self.stream_encoder = encoder
        self._settings = response_settings(heartbeat, send_timeout, DEFAULT_GRACE_PERIOD, None)
        self._on_hang_up = on_hang_up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        frames = EncodedFrames(self.body_iterator, self._on_hang_up)  # type: ignore[arg-type]
        await serve(self, frames, self.stream_encoder, self._settings, receive, send)


def _run_source(
    callback: Callable[[RunController], Awaitable[None]],
    encoder: StreamEncoder,
    state: Any,
    on_finish: OnFinish | None,
    error_message: ErrorMessage,
) -> Callable[[Emit], Awaitable[None]]:
    async def source(emit: Emit) -> None:
        run = create_run(callback, state=state, on_finish=on_finish, error_message=error_message)
        delivery = Delivery(run, encoder, error_message=error_message)

        async def store(frames: bytes) -> bool:
            """False once a write failed: the store failing fails the stream, never ends it early."""
            try:
                await emit(frames)
            except Exception:
                return False
            return True

        stored = True
        try:
            stored = await deliver(delivery, store)
        finally:
            # The end goes to the store however the run ended (a cancelled one too), so that readers end;
            # the outcome is reported once it is stored. A store failure (frames lost, lease lost) makes it an error.
            with anyio.move_on_after(DEFAULT_GRACE_PERIOD, shield=True):
                delivered = stored and getattr(emit, "failure", None) is None and await store(delivery.last_frames())
                try:
                    await delivery.close(delivered, getattr(emit, "failure", None))
                except BaseException as exc:
                    if isinstance(exc, Exception) or beyond_cancellation(exc) is None:
                        raise
                    # The run ended by a BaseException (SystemExit, an application's own): the stored frames
                    # end with its error already, and the delivery logged it. Nobody awaits a producer.

    return source


async def create_resumable_assistant_stream_response(
    *,
    context: ResumableStreamContext,
    stream_id: str,
    callback: Callable[[RunController], Awaitable[None]],
    encoder: StreamEncoder | None = None,
    headers: Mapping[str, str] | None = None,
    state: Any = None,
    on_finish: OnFinish | None = None,
    continue_without_client: bool = True,
    error_message: ErrorMessage = default_error_message,
    heartbeat: HeartbeatOption = DEFAULT_HEARTBEAT_INTERVAL,
    send_timeout: float = DEFAULT_SEND_TIMEOUT,
) -> Response:
    """Start the run as the producer of ``stream_id`` (if nobody is yet) and stream it from the start.

    The run keeps going when this client goes away (unless
    ``continue_without_client`` is false: then this client hanging up, or
    being dropped after ``send_timeout``, cancels it); a client resumes it
    with :func:`create_resume_assistant_stream_response`. The stream id is
    sent in the ``x-resumable-stream-id`` header. A malformed id answers 400;
    a store failure 503. ``error_message`` turns the run's exception, or a
    store failure, into the text the client sees. ``heartbeat`` and
    ``send_timeout`` are those of a live response (a keepalive after 15 s of
    silence by default, for every format).
    """
    encoder = encoder if encoder is not None else DataStreamEncoder()
    try:
        validate_stream_id(stream_id)
    except ResumableStreamError as err:
        return _error(str(err), 400)

    async def cancel_run() -> None:
        try:
            await context.cancel(stream_id)
        except ResumableStreamError as err:
            logger.warning("resumable stream %s: could not cancel after the client left: %s", stream_id, err)

    # Made first, so that a bad option fails before the run starts (reading begins when it is served).
    response = ResumableStreamResponse(
        _relay(context.read(stream_id), encoder, stream_id, error_message),
        encoder,
        stream_id,
        headers=headers,
        heartbeat=heartbeat,
        send_timeout=send_timeout,
        on_hang_up=None if continue_without_client else cancel_run,
    )
    try:
        await context.start(
            stream_id, _run_source(callback, encoder, state, on_finish, error_message), separator=_separator(encoder)
        )
    except Exception as exc:
        return _error(_store_failed(exc, stream_id, error_message), 503)
    return response


def resume_cursor(request: Request) -> str | None:
    """The client's position: the ``cursor`` query parameter, or the ``Last-Event-ID`` header."""
    return request.query_params.get("cursor") or request.headers.get("last-event-id")


async def create_resume_assistant_stream_response(
    *,
    context: ResumableStreamContext,
    stream_id: str,
    encoder: StreamEncoder | None = None,
    headers: Mapping[str, str] | None = None,
    missing_response: Callable[[], Response] | None = None,
    cursor: str | None = None,
    error_message: ErrorMessage = default_error_message,
    heartbeat: HeartbeatOption = DEFAULT_HEARTBEAT_INTERVAL,
    send_timeout: float = DEFAULT_SEND_TIMEOUT,
) -> Response:
    """Replay ``stream_id`` after ``cursor`` (frames the client already has), then follow it live.

    404 (or ``missing_response()``) when the stream does not exist, has
    expired or has a malformed id; 400 for a malformed cursor; 503 when the
    store fails (its text from ``error_message``). ``heartbeat`` and
    ``send_timeout`` are those of a live response.
    """
    encoder = encoder if encoder is not None else DataStreamEncoder()
    try:
        parse_cursor(cursor)
    except ResumableStreamError as err:
        return _error(str(err), 400)
    try:
        validate_stream_id(stream_id)
        body = await context.resume(stream_id, cursor or "")
    except ResumableStreamError as err:
        if err.code != "invalid-id":
            return _error(_store_failed(err, stream_id, error_message), 503)
        body = None
    except Exception as exc:
        return _error(_store_failed(exc, stream_id, error_message), 503)
    if body is None:
        return missing_response() if missing_response is not None else _error(_NOT_FOUND, 404)
    return ResumableStreamResponse(
        _relay(body, encoder, stream_id, error_message, parse_cursor(cursor)),
        encoder,
        stream_id,
        headers=headers,
        heartbeat=heartbeat,
        send_timeout=send_timeout,
    )


async def create_cancel_assistant_stream_response(
    *,
    context: ResumableStreamContext,
    stream_id: str,
    error_message: ErrorMessage = default_error_message,
) -> Response:
    """Ask the producer of ``stream_id`` to stop, wherever it runs: 204.

    400 for a malformed id, 404 when the stream does not exist or has expired,
    503 when the store fails or cannot carry cancel requests.
    """
    try:
        await context.cancel(stream_id)
    except ResumableStreamError as err:
        if err.code == "invalid-id":
            return _error(str(err), 400)
        if err.code == "missing":
            return _error(_NOT_FOUND, 404)
        return _error(_store_failed(err, stream_id, error_message), 503)
    except Exception as exc:
        return _error(_store_failed(exc, stream_id, error_message), 503)
    return Response(status_code=204)
