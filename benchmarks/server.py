"""A benchmark server in its own process: one library's data-stream responses on one server stack.

``python -m benchmarks.server --lib ours|ref --stack uvicorn|hypercorn-asyncio|hypercorn-trio --port N``

Routes:
- ``/stream?deltas=N&pace=S``: N text deltas; after each, a checkpoint (S=0) or a sleep of S seconds;
- ``/forever?id=K``: a delta every 5 ms until the client goes away; the callback's ``finally``
  records when it ran;
- ``/cleanup?id=K``: ``{"at": <time.monotonic() of that finally, or null>}``.

``time.monotonic()`` is the system-wide CLOCK_MONOTONIC on Linux, so the
client process can compare it with its own clock.
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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .workloads import tokens

STACKS = ("uvicorn", "hypercorn-asyncio", "hypercorn-trio")
#: Longest life of a /forever stream, so that a run that never notices its client leaves no load behind.
FOREVER_LIMIT = 30.0


def build_app(lib_key: str) -> Starlette:
    """The benchmark routes, answered with ``lib_key``'s ``DataStreamResponse``."""
    if lib_key == "ours":
        from assistant_stream_ce import create_run
        from assistant_stream_ce.serialization.data_stream import DataStreamResponse
    else:
        from assistant_stream import create_run
        from assistant_stream.serialization.data_stream import DataStreamResponse

    cleanups: dict[str, float] = {}

    async def stream(request: Request) -> Response:
        items = tokens(int(request.query_params.get("deltas", "100")))
        pace = float(request.query_params.get("pace", "0"))

        async def callback(controller: Any) -> None:
            for item in items:
                controller.append_text(item)
                if pace:
                    await anyio.sleep(pace)
                else:
                    await anyio.lowlevel.checkpoint()

        return DataStreamResponse(create_run(callback))

    async def forever(request: Request) -> Response:
        key = request.query_params["id"]

        async def callback(controller: Any) -> None:
            try:
                deadline = anyio.current_time() + FOREVER_LIMIT
                while anyio.current_time() < deadline:
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
    if stack == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, loop="asyncio", http="h11", lifespan="off",
                    log_level="warning", access_log=False, backlog=4096)
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
    parser.add_argument("--lib", choices=("ours", "ref"), required=True)
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
