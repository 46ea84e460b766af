"""One HTTP exchange of a streaming response: the run, the client, and the wire between them.

Two tasks share one task group that lives in the response's ``__call__``
(a :class:`Run`'s producer joins them there, so that a request opens no
task group of the run's own):

- the writer, the response's own task, consumes the chunk stream (a
  :class:`Run` in its structured form, or any async iterable), encodes each
  chunk and sends its frames, so that it pulls the next chunk only once the
  previous frame left (the run's merger coalesces meanwhile); or it sends
  :class:`EncodedFrames` (a resumable stream's stored frames) as they are;
- the attendant, the only caller of ``receive``, waits for
  ``http.disconnect``; whenever something is due it stops waiting, writes the
  encoder's keepalive into a silence of ``heartbeat`` seconds or notices a
  send that has taken ``send_timeout``, and waits again. One task for both
  keeps the cost per request down (a task, a cancel scope and a cancellation
  fewer); servers leave ``receive`` ready to be called again after a
  cancellation, which is how Starlette's own responses stop it too.

The client is gone when the attendant sees a disconnect, when a send fails,
or when a send takes longer than ``send_timeout``: the task group is
cancelled, which cancels the run inside it. Some servers shield their socket
writes from cancellation (hypercorn's trio worker): the attendant then also
cancels the run itself and reports its outcome, while the writer waits for
its send.

The last frame, which ends the body, is sent once the attendant has stopped,
so no disconnect can interrupt it: over HTTP/1.0 (no chunked encoding) the
body ends when the server closes the connection, and hypercorn's trio worker
closes it inside that very send (a cancellation there leaves it open).

A request cancelled from outside (a server ends the requests still open at
the end of its graceful timeout; a shutdown's deadline does the same) still
ends its body well-formed: the format's closing frames for a cancelled run
are sent (after the response's start if it had not gone yet), shielded and
bounded by ``send_timeout``, then the cancellation goes on. A resumable
stream's frames are left cut, so that its client resumes them.

The outcome goes to ``on_finish`` as soon as it is known: after the last
frame (ending the HTTP body) was sent, which happens once the task group has
ended so that no disconnect can interrupt it, or, when the client is gone, as
soon as the run has been cancelled and cleaned up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.abc
from starlette.types import Message, Receive, Send

from .. import _telemetry
from .._run import (
    ErrorMessage,
    FinishStatus,
    OnFinish,
    call_on_finish,
    default_error_message,
    error_text,
    positive_seconds,
)
from ..assistant_stream_chunk import AssistantStreamChunk, ErrorChunk
from ..create_run import Run, RunOutcome
from ..message import MessageBuilder
from .stream_encoder import FrameWriter, StreamEncoder

logger = logging.getLogger("assistant_stream_ce")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Settings:
    """A response's options, resolved once."""

    heartbeat: float | None
    send_timeout: float
    grace_period: float
    on_finish: OnFinish | None
    #: Words the error of a stream that is not a run (a run's own hook words a run's errors).
    error_message: ErrorMessage = default_error_message


@dataclass(frozen=True)
class EncodedFrames:
    """A body already encoded (a resumable stream's stored frames): each item is sent as it is.

    ``on_hang_up`` is awaited once if the client goes before the frames end
    (to cancel what produces them), shielded and bounded by the grace period.
    """

    frames: AsyncIterable[bytes]
    on_hang_up: Callable[[], Awaitable[None]] | None = None


def _open_writer(encoder: StreamEncoder) -> FrameWriter | None:
    """The encoder's frame writer, or None for an encoder that only has ``encode_stream`` (0.0.36 style)."""
    open_writer = getattr(encoder, "open", None)
    if open_writer is None:
        return None
    try:
        writer: FrameWriter = open_writer()
    except NotImplementedError:
        return None
    return writer


def _body(body: bytes) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": True}


class Exchange:
    """Streams one response to one client; ``await run()`` returns when all of it is over."""

    def __init__(
        self,
        stream: AsyncIterable[AssistantStreamChunk] | EncodedFrames,
        encoder: StreamEncoder,
        start: Message,
        settings: Settings,
        receive: Receive,
        send: Send,
    ) -> None:
        self._stream = stream
        self._encoder = encoder
        self._start = start
        self._settings = settings
        self._receive = receive
        self._send_asgi = send
        token = encoder.get_keepalive_token() if settings.heartbeat is not None else None
        self._keepalive = token.encode() if token else None
        self._builder: MessageBuilder | None = None
        if settings.on_finish is not None:
            self._builder = MessageBuilder(stream.state if isinstance(stream, Run) else None)
        self._tg: anyio.abc.TaskGroup | None = None
        # Cancelled once the body is written. The attendant ends inside this scope rather than
        # by cancelling the task group: a task ended by cancellation leaves a reference cycle
        # behind (exception, traceback, frames) for the garbage collector.
        self._attending = anyio.CancelScope()
        # The writer and the attendant's keepalives take turns at ``send``: a semaphore rather
        # than a lock, which would look its owner up twice a frame (each turn ends where it began).
        self._send_turn = anyio.Semaphore(1, fast_acquire=True)
        self._sending = False
        self._last_send = 0.0  # when the latest send started
        self._tail: tuple[bytes, Sequence[AssistantStreamChunk]] | None = None
        self._writer: FrameWriter | None = None
        self._start_sent = False
        self._error: BaseException | None = None
        self._gone = False
        self._delivered = False
        self._reported = False
        self._hung_up = False

    async def run(self) -> None:
        self._last_send = anyio.current_time()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._attend)
                await self._write_stream()
                self._attending.cancel()
            if self._tail is not None and not self._gone and await self._send_last(self._tail[0]):
                self._delivered = True
                self._record(self._tail[1])
        except anyio.get_cancelled_exc_class():
            # Only a cancellation from outside gets here: the task group absorbs the exchange's own.
            await self._end_cancelled()
            raise
        finally:
            await self._report()

    # -- the two tasks ----------------------------------------------------------

    async def _attend(self) -> None:
        with self._attending:
            while (due := await self._keep_time()) is not None:
                with anyio.CancelScope(deadline=due):
                    try:
                        while (await self._receive())["type"] != "http.disconnect":
                            pass  # request body the route did not read: not ours to keep
                    except Exception as exc:  # a wrapped receive may raise instead
                        logger.debug("assistant_stream_ce: receive failed, the client is gone: %r", exc)
                    self._client_gone()
                    return

    async def _write_stream(self) -> None:
        try:
            if isinstance(self._stream, EncodedFrames):
                await self._write_encoded(self._stream)
            elif (writer := _open_writer(self._encoder)) is None:
                await self._write_legacy()
            else:
                await self._write_frames(writer)
        finally:
            if self._gone:  # the run is over and nothing more will be sent: report now
                await self._report()

    async def _keep_time(self) -> float | None:
        """Do what is due now: the time of the next duty, or None once a stuck client was dropped."""
        timeout = self._settings.send_timeout
        heartbeat = self._settings.heartbeat if self._keepalive else None  # no keepalive token: no heartbeats
        # Wait at most a heartbeat, and at most one send_timeout: a send that starts
        # later is stuck one send_timeout after it started at the earliest.
        nap = timeout if heartbeat is None else min(heartbeat, timeout)
        while True:
            now = anyio.current_time()
            if self._sending:
                if now >= self._last_send + timeout:
                    await self._drop_stuck_client()
                    return None
                return min(self._last_send + timeout, now + nap)
            if heartbeat is None or now < self._last_send + heartbeat:
                return now + nap if heartbeat is None else min(self._last_send + heartbeat, now + nap)
            assert self._keepalive is not None
            with anyio.move_on_after(timeout) as waited:
                await self._write(_body(self._keepalive))
            if waited.cancelled_caught:
                await self._drop_stuck_client()
                return None

    # -- writing ------------------------------------------------------------------

    async def _write_frames(self, writer: FrameWriter) -> None:
        self._writer = writer  # for the closing frames, should the request be cancelled from outside
        last_chunk: AssistantStreamChunk | None = None

        async def pump(chunks: AsyncIterable[AssistantStreamChunk]) -> None:
            nonlocal last_chunk
            if not await self._write_start():
                return
            async for chunk in chunks:
                body = writer.encode(chunk)
                if body and not await self._write(_body(body)):
                    return
                self._record((chunk,))
                last_chunk = chunk

        tail: tuple[AssistantStreamChunk, ...] = ()
        try:
            await self._pump_stream(pump)
        except Exception as exc:
            self._failed(exc)
            if not isinstance(last_chunk, ErrorChunk):
                tail = (ErrorChunk(error=error_text(self._settings.error_message, exc)),)
        body = b"".join(writer.encode(chunk) for chunk in tail)
        self._tail = (body + writer.finish("error" if self._error is not None else "completed"), tail)

    async def _write_legacy(self) -> None:
        """An encoder with only ``encode_stream``: it writes the error and end frames itself."""
        taken: list[AssistantStreamChunk] = []

        async def observed(chunks: AsyncIterable[AssistantStreamChunk]) -> AsyncIterator[AssistantStreamChunk]:
            try:
                async for chunk in chunks:
                    taken.append(chunk)
                    yield chunk
            except Exception as exc:
                self._error = exc
                raise

        def sent() -> None:
            self._record(taken)
            taken.clear()

        async def pump(chunks: AsyncIterable[AssistantStreamChunk]) -> None:
            encoded = self._encoder.encode_stream(observed(chunks))
            await self._through(encoded, lambda texts: self._send_each(texts, sent))

        try:
            await self._pump_stream(pump)
        except Exception as exc:  # the encoder let the stream's exception through
            self._failed(exc)
        self._tail = (b"", tuple(taken))

    async def _write_encoded(self, source: EncodedFrames) -> None:
        """Frames encoded elsewhere: they end the stream themselves (a failure is written by their source)."""
        ended = False
        try:
            ended = await self._through(source.frames, self._send_each)
        except Exception as exc:
            self._failed(exc)
        finally:
            if not ended and self._gone:
                await self._hang_up()
        self._tail = (b"", ())

    async def _send_each(self, frames: AsyncIterator[bytes | str], sent: Callable[[], None] | None = None) -> bool:
        """Send the response's start, then each encoded frame (``sent()`` after each); False if the client went."""
        if not await self._write_start():
            return False
        async for frame in frames:
            if frame and not await self._write(_body(frame if isinstance(frame, bytes) else frame.encode())):
                return False
            if sent is not None:
                sent()
        return True

    async def _pump_stream(self, pump: Callable[[AsyncIterable[AssistantStreamChunk]], Awaitable[None]]) -> None:
        """``await pump(chunks)`` over the stream, which is closed (a run: cancelled) afterwards."""
        assert not isinstance(self._stream, EncodedFrames)
        if isinstance(self._stream, Run):
            assert self._tg is not None
            run = self._stream
            run._start_in(self._tg)  # the run's producer joins the response's task group
            try:
                await pump(run)
            finally:
                await run.aclose()  # cancels what still runs, waits for its cleanup
                if run._core.error is not None and not run._error_raised:
                    # The run failed but the client left before the error reached the writer.
                    self._failed(run._core.error)
        else:
            await self._through(self._stream, pump)

    async def _through(self, items: AsyncIterable[T], consume: Callable[[AsyncIterator[T]], Awaitable[R]]) -> R:
        """``await consume(iterator)`` over ``items``, which is closed afterwards."""
        iterator = aiter(items)
        try:
            return await consume(iterator)
        finally:
            await self._aclose(iterator)

    async def _write_start(self) -> bool:
        self._start_sent = await self._write(self._start)
        return self._start_sent

    async def _write(self, message: Message) -> bool:
        """Send ``message``; False (and the run cancelled) if the client is gone."""
        turn = self._send_turn
        try:
            turn.acquire_nowait()
        except anyio.WouldBlock:
            # A keepalive is being sent: wait for it, but not longer than a send may take.
            with anyio.move_on_after(self._settings.send_timeout) as waited:
                await turn.acquire()
            if waited.cancelled_caught:
                self._stuck()
                return False
        try:
            self._sending = True
            self._last_send = anyio.current_time()
            return await self._send_or_gone(message)
        finally:
            self._sending = False
            turn.release()

    async def _send_last(self, body: bytes) -> bool:
        """Send the frame that ends the body; False if the client is gone or stuck."""
        with anyio.move_on_after(self._settings.send_timeout):
            return await self._send_or_gone({"type": "http.response.body", "body": body, "more_body": False})
        self._stuck()  # reached only when the send took send_timeout
        return False

    async def _send_or_gone(self, message: Message) -> bool:
        """The server's ``send``; False (and the run cancelled) if it reports the client gone."""
        try:
            await self._send_asgi(message)
        except Exception as exc:  # the server reports a closed connection in its own way
            logger.debug("assistant_stream_ce: send failed, the client is gone: %r", exc)
            self._client_gone()
            return False
        return True

    async def _end_cancelled(self) -> None:
        """End the body of a request cancelled from outside with the closing frames of a cancelled run.

        Not a resumable stream's frames: its run may go on elsewhere, and a client resumes one that was cut.
        """
        if self._gone or self._delivered or isinstance(self._stream, EncodedFrames):
            return
        if self._tail is not None:  # the stream had ended: its last frame was being sent
            body = self._tail[0]
        else:
            body = b"" if self._writer is None else self._writer.finish("cancelled")
        with anyio.move_on_after(self._settings.send_timeout, shield=True):
            if self._start_sent or await self._send_or_gone(self._start):
                await self._send_or_gone({"type": "http.response.body", "body": body, "more_body": False})

    # -- the client's end ---------------------------------------------------------

    async def _drop_stuck_client(self) -> None:
        """A send has taken ``send_timeout``: cancel, and end the run even if the server shields that send."""
        self._stuck()
        if isinstance(self._stream, Run):
            await self._stream.aclose()  # shielded, bounded by the run's grace period
            await self._report()
        elif isinstance(self._stream, EncodedFrames):
            await self._hang_up()

    async def _hang_up(self) -> None:
        """Tell the source of encoded frames, once, that the client went before they ended."""
        assert isinstance(self._stream, EncodedFrames)
        on_hang_up = self._stream.on_hang_up
        if on_hang_up is None or self._hung_up:
            return
        self._hung_up = True
        with anyio.move_on_after(self._settings.grace_period, shield=True):
            await on_hang_up()

    def _stuck(self) -> None:
        logger.info("assistant_stream_ce: the client read nothing for %ss; dropping it", self._settings.send_timeout)
        self._client_gone("send_timeout")

    def _client_gone(self, why: str = "disconnect") -> None:
        if not self._gone and isinstance(self._stream, Run):
            _telemetry.add_event(self._stream._core.span, why)  # on the run's span
        self._gone = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def _failed(self, exc: BaseException) -> None:
        self._error = self._error or exc
        logger.error("assistant_stream_ce: the stream failed; ending the response with an error", exc_info=exc)

    def _record(self, chunks: Sequence[AssistantStreamChunk]) -> None:
        if self._builder is not None and not self._reported:
            for chunk in chunks:
                self._builder.add(chunk)

    async def _aclose(self, iterator: object) -> None:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with anyio.move_on_after(self._settings.grace_period, shield=True):
                await aclose()

    async def _report(self) -> None:
        """Call ``on_finish`` once, shielded and bounded by the grace period."""
        on_finish = self._settings.on_finish
        if self._reported or on_finish is None or self._builder is None:
            return
        self._reported = True
        status: FinishStatus = "error" if self._error is not None else "completed" if self._delivered else "cancelled"
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + self._settings.grace_period
            await call_on_finish(on_finish, RunOutcome(status, self._builder.message, self._error), "response")


def resolve_heartbeat(heartbeat: float | bool | None, default: float) -> float | None:
    """Seconds between keepalives, or None: True is the default, None/False/0 turn them off."""
    if heartbeat is True:
        return default
    if heartbeat is None or heartbeat is False or heartbeat == 0:
        return None
    return positive_seconds(heartbeat, "heartbeat")
