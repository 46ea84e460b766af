"""The demo's Starlette app: the chat page, ``POST /api/chat`` streaming a scripted run, and stop/report endpoints.

- ``GET /`` and ``/static/*``: the page (plain HTML, CSS and JS that decode the streams themselves).
- ``GET /api/config``: the formats this installation serves, the default one, server and backend.
- ``POST /api/chat?format=ID``: body ``{"runId": ..., "messages": [{"role", "content"}]}``; streams a run.
  Aborting the request cancels the run (the response notices the disconnect). Asked to book a train,
  the run ends with ``book_train`` waiting for approval; the next request adds ``"approval"`` (the
  call, its signed approval request and the person's decision) and continues that call.
- ``POST /api/cancel/{run_id}``: cancels a run from another request, then reports how it ended.
- ``GET /api/runs/{run_id}``: how a run ended, as its ``on_finish`` hook saw it.

A run may spend an API key, so the POST routes only answer the page itself: JSON bodies only
(a form or ``text/plain`` post from another site is a 415), no ``Origin`` but the demo's own and
no ``Host`` but an IP address or ``localhost`` (a 403, which also stops DNS rebinding), and bodies
within :func:`~assistant_stream_ce.chat_request.read_chat_request`'s limits.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from ..approval import ToolApproval, ToolApprovalError
from ..chat_request import ChatRequestError, read_chat_request
from ..create_run import RunController, create_run
from ._formats import FORMATS, FORMATS_BY_ID, Format
from ._runs import RunBook, RunRecord
from .agent import ask_to_book, continue_booking, plan_trip, topic_of, wants_booking
from .live import LiveAgent

__all__ = ["create_app"]

logger = logging.getLogger("assistant_stream_ce.demo")

STATIC_DIR = Path(__file__).parent / "static"

#: Seconds ``POST /api/cancel/{id}`` waits for the run's ``on_finish``.
CANCEL_WAIT = 5.0
#: The longest ``GET /api/runs/{id}?wait=S`` waits for a run to end.
MAX_REPORT_WAIT = 10.0

_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ROLES = ("user", "assistant")  # what the page may send a model (never a system prompt)


class ChatMessage(msgspec.Struct):
    role: str
    content: str


class Decision(msgspec.Struct, rename="camel"):
    """The person's decision on a call that waits for approval, with the call and its signed request."""

    tool_call_id: str
    tool_name: str
    args: dict[str, Any]
    approval_id: str
    signature: str
    approved: bool
    reason: str | None = None

    def verified(self) -> ToolApproval:
        """The decision as a :class:`ToolApproval`, if its signature matches the call (else ToolApprovalError)."""
        approval = ToolApproval(
            tool_call_id=self.tool_call_id,
            tool_name=self.tool_name,
            args=self.args,
            approved=self.approved,
            reason=self.reason,
            approval_id=self.approval_id,
            signature=self.signature,
        )
        approval.verify()
        return approval


class ChatRequest(msgspec.Struct, rename="camel"):
    run_id: str
    messages: list[ChatMessage]
    approval: Decision | None = None


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


def _cross_origin(request: Request) -> str | None:
    """Why ``request`` does not come from the demo's own page, or None if it may.

    ``Host`` must name the server by address or as ``localhost``: a page whose own name has been
    pointed at this machine (DNS rebinding) is same-origin to the browser, but sends that name.
    A browser's ``Origin`` must be this server's; scripts that send none are no cross-site threat.
    """
    host = request.headers.get("host", "")
    name = host[1 : host.find("]")] if host.startswith("[") else host.rpartition(":")[0] or host
    if name != "localhost":
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return f"cross-origin request refused: the demo answers at an IP address or localhost, not {name!r}"
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{host}":
        return "cross-origin request refused: only the demo's own page may start or stop runs"
    return None


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").partition(";")[0]
    return media_type.strip().lower() == "application/json"


class _ChatEndpoint:
    """``POST /api/chat``: an ASGI app, so that the run's response runs inside a cancel scope of its own."""

    def __init__(self, runs: RunBook, pace: float, live: LiveAgent | None) -> None:
        self._runs = runs
        self._pace = pace
        self._live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        started = await self._start(request)
        if isinstance(started, Response):
            await started(scope, receive, send)
            return
        response, record = started
        await _respond_until_stopped(response, record, scope, receive, send)

    async def _start(self, request: Request) -> tuple[Response, RunRecord] | Response:
        """The run's response and record, or the error response that refuses the request."""
        refused = _cross_origin(request)
        if refused is not None:
            return _error(403, refused)
        if not _is_json(request):
            return _error(415, "a chat request must be application/json")
        format_id = request.query_params.get("format", "")
        fmt = FORMATS_BY_ID.get(format_id)
        if fmt is None:
            return _error(400, f"unknown format {format_id!r}; choose one of {sorted(FORMATS_BY_ID)}")
        try:
            body = await read_chat_request(request, ChatRequest)
        except ChatRequestError as exc:
            return _error(exc.status_code, exc.detail)
        prompts = [m.content for m in body.messages if m.role == "user"]
        if not _RUN_ID.fullmatch(body.run_id) or not prompts:
            return _error(400, "a chat request needs a runId (letters, digits, - and _) and a user message")
        try:
            approval = body.approval.verified() if body.approval is not None else None
        except ToolApprovalError as exc:
            return _error(exc.status_code, exc.detail)
        try:
            record = self._runs.open(body.run_id, format_id)
        except KeyError:
            return _error(409, f"run {body.run_id!r} already exists")
        agent = self._agent(body.messages, prompts[-1], fmt, record, approval)
        return fmt.response(create_run(agent, on_finish=record.on_finish)), record

    def _agent(
        self, messages: list[ChatMessage], prompt: str, fmt: Format, record: RunRecord, approval: ToolApproval | None
    ) -> Callable[[RunController], Awaitable[None]]:
        """The run's callback: a decided booking's continuation, the model in live mode, else the scripted agent."""
        state_as_data = not fmt.carries_state
        if approval is not None:
            decided = "approved" if approval.approved else "denied"
            logger.info("run %s started: format %s, %s booking", record.run_id, fmt.id, decided)
            return functools.partial(continue_booking, approval=approval, pace=self._pace, state_as_data=state_as_data)
        if self._live is not None:
            history = [{"role": m.role, "content": m.content} for m in messages if m.role in _ROLES]
            logger.info("run %s started: format %s, model %s", record.run_id, fmt.id, self._live.model)
            return functools.partial(self._live, messages=history, state_as_data=state_as_data)
        logger.info("run %s started: format %s, place %s", record.run_id, fmt.id, topic_of(prompt))
        script = ask_to_book if wants_booking(prompt) else plan_trip
        return functools.partial(script, prompt=prompt, pace=self._pace, state_as_data=state_as_data)


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
    refused = _cross_origin(request)
    if refused is not None:
        return _error(403, refused)
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
