"""One HTTP exchange of a streaming response: the body, the client, and the wire between them.

Two tasks serve one exchange, beside a run's producer (a task of the
run's, which opens a task group for its tool tasks only if it starts one):

- the writer sends the frames of a :class:`~._delivery.Body` (a delivery of
  chunks, or a resumable stream's stored frames) through
  :func:`~._delivery.deliver`, so that it pulls the next chunk only once the
  previous frame left (a run's merger coalesces meanwhile). It is a
  :class:`~.._detached.Companion`, a task started on the backend itself (an
  AnyIO task in a task group was the largest fixed cost of a request), and
  it wakes once a frame: started at the top of its own stack, each wake-up
  resumes a few frames of this package rather than every middleware and
  server frame above the response;
- the attendant, the response's own task and the only caller of ``receive``,
  waits for ``http.disconnect``; whenever something is due it stops waiting,
  writes the encoder's keepalive into a silence of ``heartbeat`` seconds or
  notices a send that has taken ``send_timeout``, and waits again. One task
  for both keeps the cost per request down (a task, a cancel scope and a
  cancellation fewer); servers leave ``receive`` ready to be called again
  after a cancellation, which is how Starlette's own responses stop it too.
  The writer stops it once the body is written, whichever way; the attendant
  then joins the writer.

The client is gone when the attendant sees a disconnect, when a send fails,
or when a send takes longer than ``send_timeout``: the body is told
(``hang_up``: a run cancels itself), and the scopes of the writer and of
the attendant's wait are cancelled. Some servers shield their socket writes
from cancellation (hypercorn's trio worker): the attendant then closes the
body itself (the run ends and reports its outcome) while the writer waits
for its send. A request cancelled from outside stops the attendant, which
cancels the writer and joins it.

The last frame, which ends the body, is sent once the attendant no longer
acts on a disconnect, so no disconnect can interrupt it: over HTTP/1.0 (no
chunked encoding) the body ends when the server closes the connection, and
hypercorn's trio worker closes it inside that very send (a cancellation
there leaves it open). The attendant still keeps time, so that send too is
dropped after ``send_timeout``; servers then end its wait on ``receive``
themselves (the body is complete), and the writer cancels it only if they
have not.

A request cancelled from outside (a server ends the requests still open at
the end of its graceful timeout; a shutdown's deadline does the same) still
ends its body well-formed where the body says how (``cancelled_ending``: the
format's closing frames for a cancelled run; a resumable stream's stored
frames are left cut, so that its client resumes them): they are sent (after
the response's start if it had not gone yet), shielded and bounded by
``send_timeout``, then the cancellation goes on.

The body is closed once (its owner reports the outcome to ``on_finish``) as
soon as the outcome is known: after the last frame was sent, or, when the
client is gone, as soon as the run has been cancelled and cleaned up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass

import anyio
from starlette.types import Message, Receive, Send

from .. import _detached
from .._run import ErrorMessage, OnFinish, default_error_message, positive_seconds
from ._delivery import Body, deliver
from .stream_encoder import StreamEncoder

logger = logging.getLogger("assistant_stream_ce")


@dataclass(frozen=True)
class Settings:
    """A response's options, resolved once."""

    heartbeat: float | None
    send_timeout: float
    grace_period: float
    on_finish: OnFinish | None
    #: Words the error of a stream that is not a run (a run's own hook words a run's errors).
    error_message: ErrorMessage = default_error_message


def _body(body: bytes) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": True}


class Exchange:
    """Streams one body to one client; ``await run()`` returns when all of it is over."""

    def __init__(
        self,
        body: Body,
        encoder: StreamEncoder,
        start: Message,
        settings: Settings,
        receive: Receive,
        send: Send,
    ) -> None:
        self._body = body
        self._start = start
        self._settings = settings
        self._receive = receive
        self._send_asgi = send
        token = encoder.get_keepalive_token() if settings.heartbeat is not None else None
        self._keepalive = token.encode() if token else None
        # The attendant's current round: its duty, then its wait on ``receive`` until the next duty
        # (the scope's deadline). Cancelled once the body is written (``_written``) or the client is
        # gone (``_gone``). One scope a round, none around them.
        self._attending: anyio.CancelScope | None = None
        # The writer's scope, made here so that it can be cancelled before the writer has started.
        self._writing = anyio.CancelScope()
        self._written = False
        # The writer and the attendant's keepalives take turns at ``send``. The attendant writes only
        # while no send is under way (it checks ``_sending`` first), so only the writer ever waits:
        # for a keepalive's send, on this event, made then (no lock or semaphore per request).
        self._sending = False
        self._sent: anyio.Event | None = None
        self._clock = _detached.clock()  # read at every send
        self._last_send = 0.0  # when the latest send started
        self._start_sent = False
        self._finishing = False  # the last frame is being sent
        self._delivered = False  # the last frame was sent
        self._attended = False  # the attendant has returned
        self._gone = False
        self._native = _detached.native()
        self._after_last: _detached.Parking | None = None  # where the attendant waits for the last send

    async def run(self) -> None:
        self._last_send = self._clock()
        try:
            writer = _detached.Companion(self._write_stream)
            try:
                await self._attend()
            except BaseException:
                self._writing.cancel()  # cancelled from outside: the writer stops too
                raise
            finally:
                await writer.join()
        except anyio.get_cancelled_exc_class():
            # Only a cancellation from outside gets here: the exchange's own scopes absorb its own.
            if not (self._gone or self._delivered):
                await self._end_cancelled()
            raise
        finally:
            await self._body.close(self._delivered)

    # -- the two tasks ----------------------------------------------------------

    async def _attend(self) -> None:
        try:
            while not (self._written or self._gone):
                with anyio.CancelScope() as self._attending:
                    due = await self._keep_time()
                    if due is None:
                        return
                    self._attending.deadline = due
                    try:
                        while (await self._receive())["type"] != "http.disconnect":
                            pass  # request body the route did not read: not ours to keep
                    except Exception as exc:  # a wrapped receive may raise instead
                        logger.debug("assistant_stream_ce: receive failed, the client is gone: %r", exc)
                    if not self._finishing:
                        self._client_gone()
                        return
                    # The last frame is being sent: a disconnect cannot cut it (servers also send one once
                    # the body is complete, some before their send returns). Until that send has
                    # returned, keep time: this round's deadline bounds it.
                    if not self._written:
                        self._after_last = parked = self._native.parking()
                        try:
                            await parked.wait()  # woken by the writer's end
                        finally:
                            self._after_last = None
                    return
        finally:
            self._attended = True

    async def _write_stream(self) -> None:
        try:
            with self._writing:
                try:
                    if await deliver(self._body, self._send_frame, opened=self._send_start):
                        self._finishing = True
                        last = {"type": "http.response.body", "body": self._body.last_frames(), "more_body": False}
                        self._delivered = await self._write(last)
                finally:
                    if self._gone:  # the run is over and nothing more will be sent: report now
                        await self._body.close(False)
        finally:
            self._written = True
            # Servers wake a ``receive`` still waiting once the body is complete (with
            # ``http.disconnect``): let that end the attendant rather than cancel it (a
            # cancellation costs far more on asyncio).
            if self._after_last is not None:
                self._after_last.wake()  # it had its wake-up already, and waits for this send
            elif not self._attended:
                if self._finishing:
                    await self._native.checkpoint()
                if not self._attended and self._attending is not None:
                    self._attending.cancel()

    async def _keep_time(self) -> float | None:
        """Do what is due now: the time of the next duty, or None once a stuck client was dropped."""
        timeout = self._settings.send_timeout
        heartbeat = self._settings.heartbeat if self._keepalive else None  # no keepalive token: no heartbeats
        # Wait at most a heartbeat, and at most one send_timeout: a send that starts
        # later is stuck one send_timeout after it started at the earliest.
        nap = timeout if heartbeat is None else min(heartbeat, timeout)
        while True:
            now = self._clock()
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

    async def _send_start(self) -> bool:
        self._start_sent = await self._write(self._start)
        return self._start_sent

    def _send_frame(self, frame: bytes) -> Awaitable[bool]:
        return self._write(_body(frame))  # no coroutine of its own: this runs once a frame

    async def _write(self, message: Message) -> bool:
        """Send ``message``; False (and the run cancelled) if the client is gone."""
        if self._sending:
            # A keepalive is being sent: wait for it, but not longer than a send may take.
            with anyio.move_on_after(self._settings.send_timeout) as waited:
                while self._sending:
                    self._sent = anyio.Event()
                    await self._sent.wait()
            if waited.cancelled_caught:
                self._stuck()
                return False
        try:
            self._sending = True
            self._last_send = self._clock()
            return await self._send_or_gone(message)
        finally:
            self._sending = False
            if self._sent is not None:
                self._sent.set()
                self._sent = None

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
        """End the body of a request cancelled from outside as the body says (or leave it cut)."""
        ending = self._body.cancelled_ending()
        if ending is None:
            return
        with anyio.move_on_after(self._settings.send_timeout, shield=True):
            if self._start_sent or await self._send_or_gone(self._start):
                await self._send_or_gone({"type": "http.response.body", "body": ending, "more_body": False})

    # -- the client's end ---------------------------------------------------------

    async def _drop_stuck_client(self) -> None:
        """A send has taken ``send_timeout``: end the body now, even if the server shields that send."""
        self._stuck()
        await self._body.close(False)  # shielded, bounded by the grace period

    def _stuck(self) -> None:
        logger.info("assistant_stream_ce: the client read nothing for %ss; dropping it", self._settings.send_timeout)
        self._client_gone("send_timeout")

    def _client_gone(self, why: str = "disconnect") -> None:
        if not self._gone:
            self._gone = True
            self._body.hang_up(why)
        self._writing.cancel()
        if self._attending is not None:
            self._attending.cancel()


def resolve_heartbeat(heartbeat: float | bool | None, default: float) -> float | None:
    """Seconds between keepalives, or None: True is the default, None/False/0 turn them off."""
    if heartbeat is True:
        return default
    if heartbeat is None or heartbeat is False or heartbeat == 0:
        return None
    return positive_seconds(heartbeat, "heartbeat")
