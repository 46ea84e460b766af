"""Graceful shutdown: refuse new requests with 503, give the running ones a deadline, then end them.

A server stops accepting connections the moment it begins its own shutdown,
so a 503 can only be answered before: :meth:`GracefulShutdown.begin` is the
pre-stop step (a route a pre-stop hook calls, say). From then on a new HTTP
request under :attr:`GracefulShutdown.middleware` gets 503, and each request
already running gets ``deadline`` seconds to end on its own; then it is
cancelled, and a streaming response of this package ends with its format's
closing frames for a cancelled run (``on_finish`` says ``"cancelled"``).

Without :meth:`~GracefulShutdown.begin`, SIGTERM alone still ends every
stream with its closing frames (but a resumable stream's reader, left cut so
that its client resumes): the server cancels the requests still open at the
end of its graceful timeout, and a cancelled response writes them.
:meth:`~GracefulShutdown.lifespan` waits for those to be written before the
application's shutdown goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ._run import positive_seconds

__all__ = ["GracefulShutdown"]

DEFAULT_DEADLINE = 30.0


class GracefulShutdown:
    """Once :meth:`begin` is called, new requests get 503 and running ones end within ``deadline`` seconds.

    Put :attr:`middleware` in the app's middleware and use :meth:`lifespan`
    as its lifespan (or enter ``shutdown.lifespan(app)`` inside your own).
    """

    def __init__(self, deadline: float = DEFAULT_DEADLINE) -> None:
        self.deadline = positive_seconds(deadline, "deadline")
        self._running: set[anyio.CancelScope] = set()
        self._stop_at: float | None = None
        self._idle: anyio.Event | None = None

    @property
    def began(self) -> bool:
        """Whether :meth:`begin` was called (or the lifespan ended)."""
        return self._stop_at is not None

    @property
    def middleware(self) -> Middleware:
        """The middleware that answers 503 once shutdown began and keeps the running requests in reach."""
        return Middleware(_ShutdownMiddleware, shutdown=self)

    def begin(self) -> None:
        """Refuse new requests from now on and cancel the running ones in ``deadline`` seconds.

        Call it on the event loop (in a route, a task); later calls change nothing.
        """
        if self._stop_at is not None:
            return
        self._stop_at = anyio.current_time() + self.deadline
        for request in self._running:
            request.deadline = self._stop_at

    async def _wait_idle(self) -> None:
        """Return once no request under the middleware is running (a request calling this would wait for itself)."""
        while self._running:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """The app's lifespan: at its end, :meth:`begin`, then wait for the running requests to end.

        A server runs the application's shutdown after it cancelled the
        requests still open; waiting here lets their closing frames go out
        before the process ends.
        """
        try:
            yield
        finally:
            self.begin()
            with anyio.CancelScope(shield=True):
                await self._wait_idle()

    async def _serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if self._stop_at is not None:
            refusal = JSONResponse(
                {"error": "the server is shutting down"}, status_code=503, headers={"connection": "close"}
            )
            await refusal(scope, receive, send)
            return
        with anyio.CancelScope() as request:
            self._running.add(request)
            try:
                await app(scope, receive, send)
            finally:
                self._running.discard(request)
                if not self._running and self._idle is not None:
                    self._idle.set()
                    self._idle = None


class _ShutdownMiddleware:
    """Hands each HTTP request to its :class:`GracefulShutdown`."""

    def __init__(self, app: ASGIApp, shutdown: GracefulShutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.shutdown._serve(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)
