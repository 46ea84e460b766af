"""A run that the test holds open: the server streams its first words, then waits for ``POST /release/{run}``.

A client that reads the first words before it releases the run has proved that
they came through while the run was still going: nothing on the way (a
compression middleware, a proxy) held them back until the end. ``POST
/gated/{format}?run=...`` answers with the format's response class of
:mod:`apps`, without heartbeats. ``app`` serves these routes and those of
:mod:`apps`; ``gzip_app`` serves them behind Starlette's ``GZipMiddleware``.
The client side is :mod:`gated_client`.
"""

from __future__ import annotations

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from assistant_stream_ce import RunController, create_run

from .apps import FORMATS, starlette_app
from .scenarios import Callback

FIRST_WORDS = "The first words, sent before the run is released."
#: Long enough to be worth compressing (GZipMiddleware leaves bodies under 500 bytes alone).
REST = " ".join(f"Then sentence {i} of the rest." for i in range(100))

_RELEASES: dict[str, anyio.Event] = {}


def gated(released: anyio.Event) -> Callback:
    """Reasoning and the first words, then (once ``released`` is set) the rest of the text."""

    async def callback(controller: RunController) -> None:
        controller.append_reasoning("Answering in two parts.")
        controller.append_text(FIRST_WORDS)
        await released.wait()
        controller.append_text(REST)

    return callback


async def stream(request: Request) -> Response:
    _, _, respond = FORMATS[request.path_params["format"]]
    released = _RELEASES[request.query_params["run"]] = anyio.Event()
    return respond(create_run(gated(released)), heartbeat=None)


async def release(request: Request) -> Response:
    _RELEASES.pop(request.path_params["run"]).set()
    return PlainTextResponse("released")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


_ROUTES = [
    Route("/gated/{format}", stream, methods=["POST"]),
    Route("/release/{run}", release, methods=["POST"]),
    Route("/", health),
    *starlette_app.routes,
]
app = Starlette(routes=_ROUTES)
gzip_app = Starlette(routes=_ROUTES, middleware=[Middleware(GZipMiddleware)])
