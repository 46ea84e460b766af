"""Every response class behind Starlette's ``GZipMiddleware``, on the three server stacks.

Since Starlette 1.5 the middleware flushes the compressor after each body
message, so a compressed stream reaches the client frame by frame (before, zlib
held small frames back until the end of the response); it has left
``text/event-stream`` uncompressed since 0.46. So the data stream
(``text/plain``) arrives gzip-compressed and the SSE formats arrive as they
are, and in both cases the first words reach the client while the run is still
waiting for the test (:mod:`http_servers.gated`).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from conformance_helpers import FORMATS, adecode, client_view, expected_view
from http_servers import launch
from http_servers.gated import FIRST_WORDS, gated

from assistant_stream_ce import RunOutcome, create_run

pytestmark = pytest.mark.anyio

#: Each stack with one client backend, so that both backends meet the asyncio and the trio servers.
CASES = [("uvicorn", "trio"), ("hypercorn-asyncio", "asyncio"), ("hypercorn-trio", "asyncio")]
COMPRESSED = {"data-stream"}  # GZipMiddleware skips text/event-stream, the other formats' media type


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, launch.Server]]:
    with launch.serving([(stack, "http_servers.gated:gzip_app") for stack, _ in CASES]) as started:
        yield {server.stack: server for server in started}


async def expected_message() -> RunOutcome:
    """The outcome of the gated run, run in process with nothing to wait for."""
    released = anyio.Event()
    released.set()
    outcomes: list[RunOutcome] = []
    async with create_run(gated(released), on_finish=outcomes.append) as chunks:
        async for _ in chunks:
            pass
    return outcomes[0]


async def read_gated(client: httpx.AsyncClient, fmt: str) -> tuple[httpx.Headers, bytes]:
    """Read until the first words arrive (decompressing as the bytes come), release the run, read the rest.

    The run cannot end before the release: if anything held the first words
    back until the end of the response, they never come before the bound.
    """
    run = f"gzip-{fmt}-{uuid.uuid4().hex[:8]}"
    async with client.stream("POST", f"/stream/{fmt}?run={run}", headers={"accept-encoding": "gzip"}) as response:
        assert response.status_code == 200
        gzipped = response.headers.get("content-encoding") == "gzip"
        decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        body = b""
        pieces = response.aiter_raw()
        with anyio.move_on_after(10) as waited:
            while FIRST_WORDS.encode() not in body:
                piece = await anext(pieces)
                body += decompressor.decompress(piece) if gzipped else piece
        assert not waited.cancelled_caught, f"{fmt}: the first words were held back while the run went on"
        assert (await client.post(f"/release/{run}")).status_code == 200
        async for piece in pieces:
            body += decompressor.decompress(piece) if gzipped else piece
        if gzipped:
            body += decompressor.flush()
            assert decompressor.eof, "the gzip stream was not closed"
        return response.headers, body


@pytest.mark.parametrize(("stack", "anyio_backend"), CASES)
async def test_every_format_streams_through_gzip_middleware(stack: str, servers: dict[str, launch.Server]) -> None:
    received: dict[str, tuple[httpx.Headers, bytes]] = {}
    async with httpx.AsyncClient(base_url=servers[stack].url, timeout=30.0) as client:

        async def one(fmt: str) -> None:
            received[fmt] = await read_gated(client, fmt)

        async with anyio.create_task_group() as tg:
            for fmt in FORMATS:
                tg.start_soon(one, fmt)

    expected = await expected_message()
    assert expected.status == "completed"
    for fmt, (headers, body) in received.items():
        if fmt in COMPRESSED:
            assert headers["content-encoding"] == "gzip", fmt
            assert headers["vary"] == "Accept-Encoding", fmt
        else:
            assert "content-encoding" not in headers, fmt
            assert headers["content-type"].startswith("text/event-stream"), fmt
        assert headers["x-accel-buffering"] == "no", fmt
        (decoded,) = await adecode(fmt, [body])
        shown: dict[str, Any] = client_view(fmt, decoded)
        assert shown == expected_view(fmt, expected.message, expected.status), fmt
