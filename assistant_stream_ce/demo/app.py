"""The demo's Starlette app: the chat page, ``POST /api/chat`` streaming a scripted run, and stop/report endpoints.

- ``GET /`` and ``/static/*``: the page (plain HTML, CSS and JS that decode the streams themselves).
- ``GET /api/config``: the formats this installation serves, the default one, server and backend.
- ``POST /api/chat?format=ID``: body ``{"runId": ..., "messages": [{"role", "content"}]}``; streams a run.
  Aborting the request cancels the run (the response notices the disconnect).
- ``POST /api/cancel/{run_id}``: cancels a run from another request, then reports how it ended.
- ``GET /api/runs/{run_id}``: how a run ended, as its ``on_finish`` hook saw it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from ..create_run import RunController, create_run
from ._formats import FORMATS, FORMATS_BY_ID, Format
from ._runs import RunBook, RunRecord
from .agent import plan_trip, topic_of
from .live import LiveAgent

__all__ = ["create_app"]

logger = logging.getLogger("assistant_stream_ce.demo")

STATIC_DIR = Path(__file__).parent / "static"

#: Seconds ``POST /api/cancel/{id}`` waits for the run's ``on_finish``.
CANCEL_WAIT = 5.0
#: The longest ``GET /api/runs/{id}?wait=S`` waits for a run to end.
MAX_REPORT_WAIT = 10.0

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLES = ("user", "assistant")  # what the page may send a model (never a system prompt)


class ChatMessage(msgspec.Struct):
    role: str
    content: str


class ChatRequest(msgspec.Struct, rename="camel"):
    run_id: str
    messages: list[ChatMessage]


class DemoConfig(msgspec.Struct, rename="camel"):
    """What the page needs to know about the server (``GET /api/config``)."""

    formats: list[dict[str, str]]
    default_format: str
    server: str
    backend: str
    agent: str


def _json(value: object, status_code: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code, media_type="application/json")


def _error(status_code: int, message: str) -> Response:
    return _json({"error": message}, status_code)


class _ChatEndpoint:
    """``POST /api/chat``: an ASGI app, so that the run's response runs inside a cancel scope of its own."""

    def __init__(self, runs: RunBook, pace: float, live: LiveAgent | None) -> None:
        self._runs = runs
        self._pace = pace
        self._live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        format_id = request.query_params.get("format", "")
        fmt = FORMATS_BY_ID.get(format_id)
        if fmt is None:
            await _error(400, f"unknown format {format_id!r}; choose one of {sorted(FORMATS_BY_ID)}")(
                scope, receive, send
            )
            return
        try:
            body = msgspec.json.decode(await request.body(), type=ChatRequest)
        except msgspec.DecodeError as exc:
            await _error(400, f"bad chat request: {exc}")(scope, receive, send)
            return
        prompts = [m.content for m in body.messages if m.role == "user"]
        if not _RUN_ID.match(body.run_id) or not prompts:
            await _error(400, "a chat request needs a runId (letters, digits, - and _) and a user message")(
                scope, receive, send
            )
            return
        try:
            record = self._runs.open(body.run_id, format_id)
        except KeyError:
            await _error(409, f"run {body.run_id!r} already exists")(scope, receive, send)
            return
        agent = self._agent(body.messages, prompts[-1], fmt, record)
        run = create_run(agent, on_finish=record.on_finish)
        await _respond_until_stopped(fmt.response(run), record, scope, receive, send)

    def _agent(
        self, messages: list[ChatMessage], prompt: str, fmt: Format, record: RunRecord
    ) -> Callable[[RunController], Awaitable[None]]:
        """The run's callback: the model in live mode, else the scripted agent."""
        state_as_data = not fmt.carries_state
        if self._live is not None:
            history = [{"role": m.role, "content": m.content} for m in messages if m.role in _ROLES]
            logger.info("run %s started: format %s, model %s", record.run_id, fmt.id, self._live.model)
            return functools.partial(self._live, messages=history, state_as_data=state_as_data)
        logger.info("run %s started: format %s, place %s", record.run_id, fmt.id, topic_of(prompt))
        return functools.partial(plan_trip, prompt=prompt, pace=self._pace, state_as_data=state_as_data)


async def _respond_until_stopped(
    response: Response, record: RunRecord, scope: Scope, receive: Receive, send: Send
) -> None:
    """Send ``response``; if the run is stopped by id, end the HTTP body so the client sees the stream close."""
    body_open = False

    async def tracking_send(message: Message) -> None:
        nonlocal body_open
        if message["type"] == "http.response.start":
            body_open = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            body_open = False
        await send(message)

    with record.scope:
        await response(scope, receive, tracking_send)
    if record.scope.cancel_called and body_open:
        with contextlib.suppress(OSError):  # the client may be gone too
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _config(request: Request) -> Response:
    config: DemoConfig = request.app.state.config
    return _json(config)


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})


def _record(request: Request) -> RunRecord | None:
    runs: RunBook = request.app.state.runs
    return runs.get(request.path_params["run_id"])


async def _run_report(request: Request) -> Response:
    """How a run ended; ``?wait=S`` first waits up to S seconds (at most 10) for it to end."""
    record = _record(request)
    if record is None:
        return _error(404, "no such run")
    try:
        wait = min(float(request.query_params.get("wait", "0")), MAX_REPORT_WAIT)
    except ValueError:
        return _error(400, "wait must be a number of seconds")
    if wait > 0:
        with anyio.move_on_after(wait):
            await record.done.wait()
    return _json(record.report)


async def _cancel(request: Request) -> Response:
    record = _record(request)
    if record is None:
        return _error(404, "no such run")
    record.stop()
    with anyio.move_on_after(CANCEL_WAIT):
        await record.done.wait()
    return _json(record.report)


def create_app(
    *,
    default_format: str = "data-stream",
    server: str = "hypercorn",
    backend: str = "asyncio",
    pace: float = 1.0,
    live: LiveAgent | None = None,
) -> Starlette:
    """The demo app. ``pace`` scales the agent's delays (smaller is faster); with ``live``, a model answers."""
    if default_format not in FORMATS_BY_ID:
        raise ValueError(f"unknown format {default_format!r}; choose one of {sorted(FORMATS_BY_ID)}")
    runs = RunBook()
    app = Starlette(
        routes=[
            Route("/", _index),
            Route("/api/config", _config),
            Route("/api/chat", _ChatEndpoint(runs, pace, live), methods=["POST"]),
            Route("/api/cancel/{run_id}", _cancel, methods=["POST"]),
            Route("/api/runs/{run_id}", _run_report),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    app.state.runs = runs
    app.state.config = DemoConfig(
        formats=[
            {"id": fmt.id, "label": fmt.label, "state": "state" if fmt.carries_state else "data"} for fmt in FORMATS
        ],
        default_format=default_format,
        server=server,
        backend=backend,
        agent="scripted" if live is None else f"model {live.model}",
    )
    return app
