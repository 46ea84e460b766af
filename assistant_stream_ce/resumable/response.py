"""HTTP responses for resumable runs: start one, or resume one by id and cursor."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from .._run import OnFinish, RunOutcome
from ..assistant_stream_chunk import ErrorChunk
from ..create_run import RunController, create_run
from ..serialization.data_stream import DataStreamEncoder
from ..serialization.stream_encoder import StreamEncoder
from .context import Emit, ResumableStreamContext
from .errors import ResumableStreamError, parse_cursor, validate_stream_id

__all__ = [
    "RESUMABLE_STREAM_ID_HEADER",
    "create_resumable_assistant_stream_response",
    "create_resume_assistant_stream_response",
    "resume_cursor",
]

logger = logging.getLogger("assistant_stream_ce.resumable")

RESUMABLE_STREAM_ID_HEADER = "x-resumable-stream-id"


def _separator(encoder: StreamEncoder) -> bytes:
    return b"\n\n" if encoder.get_media_type().startswith("text/event-stream") else b"\n"


def _headers(encoder: StreamEncoder, extra: Mapping[str, str] | None, stream_id: str) -> dict[str, str]:
    merged = dict(encoder.get_headers())
    for key, value in (extra or {}).items():
        if key.lower() != RESUMABLE_STREAM_ID_HEADER:
            merged[key] = value
    merged[RESUMABLE_STREAM_ID_HEADER] = stream_id
    return merged


async def _relay(
    body: AsyncIterator[bytes],
    encoder: StreamEncoder,
    stream_id: str,
    on_hang_up: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """Frames from the store; if the store fails, a well-formed error ending instead of a cut."""
    ended = False
    try:
        async for frame in body:
            yield frame
        ended = True
    except Exception as exc:
        ended = True
        logger.error("resumable stream %s: reading failed: %s", stream_id, exc)
        writer = encoder.open()
        yield writer.encode(ErrorChunk(error=f"stream unavailable: {exc}")) + writer.finish("error")
    finally:
        with anyio.move_on_after(5, shield=True):
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
            if not ended and on_hang_up is not None:
                await on_hang_up()


async def _report(on_finish: OnFinish, outcome: RunOutcome, store_failure: Exception | None) -> None:
    if store_failure is not None and outcome.status != "error":
        outcome = RunOutcome("error", outcome.message, store_failure)
    try:
        result = on_finish(outcome)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("resumable run: on_finish raised")


def _run_source(
    callback: Callable[[RunController], Awaitable[None]],
    encoder: StreamEncoder,
    state: Any,
    on_finish: OnFinish | None,
) -> Callable[[Emit], Awaitable[None]]:
    async def source(emit: Emit) -> None:
        writer = encoder.open()
        status: Any = "completed"
        # Reported once the last frames are stored: the store failing (frames lost, lease
        # lost) makes the outcome an error, even when the run itself had completed.
        outcomes: list[RunOutcome] = []
        try:
            async with create_run(callback, state=state, on_finish=on_finish and outcomes.append) as chunks:
                try:
                    async for chunk in chunks:
                        frames = writer.encode(chunk)
                        if frames:
                            await emit(frames)
                except Exception:
                    status = "error"  # the run already emitted its error chunk
                    logger.exception("resumable run failed")
        except BaseException:
            status = "cancelled" if status == "completed" else status
            raise
        finally:
            with anyio.move_on_after(5, shield=True):
                try:
                    await emit(writer.finish(status))
                except Exception as exc:
                    logger.error("resumable run: could not store its last frames: %s", exc)
                if on_finish is not None and outcomes:
                    await _report(on_finish, outcomes[0], getattr(emit, "failure", None))

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
) -> Response:
    """Start the run as the producer of ``stream_id`` (if nobody is yet) and stream it from the start.

    The run keeps going when this client goes away (unless
    ``continue_without_client`` is false: then this client hanging up cancels
    it); a client resumes it with :func:`create_resume_assistant_stream_response`.
    The stream id is sent in the ``x-resumable-stream-id`` header.
    """
    encoder = encoder if encoder is not None else DataStreamEncoder()
    await context.start(stream_id, _run_source(callback, encoder, state, on_finish), separator=_separator(encoder))

    async def cancel_run() -> None:
        try:
            await context.cancel(stream_id)
        except ResumableStreamError as err:
            logger.warning("resumable stream %s: could not cancel after the client left: %s", stream_id, err)

    return StreamingResponse(
        _relay(context.read(stream_id), encoder, stream_id, None if continue_without_client else cancel_run),
        media_type=encoder.get_media_type(),
        headers=_headers(encoder, headers, stream_id),
    )


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
) -> Response:
    """Replay ``stream_id`` after ``cursor`` (frames the client already has), then follow it live.

    400 for a malformed id or cursor, 404 (or ``missing_response()``) when the
    stream does not exist or has expired.
    """
    encoder = encoder if encoder is not None else DataStreamEncoder()
    try:
        validate_stream_id(stream_id)
        parse_cursor(cursor)
    except ResumableStreamError as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    body = await context.resume(stream_id, cursor or "")
    if body is None:
        if missing_response is not None:
            return missing_response()
        return JSONResponse({"error": "stream not found or expired"}, status_code=404)
    return StreamingResponse(
        _relay(body, encoder, stream_id),
        media_type=encoder.get_media_type(),
        headers=_headers(encoder, headers, stream_id),
    )
