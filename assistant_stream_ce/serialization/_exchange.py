"""One HTTP exchange of a streaming response: the run, the client, and the wire between them.

Four tasks share one task group that lives in the response's ``__call__``:

- the producer consumes the chunk stream (a :class:`Run` in its structured
  form, or any async iterable) and encodes each chunk into frames;
- the writer, the only caller of ``send``, takes frames from a zero-buffer
  memory object stream, so the producer pulls the next chunk only once the
  previous frame left (the run's merger coalesces meanwhile);
- the watcher, the only caller of ``receive``, waits for ``http.disconnect``;
- the heartbeat task puts a keepalive into the same stream when nothing was
  written for a while.

The client is gone when the watcher sees a disconnect, when a send fails, or
when a send takes longer than ``send_timeout``: the task group is cancelled,
which cancels the run inside it. A send is timed twice, because some servers
shield their socket writes from cancellation (hypercorn's trio worker): the
writer's own deadline interrupts the send where the server allows it, and
the producer and heartbeat time their hand-off to the writer, so the run is
cancelled on time even while a shielded send keeps the writer waiting.

The outcome goes to ``on_finish`` as soon as it is known: after the last
frame (ending the HTTP body) was sent, which happens once the task group has
ended so that no watcher can interrupt it, or, when the client is gone, as
soon as the run has been cancelled and cleaned up.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.types import Message, Receive, Send

from .._run import OnFinish, RunStatus, default_error_message
from ..assistant_stream_chunk import AssistantStreamChunk, ErrorChunk
from ..create_run import Run, RunOutcome
from ..message import MessageBuilder
from .stream_encoder import FrameWriter, StreamEncoder

logger = logging.getLogger("assistant_stream_ce")

@dataclass(frozen=True)
class Settings:
    """A response's options, resolved once."""

    heartbeat: float | None
    send_timeout: float
    grace_period: float
    on_finish: OnFinish | None


@dataclass(frozen=True)
class _Frame:
    body: bytes
    chunks: tuple[AssistantStreamChunk, ...] = ()
    last: bool = False


_KEEPALIVE = _Frame(b"")  # sentinel: the writer sends the encoder's keepalive token


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


class Exchange:
    """Streams one response to one client; ``await run()`` returns when all of it is over."""

    def __init__(
        self,
        stream: AsyncIterable[AssistantStreamChunk],
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
        initial_state = stream.state if isinstance(stream, Run) else None
        self._builder = MessageBuilder(initial_state) if settings.on_finish is not None else None
        self._tg: anyio.abc.TaskGroup | None = None
        self._last: _Frame | None = None
        self._error: BaseException | None = None
        self._gone = False
        self._delivered = False
        self._reported = False
        self._idle_since = 0.0

    async def run(self) -> None:
        send_frames, receive_frames = anyio.create_memory_object_stream[_Frame](0)
        self._idle_since = anyio.current_time()
        try:
            # Closed here, after every task ended: a task that closed its end early could
            # turn the cancellation of its peer into a BrokenResourceError.
            with send_frames, receive_frames:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._watch_disconnect)
                    tg.start_soon(self._produce, send_frames)
                    if self._keepalive is not None:
                        tg.start_soon(self._heartbeats, send_frames)
                    await self._write(receive_frames)
            if self._last is not None and not self._gone and await self._send(self._last.body, more_body=False):
                self._delivered = True
                self._record(self._last)
        finally:
            await self._report()

    # -- the four tasks ---------------------------------------------------------

    async def _watch_disconnect(self) -> None:
        try:
            while (await self._receive())["type"] != "http.disconnect":
                pass  # request body the route did not read: not ours to keep
        except Exception as exc:  # a wrapped receive may raise instead
            logger.debug("assistant_stream_ce: receive failed, the client is gone: %r", exc)
        self._client_gone()

    async def _produce(self, frames: MemoryObjectSendStream[_Frame]) -> None:
        try:
            writer = _open_writer(self._encoder)
            if writer is None:
                await self._produce_legacy(frames)
            else:
                await self._produce_frames(writer, frames)
        finally:
            if self._gone:  # the run is over and nothing more will be sent: report now
                await self._report()

    async def _produce_frames(self, writer: FrameWriter, frames: MemoryObjectSendStream[_Frame]) -> None:
        last_chunk: AssistantStreamChunk | None = None

        async def pump(chunks: AsyncIterable[AssistantStreamChunk]) -> None:
            nonlocal last_chunk
            async for chunk in chunks:
                await self._hand_off(frames, _Frame(writer.encode(chunk), (chunk,)))
                last_chunk = chunk

        tail: tuple[AssistantStreamChunk, ...] = ()
        try:
            if isinstance(self._stream, Run):
                async with self._stream as chunks:
                    await pump(chunks)
            else:
                iterator = aiter(self._stream)
                try:
                    await pump(iterator)
                finally:
                    await self._aclose(iterator)
        except Exception as exc:
            self._failed(exc)
            if not isinstance(last_chunk, ErrorChunk):
                tail = (ErrorChunk(error=default_error_message(exc)),)
        body = b"".join(writer.encode(chunk) for chunk in tail)
        body += writer.finish("error" if self._error is not None else "completed")
        await self._hand_off(frames, _Frame(body, tail, last=True))

    async def _produce_legacy(self, frames: MemoryObjectSendStream[_Frame]) -> None:
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

        async def pump(chunks: AsyncIterable[AssistantStreamChunk]) -> None:
            encoded = aiter(self._encoder.encode_stream(observed(chunks)))
            try:
                async for text in encoded:
                    await self._hand_off(frames, _Frame(text.encode(), tuple(taken)))
                    taken.clear()
            finally:
                await self._aclose(encoded)

        try:
            if isinstance(self._stream, Run):
                async with self._stream as chunks:
                    await pump(chunks)
            else:
                await pump(self._stream)
        except Exception as exc:  # the encoder let the stream's exception through
            self._failed(exc)
        await self._hand_off(frames, _Frame(b"", tuple(taken), last=True))

    async def _write(self, frames: MemoryObjectReceiveStream[_Frame]) -> None:
        # One scope times every send: its deadline is armed for each send and lifted after it,
        # which costs a timer per frame instead of entering and leaving a scope per frame.
        with anyio.CancelScope() as timer:
            await self._write_frames(frames, timer)
        if timer.cancelled_caught:
            self._stuck()

    async def _write_frames(self, frames: MemoryObjectReceiveStream[_Frame], timer: anyio.CancelScope) -> None:
        assert self._tg is not None
        if not await self._timed_send(timer, self._start):
            return
        async for frame in frames:
            if frame.last:
                self._last = frame
                self._tg.cancel_scope.cancel()  # stop the watcher and the heartbeat
                return
            body = self._keepalive if frame is _KEEPALIVE else frame.body
            if body and not await self._timed_send(
                timer, {"type": "http.response.body", "body": body, "more_body": True}
            ):
                return
            self._record(frame)

    async def _heartbeats(self, frames: MemoryObjectSendStream[_Frame]) -> None:
        assert self._settings.heartbeat is not None
        interval = self._settings.heartbeat
        while True:
            due = self._idle_since + interval
            if anyio.current_time() < due:
                await anyio.sleep_until(due)
                continue
            await self._hand_off(frames, _KEEPALIVE)
            self._idle_since = anyio.current_time()

    # -- helpers ----------------------------------------------------------------

    async def _hand_off(self, frames: MemoryObjectSendStream[_Frame], frame: _Frame) -> None:
        """Give ``frame`` to the writer; if the writer is stuck in a send for ``send_timeout``, the client is gone."""
        try:
            frames.send_nowait(frame)  # the writer is waiting for it: no timer needed
            return
        except anyio.WouldBlock:
            pass
        with anyio.move_on_after(self._settings.send_timeout) as waited:
            await frames.send(frame)
        if waited.cancelled_caught:
            self._stuck()
            await anyio.lowlevel.checkpoint()  # the task group is cancelled: leave here

    async def _timed_send(self, timer: anyio.CancelScope, message: Message) -> bool:
        """The writer's send: ``timer`` (around the writer) is cancelled if it takes ``send_timeout``.

        False (and the run cancelled) if the server reports the client gone.
        """
        now = anyio.current_time()
        timer.deadline = now + self._settings.send_timeout
        try:
            await self._send_asgi(message)
        except Exception as exc:  # the server reports a closed connection in its own way
            logger.debug("assistant_stream_ce: send failed, the client is gone: %r", exc)
            self._client_gone()
            return False
        timer.deadline = math.inf
        self._idle_since = now  # the heartbeat counts from the start of the last write
        return True

    async def _send(self, body: bytes, *, more_body: bool) -> bool:
        return await self._send_message({"type": "http.response.body", "body": body, "more_body": more_body})

    async def _send_message(self, message: Message) -> bool:
        """Send with the timeout; False (and the run cancelled) if the client is gone or stuck."""
        try:
            with anyio.fail_after(self._settings.send_timeout):
                await self._send_asgi(message)
        except TimeoutError:
            self._stuck()
            return False
        except Exception as exc:  # the server reports a closed connection in its own way
            logger.debug("assistant_stream_ce: send failed, the client is gone: %r", exc)
            self._client_gone()
            return False
        return True

    def _stuck(self) -> None:
        logger.info("assistant_stream_ce: the client read nothing for %ss; dropping it", self._settings.send_timeout)
        self._client_gone()

    def _client_gone(self) -> None:
        self._gone = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def _failed(self, exc: BaseException) -> None:
        self._error = self._error or exc
        logger.error("assistant_stream_ce: the stream failed; ending the response with an error", exc_info=exc)

    def _record(self, frame: _Frame) -> None:
        if self._builder is not None and not self._reported:
            for chunk in frame.chunks:
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
        status: RunStatus = "error" if self._error is not None else "completed" if self._delivered else "cancelled"
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + self._settings.grace_period
            try:
                result = on_finish(RunOutcome(status, self._builder.message, self._error))
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("assistant_stream_ce: the response's on_finish raised")


def resolve_heartbeat(heartbeat: float | bool | None, default: float) -> float | None:
    """Seconds between keepalives, or None: True is the default, None/False/0 turn them off."""
    if heartbeat is True:
        return default
    if heartbeat is None or heartbeat is False or heartbeat == 0:
        return None
    return positive_seconds(heartbeat, "heartbeat")


def positive_seconds(value: Any, name: str) -> float:
    """``value`` as a positive, finite number of seconds, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)
