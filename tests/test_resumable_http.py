"""Resumable responses over real HTTP, on every stack: what a live response does, they do too.

A resumable run's first client and a client that resumes it are served as
live responses are: keepalives in a silence, ``send_timeout`` for a client
that stops reading, the same headers (plus the stream id), and a body that
ends for an HTTP/1.0 client (what nginx speaks to its upstreams), whose body
ends only when the connection closes. One instance per stack, on the
in-memory store (tests/resumable/app.py); the client runs on both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import aclosing

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from conformance_helpers import adecode
from http_servers.launch import STACKS, Server
from resumable.harness import read_frames, running_instances, wait_for_event
from test_http_e2e import rss_bytes

# Every stack, with a client on each backend (conftest's anyio_backend).
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("stack", STACKS)]

SSE = b"\n\n"
KEEPALIVE = b": heartbeat\n\n"
#: Headers every server adds on its own, and the one a resumable response adds.
NOT_COMPARED = {"date", "server", "x-resumable-stream-id"}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    with running_instances(STACKS, {"STORE": "memory"}) as started:
        yield {server.stack: server for server in started}


@pytest.fixture
def server(stack: str, servers: dict[str, Server]) -> Server:
    return servers[stack]


def new_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def comparable(headers: httpx.Headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in NOT_COMPARED}


async def read_to_close(connection: SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while True:
        try:
            received += await connection.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return received


async def test_a_resumed_reader_gets_keepalives_in_a_silence_and_the_headers_of_a_live_response(
    server: Server,
) -> None:
    stream_id = new_id("quiet")
    query = "format=ui-message-stream"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        with anyio.fail_after(30):
            live = await client.post(f"/live?{query}")
            assert live.status_code == 200
            async with client.stream("POST", f"/runs/{stream_id}?{query}&scenario=gated") as first:
                first_headers = first.headers
            await wait_for_event(client, server, {"event": "gated", "stream": stream_id})
            body, released = b"", False
            async with client.stream("GET", f"/runs/{stream_id}?{query}&heartbeat=0.05") as resumed:
                assert resumed.status_code == 200
                async with aclosing(resumed.aiter_raw()) as pieces:
                    async for piece in pieces:
                        body += piece
                        # The run waits at its gate, and the reader gets keepalives meanwhile.
                        if body.count(KEEPALIVE) >= 2 and not released:
                            released = True
                            assert (await client.post(f"/_release/{stream_id}")).status_code == 200
    assert first_headers["x-resumable-stream-id"] == resumed.headers["x-resumable-stream-id"] == stream_id
    assert comparable(first_headers) == comparable(resumed.headers) == comparable(live.headers)
    assert comparable(live.headers)["cache-control"] == "no-cache"
    assert comparable(live.headers)["x-accel-buffering"] == "no"
    assert body.endswith(b"data: [DONE]\n\n")
    # The real client ignores the keepalives and reads the whole answer.
    (decoded,) = await adecode("ui-message-stream", [body])
    assert "word0 word1 word2 word3 word4 word5 word6 word7 word8 word9" in str(decoded.clean())


async def _start_flood(client: httpx.AsyncClient, server: Server, stream_id: str) -> None:
    """Start a run that stores 8 MiB, then waits at its gate; return once all of it is stored."""
    async with client.stream("POST", f"/runs/{stream_id}?scenario=flood") as response:
        assert response.status_code == 200  # and hang up: the run goes on
    await wait_for_event(client, server, {"event": "gated", "stream": stream_id})


async def _stop_reading(server: Server, request: bytes) -> SocketStream:
    """A connection that sends ``request`` and then reads nothing."""
    connection = await anyio.connect_tcp("127.0.0.1", server.port)
    await connection.send(request)
    return connection


def dropped(stream_id: str) -> dict[str, str]:
    """What the instance records when the response reading ``stream_id`` drops its client."""
    message = "assistant_stream_ce: the client read nothing for 0.5s; dropping it"
    return {"event": "log", "stream": stream_id, "message": message}


async def test_a_resumed_reader_that_stops_reading_is_dropped_after_send_timeout(server: Server) -> None:
    stream_id = new_id("stuck")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        with anyio.fail_after(60):
            await _start_flood(client, server, stream_id)
            rss_before = rss_bytes(server.pid)
            request = f"GET /runs/{stream_id}?send_timeout=0.5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            async with await _stop_reading(server, request) as stuck:
                await wait_for_event(client, server, dropped(stream_id))
                assert rss_bytes(server.pid) - rss_before < 32 * 2**20
                # Dropped: once read, the connection ends without the body's end (the run is still live).
                received = await read_to_close(stuck)
            assert received.startswith(b"HTTP/1.1 200")
            assert not received.endswith(b"0\r\n\r\n")
            assert (await client.post(f"/_release/{stream_id}")).status_code == 200
            whole = await read_frames(client, "GET", f"/runs/{stream_id}", b"\n", None)
    assert whole[-1].startswith(b'd:{"finishReason":"stop"')


async def test_a_first_client_that_stops_reading_cancels_a_run_tied_to_it(server: Server) -> None:
    stream_id = new_id("tied-stuck")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        with anyio.fail_after(60):
            request = f"POST /runs/{stream_id}?scenario=flood&detach=no&send_timeout=0.5 HTTP/1.1\r\n"
            request += "Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
            async with await _stop_reading(server, request.encode()):
                await wait_for_event(client, server, dropped(stream_id))
                # On time, even where the server shields its stuck write (hypercorn's trio worker).
                await wait_for_event(client, server, {"event": "on_finish", "stream": stream_id, "status": "cancelled"})


@pytest.mark.parametrize("fmt", ["data-stream", "ui-message-stream"])
async def test_a_resumable_response_to_an_http_1_0_client_ends(server: Server, fmt: str) -> None:
    """HTTP/1.0 has no chunked encoding: the body ends when the server closes the connection."""
    stream_id = new_id("http10")
    end = b'd:{"finishReason":"stop"' if fmt == "data-stream" else b"data: [DONE]\n\n"
    bodies = []
    with anyio.fail_after(20):
        for method in ("POST", "GET"):  # the first client, then one that resumes the finished stream
            async with await anyio.connect_tcp("127.0.0.1", server.port) as connection:
                target = f"/runs/{stream_id}?format={fmt}"
                await connection.send(f"{method} {target} HTTP/1.0\r\nContent-Length: 0\r\n\r\n".encode())
                head, _, body = (await read_to_close(connection)).partition(b"\r\n\r\n")
            assert head.split(b" ")[1] == b"200", head
            assert b"transfer-encoding" not in head.lower()
            bodies.append(body)
    for body in bodies:
        assert body.splitlines()[-1].startswith(end) if fmt == "data-stream" else body.endswith(end), body[-80:]
    assert bodies[0] == bodies[1]
