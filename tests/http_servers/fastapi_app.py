"""The routes of :mod:`apps`, served by FastAPI (its own module: the Starlette server never imports FastAPI)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from . import apps

app = FastAPI()


@app.post("/stream/{format}")
async def stream(request: Request) -> Response:
    return await apps.stream(request)


@app.get("/events/{run}")
async def events(request: Request) -> Response:
    return await apps.events(request)


@app.get("/health")
async def health(request: Request) -> Response:
    return await apps.health(request)
