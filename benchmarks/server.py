"""A benchmark server in its own process: one library's data-stream responses on one server stack.

``python -m benchmarks.server --lib ours|ref|bare --stack STACK --port N``, STACK one of :data:`STACKS`:
uvicorn with h11 on asyncio's own loop, uvicorn with httptools on uvloop (what production deployments
run), hypercorn on asyncio, hypercorn on trio.

Routes (``bare``: ``/stream`` only):
- ``/stream?deltas=N&pace=S``: N text deltas; after each, a checkpoint (S=0) or a sleep of S seconds;
- ``/forever?id=K``: a delta every 5 ms until the client goes away; the callback's ``finally``
  records when it ran; with ``&cooperative=1`` the callback also stops by itself once
  ``controller.is_cancelled`` is true (0.0.36's documented pattern);
- ``/cleanup?id=K``: ``{"at": <time.monotonic() of that finally, or null>}``.

``time.monotonic()`` is the system-wide CLOCK_MONOTONIC on Linux, so the
client process can compare it with its own clock.

``bare`` is the server floor: the same Starlette routing, answered by
:class:`BareDataStream`, a hand-written ASGI streaming response that sends
the same frames and the same finish frame with the same pacing, and nothing
else (no run, no disconnect watching, no heartbeat, no send timeout).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import signal
import time
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .workloads import tokens

STACKS = ("uvicorn", "uvicorn-httptools", "hypercorn-asyncio", "hypercorn-trio")
LIBS = ("ours", "ref", "bare")
#: Longest life of a /forever stream, so that a run that never notices its client leaves no load behind.
FOREVER_LIMIT = 30.0

#: The headers our DataStreamResponse sends (besides those the server adds).
BARE_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"x-vercel-ai-data-stream", b"v1"),
    (b"content-type", b"text/plain; charset=utf-8"),
]
#: The message-finish frame our data stream ends with (0.0.36 ends without one).
BARE_FINISH = b"d:%b\n" % msgspec.json.encode({"finishReason": "stop", "usage": {"inputTokens": 0, "outputTokens": 0}})


def _stream_params(request: Request) -> tuple[list[str], float]:
    """The deltas and the pace of a ``/stream`` request."""
    return tokens(int(request.query_params.get("deltas", "100"))), float(request.query_params.get("pace", "0"))


async def _pause(pace: float) -> None:
    """What a producer does between two deltas: wait ``pace`` seconds, or just a checkpoint."""
    if pace:
        await anyio.sleep(pace)
    else:
        await anyio.lowlevel.checkpoint()


class BareDataStream:
    """The least an ASGI app can do to stream the same data-stream bytes: one ``send`` per frame."""

    def __init__(self, items: list[str], pace: float) -> None:
        self.items = items
        self.pace = pace

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": BARE_HEADERS})
        encode = msgspec.json.encode
        for item in self.items:
            await send({"type": "http.response.body", "body": b"0:" + encode(item) + b"\n", "more_body": True})
            await _pause(self.pace)
        await send({"type": "http.response.body", "body": BARE_FINISH, "more_body": False})


def build_app(lib_key: str) -> Starlette:
    """The benchmark routes, answered with ``lib_key``'s ``DataStreamResponse`` (or the bare response)."""
    if lib_key == "bare":

        async def bare_stream(request: Request) -> BareDataStream:
            return BareDataStream(*_stream_params(request))

        return Starlette(routes=[Route("/stream", bare_stream)])
    if lib_key == "ours":
        from assistant_stream_ce import create_run
        from assistant_stream_ce.serialization.data_stream import DataStreamResponse
    else:
        from assistant_stream import create_run
        from assistant_stream.serialization.data_stream import DataStreamResponse

    cleanups: dict[str, float] = {}

    async def stream(request: Request) -> Response:
        items, pace = _stream_params(request)

        async def callback(controller: Any) -> None:
            for item in items:
                controller.append_text(item)
                await _pause(pace)

        return DataStreamResponse(create_run(callback))

    async def forever(request: Request) -> Response:
        key = request.query_params["id"]
        cooperative = request.query_params.get("cooperative") == "1"

        async def callback(controller: Any) -> None:
            try:
                deadline = anyio.current_time() + FOREVER_LIMIT
                while anyio.current_time() < deadline and not (cooperative and controller.is_cancelled):
                    controller.append_text("tick ")
                    await anyio.sleep(0.005)
            finally:
                cleanups[key] = time.monotonic()

        return DataStreamResponse(create_run(callback))

    async def cleanup(request: Request) -> Response:
        return JSONResponse({"at": cleanups.get(request.query_params["id"])})

    return Starlette(routes=[Route("/stream", stream), Route("/forever", forever), Route("/cleanup", cleanup)])


def serve(app: Starlette, stack: str, port: int) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` with ``stack`` until killed."""
    if stack in ("uvicorn", "uvicorn-httptools"):
        import uvicorn

        fast = stack == "uvicorn-httptools"
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=port,
            loop="uvloop" if fast else "asyncio",
            http="httptools" if fast else "h11",
            lifespan="off",
            log_level="warning",
            access_log=False,
            backlog=4096,
        )
        return
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.backlog = 4096  # the default (100) drops SYNs of a 1,000-connection burst
    config.accesslog = None
    config.loglevel = "WARNING"
    if stack == "hypercorn-asyncio":
        import asyncio

        from hypercorn.asyncio import serve as serve_asyncio

        asyncio.run(serve_asyncio(app, config))
    elif stack == "hypercorn-trio":
        import trio
        from hypercorn.trio import serve as serve_trio

        trio.run(serve_trio, app, config)
    else:
        raise ValueError(f"unknown stack {stack!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", choices=LIBS, required=True)
    parser.add_argument("--stack", choices=STACKS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", help="write a CPU-time profile (cProfile) here when stopped by SIGTERM")
    args = parser.parse_args()
    app = build_app(args.lib)
    if not args.profile:
        serve(app, args.stack, args.port)
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # CPU time, not wall time: on a busy machine a wall-clock profile blames whatever was running when
    # the process lost its core.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        serve(app, args.stack, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        profiler.disable()
        with open(args.profile, "w") as f:
            stats = pstats.Stats(profiler, stream=f)
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats(60)


if __name__ == "__main__":
    main()
