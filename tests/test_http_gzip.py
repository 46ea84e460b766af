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

from collections.abc import Iterator

import httpx
import pytest
from http_servers import launch
from http_servers.gated_client import assert_decodes_as_the_run, read_every_format

pytestmark = pytest.mark.anyio

#: Each stack with one client backend, so that both backends meet the asyncio and the trio servers.
CASES = [("uvicorn", "trio"), ("hypercorn-asyncio", "asyncio"), ("hypercorn-trio", "asyncio")]
COMPRESSED = {"data-stream"}  # GZipMiddleware skips text/event-stream, the other formats' media type


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, launch.Server]]:
    with launch.serving([(stack, "http_servers.gated:gzip_app") for stack, _ in CASES]) as started:
        yield {server.stack: server for server in started}


@pytest.mark.parametrize(("stack", "anyio_backend"), CASES)
async def test_every_format_streams_through_gzip_middleware(stack: str, servers: dict[str, launch.Server]) -> None:
    async with httpx.AsyncClient(base_url=servers[stack].url, timeout=30.0) as client:
        received = await read_every_format(client)
    for fmt, (headers, body) in received.items():
        if fmt in COMPRESSED:
            assert headers["content-encoding"] == "gzip", fmt
            assert headers["vary"] == "Accept-Encoding", fmt
        else:
            assert "content-encoding" not in headers, fmt
            assert headers["content-type"].startswith("text/event-stream"), fmt
        assert headers["x-accel-buffering"] == "no", fmt
        await assert_decodes_as_the_run(fmt, body)
