"""A resumable-streams app for end-to-end tests: one process is one instance.

Query options of the start and resume routes: ``format``, ``heartbeat`` and
``send_timeout`` (seconds); of the start route also ``scenario`` and
``detach``. ``POST /live`` streams the story as a live (not resumable)
response, to compare with. Environment: STORE (memory | redis), REDIS_PORT, KEY_PREFIX, LEASE_MS and
POLL_MS (the Redis store's lease and poll interval). Several instances
started with the same Redis share their streams.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import anyio
import anyio.lowlevel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from assistant_stream_ce import RunController, RunOutcome, create_run
from assistant_stream_ce.resumable import (
    ResumableStreamContext,
    create_cancel_assistant_stream_response,
    create_in_memory_resumable_stream_store,
    create_redis_resumable_stream_store,
    create_resumable_assistant_stream_response,
    create_resumable_stream_context,
    create_resume_assistant_stream_response,
    resume_cursor,
)
from assistant_stream_ce.serialization import DataStreamEncoder, UIMessageStreamEncoder
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse
from assistant_stream_ce.serialization.stream_encoder import StreamEncoder

ENCODERS: dict[str, type[StreamEncoder]] = {
    "data-stream": DataStreamEncoder,
    "ui-message-stream": UIMessageStreamEncoder,
}
EVENTS: list[dict[str, Any]] = []
_changed: list[anyio.Event] = []
_gates: dict[str, anyio.Event] = {}


def record(event: dict[str, Any]) -> None:
    """Note what happened on the server, and wake whoever waits for it."""
    EVENTS.append(event)
    while _changed:
        _changed.pop().set()


#: The stream whose request logs (set by the start and resume routes, inherited by the response's tasks).
_serving: ContextVar[str | None] = ContextVar("serving", default=None)


class _Recorder(logging.Handler):
    def emit(self, record_: logging.LogRecord) -> None:
        event = {"event": "log", "level": record_.levelname, "message": record_.getMessage()}
        record({**event, "stream": _serving.get()})


# INFO too: a response dropping a client that stopped reading says so at INFO.
logging.getLogger("assistant_stream_ce").addHandler(_Recorder(logging.INFO))
logging.getLogger("assistant_stream_ce").setLevel(logging.INFO)


async def story(controller: RunController, stream_id: str) -> None:
    """A deterministic run with text, parallel tools and state, slow enough to disconnect from."""
    try:
        controller.state = {"step": "start"}
        for i in range(10):
            controller.append_text(f"word{i} ")
            await anyio.sleep(0.01)

        async def lookup(tool: Any) -> dict[str, Any]:
            await anyio.sleep(0.01 * tool.args["n"])
            return {"n": tool.args["n"], "city": "Zürich"}

        async with controller.tool_calls() as calls:
            for n in (3, 1, 2):
                calls.start("lookup", lookup, args={"n": n}, tool_call_id=f"call_{n}")
        controller.state["step"] = "done"
        for i in range(10):
            controller.append_text(f"tail{i} ")
            await anyio.sleep(0.01)
    finally:
        record({"event": "finally", "stream": stream_id, "cancelled": controller.is_cancelled})


async def forever(controller: RunController, stream_id: str) -> None:
    """Streams until it is cancelled."""
    try:
        while True:
            controller.append_text("tick ")
            await anyio.sleep(0.01)
    finally:
        record({"event": "finally", "stream": stream_id, "cancelled": controller.is_cancelled})


def _gate(stream_id: str) -> anyio.Event:
    return _gates.setdefault(stream_id, anyio.Event())


async def gated(controller: RunController, stream_id: str) -> None:
    """Five words, then waits for ``POST /_release/<stream id>``, then five more."""
    for i in range(5):
        controller.append_text(f"word{i} ")
    record({"event": "gated", "stream": stream_id})
    await _gate(stream_id).wait()
    for i in range(5, 10):
        controller.append_text(f"word{i} ")


async def flood(controller: RunController, stream_id: str) -> None:
    """Eight MiB of text (more than the socket buffers hold), then waits like ``gated``."""
    for _ in range(128):
        controller.append_text("x" * 65536)
        await anyio.lowlevel.checkpoint()
    record({"event": "gated", "stream": stream_id})
    await _gate(stream_id).wait()


SCENARIOS = {"story": story, "forever": forever, "gated": gated, "flood": flood}


def on_finish(stream_id: str) -> Callable[[RunOutcome], None]:
    def hook(outcome: RunOutcome) -> None:
        record({"event": "on_finish", "stream": stream_id, "status": outcome.status, "text": outcome.message.text})

    return hook


def _context(request: Request) -> ResumableStreamContext:
    context: ResumableStreamContext = request.app.state.context
    return context


def _options(request: Request) -> dict[str, Any]:
    """The encoder, and the response options the query sets."""
    options: dict[str, Any] = {"encoder": ENCODERS[request.query_params.get("format", "data-stream")]()}
    for name in ("heartbeat", "send_timeout"):
        if name in request.query_params:
            options[name] = float(request.query_params[name])
    return options


async def start(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    _serving.set(stream_id)
    scenario = SCENARIOS[request.query_params.get("scenario", "story")]
    return await create_resumable_assistant_stream_response(
        context=_context(request),
        stream_id=stream_id,
        callback=functools.partial(scenario, stream_id=stream_id),
        on_finish=on_finish(stream_id),
        continue_without_client=request.query_params.get("detach", "yes") == "yes",
        **_options(request),
    )


async def resume(request: Request) -> Response:
    _serving.set(request.path_params["stream_id"])
    return await create_resume_assistant_stream_response(
        context=_context(request),
        stream_id=request.path_params["stream_id"],
        cursor=resume_cursor(request),
        **_options(request),
    )


async def live(request: Request) -> Response:
    encoder = ENCODERS[request.query_params.get("format", "data-stream")]()
    return AssistantStreamResponse(create_run(functools.partial(story, stream_id="live")), encoder)


async def cancel(request: Request) -> Response:
    return await create_cancel_assistant_stream_response(
        context=_context(request), stream_id=request.path_params["stream_id"]
    )


async def release(request: Request) -> Response:
    _gate(request.path_params["stream_id"]).set()
    return JSONResponse({"released": True})


async def events(request: Request) -> Response:
    return JSONResponse(EVENTS)


async def wait_for_event(request: Request) -> Response:
    """Answer once an event containing the posted fields has happened (408 after 10 s)."""
    wanted = (await request.json()).items()
    with anyio.move_on_after(10):
        while not any(wanted <= event.items() for event in EVENTS):
            changed = anyio.Event()
            _changed.append(changed)
            await changed.wait()
        return JSONResponse({"found": True})
    return JSONResponse({"found": False, "events": EVENTS}, status_code=408)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if os.environ.get("STORE", "redis") == "memory":
        async with create_resumable_stream_context(store=create_in_memory_resumable_stream_store()) as context:
            app.state.context = context
            yield
        return
    import coredis

    client = coredis.Redis(port=int(os.environ["REDIS_PORT"]), stream_timeout=5, connect_timeout=2)
    async with client:
        store = create_redis_resumable_stream_store(
            client,
            key_prefix=os.environ.get("KEY_PREFIX", "test"),
            **{
                option: int(os.environ[variable])
                for option, variable in (("lease_ms", "LEASE_MS"), ("poll_interval_ms", "POLL_MS"))
                if variable in os.environ
            },
        )

        def on_finalize(stream_id: str, status: str, error: str | None) -> None:
            record({"event": "on_finalize", "stream": stream_id, "status": status, "error": error})

        async with create_resumable_stream_context(store=store, ttl_ms=60_000, on_finalize=on_finalize) as context:
            app.state.context = context
            yield


app = Starlette(
    routes=[
        Route("/live", live, methods=["POST"]),
        Route("/runs/{stream_id}", start, methods=["POST"]),
        Route("/runs/{stream_id}", resume, methods=["GET"]),
        Route("/runs/{stream_id}/cancel", cancel, methods=["POST"]),
        Route("/_release/{stream_id}", release, methods=["POST"]),
        Route("/_events", events),
        Route("/_events/wait", wait_for_event, methods=["POST"]),
    ],
    lifespan=lifespan,
)
