"""SSE frames of a resumable stream carry ``id:`` lines: the cursor after that frame.

A client that keeps the last event id it saw (an ``EventSource``, or any SSE reader) sends it
back as ``Last-Event-ID`` and gets exactly the frames after it. The data stream, which is not
SSE, is left as it is. Served in process through the responses, on both backends.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assistant_stream_ce import RunController
from assistant_stream_ce.resumable import (
    ResumableStreamContext,
    create_in_memory_resumable_stream_store,
    create_resumable_assistant_stream_response,
    create_resumable_stream_context,
    create_resume_assistant_stream_response,
    resume_cursor,
)
from assistant_stream_ce.serialization.data_stream import DataStreamEncoder
from assistant_stream_ce.serialization.stream_encoder import StreamEncoder
from assistant_stream_ce.serialization.ui_message_stream import UIMessageStreamEncoder

pytestmark = pytest.mark.anyio

ID_LINE = re.compile(rb"^id: (\d+)\n", re.M)


async def answer(controller: RunController) -> None:
    controller.append_reasoning("Thinking it over.")
    controller.append_text("Three words here.")
    controller.add_source("s1", "https://example.com", "Example")


def app_for(context: ResumableStreamContext, encoder: StreamEncoder) -> Starlette:
    async def start(request: Request) -> Response:
        return await create_resumable_assistant_stream_response(
            context=context, stream_id=request.path_params["stream_id"], callback=answer, encoder=encoder
        )

    async def resume(request: Request) -> Response:
        return await create_resume_assistant_stream_response(
            context=context, stream_id=request.path_params["stream_id"], encoder=encoder, cursor=resume_cursor(request)
        )

    return Starlette(
        routes=[
            Route("/runs/{stream_id}", start, methods=["POST"]),
            Route("/runs/{stream_id}", resume, methods=["GET"]),
        ]
    )


async def client_for(encoder: StreamEncoder) -> AsyncIterator[httpx.AsyncClient]:
    async with create_resumable_stream_context(store=create_in_memory_resumable_stream_store()) as context:
        transport = httpx.ASGITransport(app=app_for(context, encoder))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def sse_client() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(UIMessageStreamEncoder()):
        yield client


async def test_every_sse_frame_has_the_cursor_after_it_as_its_id(sse_client: httpx.AsyncClient) -> None:
    with anyio.fail_after(10):
        first = await sse_client.post("/runs/ids-1")
    events = first.content.split(b"\n\n")[:-1]
    assert len(events) > 5
    ids = [ID_LINE.match(event) for event in events]
    assert all(ids), events
    assert [int(found.group(1)) for found in ids if found] == list(range(1, len(events) + 1))
    assert events[-1] == f"id: {len(events)}\ndata: [DONE]".encode()


async def test_last_event_id_resumes_after_that_frame(sse_client: httpx.AsyncClient) -> None:
    with anyio.fail_after(10):
        first = (await sse_client.post("/runs/ids-2")).content
        resumed = (await sse_client.get("/runs/ids-2", headers={"Last-Event-ID": "3"})).content
    events = first.split(b"\n\n")[:-1]
    assert resumed.split(b"\n\n")[:-1] == events[3:]
    assert resumed.startswith(b"id: 4\ndata: ")


async def test_data_stream_frames_have_no_id_lines() -> None:
    async for client in client_for(DataStreamEncoder()):
        with anyio.fail_after(10):
            first = (await client.post("/runs/ids-3")).content
        assert ID_LINE.search(first) is None
        assert first.startswith(b"g:")
