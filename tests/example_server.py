"""The examples' server (examples/server/app.py) as the browser tests run it, plus one route for them.

``GET /test/outcome?prompt=...&run=N`` waits until the ``N``th run (default 1) answering ``prompt``
has ended and returns ``{"status": ...}`` (``completed``, ``cancelled`` or ``error``), as the server
reported it: the example logs each run's outcome from its ``on_finish`` hook, and a log handler
here records it. A run that continues a call after its approval answers the same prompt again.
``GET /test/bookings`` lists the train bookings the scripted agent made (it logs each one).
Everything else goes to the example's app, unchanged. examples/server must be on ``PYTHONPATH``.
"""

from __future__ import annotations

import logging

import anyio
from app import app as example_app
from app import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

#: Seconds a request for an outcome waits for the run to end.
OUTCOME_TIMEOUT = 30.0

_outcomes: dict[str, list[str]] = {}
_waiting: list[anyio.Event] = []
_bookings: list[str] = []


class _RecordOutcomes(logging.Handler):
    """Reads the example's "<format> run for <prompt> ended: <status>" records."""

    def emit(self, record: logging.LogRecord) -> None:
        _wire_format, prompt, status = record.args  # type: ignore[misc]
        _outcomes.setdefault(prompt, []).append(status)
        for event in _waiting:
            event.set()
        _waiting.clear()


class _RecordBookings(logging.Handler):
    """Reads the scripted agent's "booked the <train> train to <place> (<call id>)" records."""

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("booked the"):
            _bookings.append(record.getMessage())


logger.addHandler(_RecordOutcomes())
logging.getLogger("assistant_stream_ce.demo").addHandler(_RecordBookings())


async def outcome(request: Request) -> JSONResponse:
    prompt = request.query_params["prompt"]
    run = int(request.query_params.get("run", "1"))
    with anyio.fail_after(OUTCOME_TIMEOUT):
        while len(_outcomes.get(prompt, [])) < run:
            changed = anyio.Event()
            _waiting.append(changed)
            await changed.wait()
    return JSONResponse({"status": _outcomes[prompt][run - 1]})


async def bookings(request: Request) -> JSONResponse:
    return JSONResponse(_bookings)


_test_routes = Starlette(routes=[Route("/test/outcome", outcome), Route("/test/bookings", bookings)])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The example's app, with ``/test/...`` answered here."""
    if scope["type"] == "http" and scope["path"].startswith("/test/"):
        await _test_routes(scope, receive, send)
    else:
        await example_app(scope, receive, send)
