"""A Starlette app under a :class:`~assistant_stream_ce.GracefulShutdown`: its run streams its first words,
then waits for ever, so only a shutdown ends it.

``POST /held/{format}`` streams that run with the format's response class of
:mod:`apps`; the run's ``finally`` block prints ``cleanup ran`` and
``on_finish`` prints ``outcome: <status>``, so both are in the server's log.
``POST /drain`` is the pre-stop step (:meth:`GracefulShutdown.begin`).
``SHUTDOWN_DEADLINE`` (seconds, default 0.5) is the shutdown's deadline.
"""

from __future__ import annotations

import os

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from assistant_stream_ce import GracefulShutdown, RunController, RunOutcome, create_run

from .apps import FORMATS

FIRST_WORDS = "The first words, then nothing until the deadline."

shutdown = GracefulShutdown(deadline=float(os.environ.get("SHUTDOWN_DEADLINE", "0.5")))


async def held(controller: RunController) -> None:
    try:
        controller.append_text(FIRST_WORDS)
        await anyio.sleep_forever()
    finally:
        print("cleanup ran", flush=True)


def print_outcome(outcome: RunOutcome) -> None:
    print(f"outcome: {outcome.status}", flush=True)


async def stream(request: Request) -> Response:
    respond = FORMATS[request.path_params["format"]][2]
    return respond(create_run(held), heartbeat=None, on_finish=print_outcome)


async def drain(request: Request) -> Response:
    shutdown.begin()
    return Response(status_code=204)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/held/{format}", stream, methods=["POST"]),
        Route("/drain", drain, methods=["POST"]),
        Route("/", health),
    ],
    middleware=[shutdown.middleware],
    lifespan=shutdown.lifespan,
)
