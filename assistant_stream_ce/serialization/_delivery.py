"""The one delivery loop: a stream's chunks become frames on their way to a reader.

Every way a stream leaves this package goes through :class:`Delivery`: an
HTTP response (its frames go to the ASGI ``send``), a resumable producer
(they go to the store) and :meth:`StreamEncoder.encode_stream` (they are
yielded). It is the only code that encodes chunks, tells the stream's owner
which chunks reached the reader, writes the error frame of a stream that
raised and the finish frames; :func:`deliver` is the only loop that moves a
body's frames to a sink.

What a delivery reads is a :class:`ChunkSource`, the owner of the stream's
outcome: a run, or an :class:`IterableSource` around any async iterable of
chunks. The owner keeps the message as delivered, decides the status by one
rule (:func:`~assistant_stream_ce._run.finish_status`) and calls the
``on_finish`` hooks, its own and the response's, once.

A transport sends a :class:`Body`: a delivery, or :class:`EncodedFrames`
(a resumable stream's stored frames), which are sent as they are.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, cast

import anyio

from .._run import (
    DEFAULT_GRACE_PERIOD,
    ErrorMessage,
    FinishStatus,
    OnFinish,
    Outcome,
    close_quietly,
    default_error_message,
    error_text,
)
from ..assistant_stream_chunk import AssistantStreamChunk, ErrorChunk

if TYPE_CHECKING:
    from .stream_encoder import FrameWriter, StreamEncoder

__all__ = [
    "Body",
    "ChunkSource",
    "Delivery",
    "EncodedFrames",
    "IterableSource",
    "as_source",
    "deliver",
    "error_ending",
]

logger = logging.getLogger("assistant_stream_ce")


class ChunkSource(Protocol):
    """A stream of chunks that owns its outcome: what a :class:`Delivery` reads (a run implements it)."""

    def open_stream(
        self, on_finish: OnFinish | None = None, *, confirmed: bool = True
    ) -> AsyncIterator[AssistantStreamChunk]:
        """The chunks, once; what produces them starts now.

        ``on_finish`` gets the outcome too. ``confirmed``: the reader says
        what it delivered (:meth:`delivered`) and ends the stream (:meth:`end`);
        False: the chunks are read as a plain async iterator.
        """
        ...

    def delivered(self, chunk: AssistantStreamChunk) -> None:
        """``chunk`` reached the reader."""
        ...

    def hang_up(self, why: str) -> None:
        """The reader went away: stop producing."""
        ...

    async def end(self, delivered: bool, failure: BaseException | None = None) -> BaseException | None:
        """Stop, clean up and report the outcome once; the stream's error if the reader never saw it raised."""
        ...


class IterableSource:
    """Any async iterable of chunks as a :class:`ChunkSource`: it decides its outcome as a run does.

    The outcome is an error if the iterable raised (the delivery, which reads
    it, says so), cancelled if the stream's end did not reach the reader, else
    completed. The chunks are read from the iterable itself: nothing is added
    per chunk but the message, if a hook wants one.
    """

    def __init__(self, stream: AsyncIterable[AssistantStreamChunk], grace_period: float) -> None:
        self._stream = stream
        self._grace_period = grace_period
        self._iterator: AsyncIterator[AssistantStreamChunk] | None = None
        self._outcome = Outcome()

    def open_stream(
        self, on_finish: OnFinish | None = None, *, confirmed: bool = True
    ) -> AsyncIterator[AssistantStreamChunk]:
        if on_finish is not None:
            self._outcome.add_hook(on_finish, "response")
        self._iterator = aiter(self._stream)
        return self._iterator

    def delivered(self, chunk: AssistantStreamChunk) -> None:
        self._outcome.delivered(chunk)

    def hang_up(self, why: str) -> None:
        """Nothing runs on its own: the delivery closes the iterable."""

    async def end(self, delivered: bool, failure: BaseException | None = None) -> BaseException | None:
        if self._iterator is not None:
            await close_quietly(self._iterator, self._grace_period)
        await self._outcome.report(failure, not delivered, self._grace_period)
        return None  # an error of the iterable is raised to the delivery, which saw it


def as_source(stream: AsyncIterable[AssistantStreamChunk], grace_period: float) -> ChunkSource:
    """``stream`` itself if it owns its outcome (a run), else an :class:`IterableSource` around it."""
    if hasattr(stream, "open_stream"):  # the protocol's entry; an isinstance() of the protocol costs ~6 us
        return cast(ChunkSource, stream)
    return IterableSource(stream, grace_period)


class Body(Protocol):
    """What a transport sends: frames, then the frames that end the body."""

    def frames(self) -> AsyncIterator[bytes]:
        """The frames up to the end, to be closed by the caller; what produces them starts now."""
        ...

    def last_frames(self) -> bytes:
        """The frames that end the body (as far as it got): the error frame if due, and the finish frames.

        The same bytes on every call.
        """
        ...

    def cancelled_ending(self) -> bytes | None:
        """What ends the body of a request cancelled from outside; None: leave it cut (its reader resumes it)."""
        ...

    def hang_up(self, why: str) -> None:
        """The reader went away (``"disconnect"``, ``"send_timeout"``)."""
        ...

    async def close(self, delivered: bool, failure: BaseException | None = None) -> None:
        """Once, when nothing more will be sent: ``delivered`` if the last frames reached the reader.

        Then raises the BaseException that ended the stream, if one did (not a cancellation, not an
        Exception: SystemExit, KeyboardInterrupt, an application's own), in the task that closes it.
        """
        ...


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


def _stops(exc: BaseException) -> bool:
    """Whether ``exc`` stops a delivery rather than failing it: a cancellation (or a group that may
    hold one), or GeneratorExit (the reader closed the frames)."""
    stopping = (anyio.get_cancelled_exc_class(), GeneratorExit, BaseExceptionGroup)
    return not isinstance(exc, Exception) and isinstance(exc, stopping)


class Delivery:
    """One stream of chunks on its way to one reader, through ``encoder``: a :class:`Body`.

    If the stream raises, the exception is logged and the body still ends
    well-formed: an error frame (worded by ``error_message``, unless the
    stream sent an error chunk just before raising, as a run does), then the
    finish frames for "error". A BaseException that is not a cancellation
    (SystemExit, KeyboardInterrupt, an application's own) ends it so too, and
    is then raised by :meth:`close`. An encoder with only ``encode_stream``
    (0.0.36 style) writes those itself. ``confirmed``: the stream's owner
    counts only what this delivery says reached the reader (False: it is read
    as a plain async iterator, :meth:`StreamEncoder.encode_stream`'s way).
    """

    def __init__(
        self,
        source: ChunkSource,
        encoder: StreamEncoder,
        *,
        on_finish: OnFinish | None = None,
        error_message: ErrorMessage = default_error_message,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        confirmed: bool = True,
    ) -> None:
        self._source = source
        self._confirmed = confirmed
        self._encoder = encoder
        self._writer = _open_writer(encoder)
        self._on_finish = on_finish
        self._error_message = error_message
        self._grace_period = grace_period
        self._status: FinishStatus = "cancelled"  # until the chunks end
        self._tail: tuple[AssistantStreamChunk, ...] = ()  # chunks in the last frames, delivered with them
        self._last: bytes | None = None
        self._error: BaseException | None = None  # what failed the stream here (it raised, or its encoding did)
        self._closed = False

    def frames(self) -> AsyncIterator[bytes]:
        chunks = self._source.open_stream(self._on_finish, confirmed=self._confirmed)  # a run's producer starts now
        if self._writer is None:
            return self._encode_stream(chunks)
        return self._encode(self._writer, chunks)

    async def _encode(
        self, writer: FrameWriter, chunks: AsyncIterator[AssistantStreamChunk]
    ) -> AsyncGenerator[bytes, None]:
        delivered, encode = self._source.delivered, writer.encode
        last: AssistantStreamChunk | None = None
        try:
            async for chunk in chunks:
                body = encode(chunk)
                if body:
                    yield body  # resumed when the reader took it
                delivered(chunk)
                last = chunk
            self._status = "completed"
        except BaseException as exc:
            if _stops(exc):
                raise
            self._failed(exc)
            if not isinstance(last, ErrorChunk):
                self._tail = (ErrorChunk(error=error_text(self._error_message, exc)),)
        finally:
            if self._status != "completed":  # else the chunks ended by themselves; their owner's end() closes them
                await close_quietly(chunks, self._grace_period)

    async def _encode_stream(self, chunks: AsyncIterator[AssistantStreamChunk]) -> AsyncGenerator[bytes, None]:
        """An encoder with only ``encode_stream``: it writes the error and finish frames itself."""
        source = self._source
        taken: list[AssistantStreamChunk] = []

        async def observed() -> AsyncGenerator[AssistantStreamChunk, None]:
            try:
                async for chunk in chunks:
                    taken.append(chunk)
                    yield chunk
            except BaseException as exc:  # the encoder may end the body without raising it: the outcome still fails
                if not _stops(exc):
                    self._error = self._error or exc
                raise

        inner = observed()
        encoded: AsyncIterator[str | bytes] = self._encoder.encode_stream(inner)  # some yield bytes
        try:
            async for frame in encoded:
                if frame:
                    yield frame if isinstance(frame, bytes) else frame.encode()
                for chunk in taken:
                    source.delivered(chunk)
                taken.clear()
            self._status = "completed"
        except BaseException as exc:  # the encoder let the stream's exception through
            if _stops(exc):
                raise
            self._failed(exc)
        finally:
            self._tail = tuple(taken)  # taken, but no frame of theirs sent yet: delivered with the end
            for iterator in (encoded, inner, chunks):
                await close_quietly(iterator, self._grace_period)

    def last_frames(self) -> bytes:
        if self._last is None:
            writer = self._writer
            self._last = (
                b""
                if writer is None
                else b"".join(writer.encode(chunk) for chunk in self._tail) + writer.finish(self._status)
            )
        return self._last

    def cancelled_ending(self) -> bytes | None:
        return self.last_frames()  # a cancelled stream's finish frames, unless its chunks had all been sent

    def hang_up(self, why: str) -> None:
        self._source.hang_up(why)

    async def close(self, delivered: bool, failure: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if delivered:
            for chunk in self._tail:
                self._source.delivered(chunk)
        # An encoder that fails (a format's limit) fails the outcome too, as the stream raising would.
        unseen = await self._source.end(delivered, failure or self._error)
        if unseen is not None:  # it failed, but the reader left before its error came through
            self._failed(unseen)
        if self._error is not None and not isinstance(self._error, Exception):
            raise self._error  # SystemExit, KeyboardInterrupt, an application's own: on to the task closing this

    def _failed(self, exc: BaseException) -> None:
        self._status = "error"
        self._error = self._error or exc
        logger.error("assistant_stream_ce: the stream failed; it ends with an error", exc_info=exc)


def error_ending(encoder: StreamEncoder, text: str) -> bytes:
    """Frames that end a body with the error ``text`` (its frames so far came from elsewhere, a store):
    an error frame, then the finish frames for "error"."""
    writer = encoder.open()
    return writer.encode(ErrorChunk(error=text)) + writer.finish("error")


class EncodedFrames:
    """A body already encoded (a resumable stream's stored frames): each item is sent as it is.

    The frames end the body themselves (a failure is written by their
    source). ``on_hang_up`` is awaited once if the reader goes before the
    frames end (to cancel what produces them), shielded and bounded by the
    grace period.
    """

    def __init__(
        self,
        frames: AsyncIterable[bytes],
        on_hang_up: Callable[[], Awaitable[None]] | None = None,
        grace_period: float = DEFAULT_GRACE_PERIOD,
    ) -> None:
        self._frames = frames
        self._on_hang_up = on_hang_up
        self._grace_period = grace_period
        # The frames ended; the reader went away; closed (once).
        self._ended = self._hung_up = self._closed = False

    async def frames(self) -> AsyncGenerator[bytes, None]:
        iterator = aiter(self._frames)
        try:
            async for frame in iterator:
                yield frame
            self._ended = True
        except Exception as exc:
            logger.error("assistant_stream_ce: the stored frames failed; the body ends here", exc_info=exc)
        finally:
            await close_quietly(iterator, self._grace_period)

    def last_frames(self) -> bytes:
        return b""

    def cancelled_ending(self) -> bytes | None:
        return None  # the producer may go on elsewhere: the reader resumes what was cut

    def hang_up(self, why: str) -> None:
        self._hung_up = True

    async def close(self, delivered: bool, failure: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._hung_up and not self._ended and self._on_hang_up is not None:
            with anyio.move_on_after(self._grace_period, shield=True):
                await self._on_hang_up()


async def deliver(
    body: Body,
    send: Callable[[bytes], Awaitable[bool]],
    *,
    opened: Callable[[], Awaitable[bool]] | None = None,
) -> bool:
    """Send each of ``body``'s frames: True once all went, False as soon as ``send`` says the reader is gone.

    What produces the frames starts first, then ``opened()`` (a response's
    start) if given, False if the reader is gone already. The frames are
    closed before this returns. The last frames are not sent: each sink
    sends those in its own way (:meth:`Body.last_frames`).
    """
    frames = body.frames()
    try:
        if opened is not None and not await opened():
            return False
        async for frame in frames:
            if not await send(frame):
                return False
        return True
    finally:
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()  # no shield needed: the frames shield the closing of what they read
