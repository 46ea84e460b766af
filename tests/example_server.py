"""The examples' server (examples/server/app.py) as the browser tests run it, plus one route for them.

``GET /test/outcome?prompt=...`` waits until the run answering ``prompt`` has ended and returns
``{"status": ...}`` (``completed``, ``cancelled`` or ``error``), as the server reported it: the
example logs each run's outcome from its ``on_finish`` hook, and a log handler here records it.
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

_outcomes: dict[str, str] = {}
_waiting: list[anyio.Event] = []


class _RecordOutcomes(logging.Handler):
    """Reads the example's "<format> run for <prompt> ended: <status>" records."""

    def emit(self, record: logging.LogRecord) -> None:
        _wire_format, prompt, status = record.args  # type: ignore[misc]
        _outcomes[prompt] = status
        for event in _waiting:
            event.set()
        _waiting.clear()


logger.addHandler(_RecordOutcomes())


async def outcome(request: Request) -> JSONResponse:
    prompt = request.query_params["prompt"]
    with anyio.fail_after(OUTCOME_TIMEOUT):
        while prompt not in _outcomes:
            changed = anyio.Event()
            _waiting.append(changed)
            await changed.wait()
    return JSONResponse({"status": _outcomes[prompt]})


_test_routes = Starlette(routes=[Route("/test/outcome", outcome)])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The example's app, with ``/test/outcome`` answered here."""
    if scope["type"] == "http" and scope["path"] == "/test/outcome":
        await _test_routes(scope, receive, send)
    else:
        await example_app(scope, receive, send)
