"""A real nginx, with the configuration of docs/deployment.md, in front of the test apps.

The ``nginx`` block of the page is read from the page itself and served on a
free loopback port (its upstream pointed at the test server), so the page's
configuration is what is tested. The held run of :mod:`http_servers.gated`
proves that frames come through while the run is going; the scenarios of
:mod:`http_servers.apps` report what the server saw.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from http_servers import launch, raw_client
from http_servers.gated_client import assert_decodes_as_the_run, read_every_format, read_gated
from server_process import HOST, ServerProcess

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
DOC_UPSTREAM = "server 127.0.0.1:8000;"
DOC_LISTEN = "listen 80;"
CASES = [("uvicorn", "asyncio"), ("hypercorn-trio", "trio")]
DATA_STREAM_REQUEST = {"messages": [{"role": "user", "content": "hi"}]}


def documented_config() -> str:
    """The page's nginx block, which must name the upstream and the port that the tests replace."""
    (block,) = re.findall(r"^```nginx\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    assert DOC_UPSTREAM in block
    assert DOC_LISTEN in block
    return block


def nginx_server(upstream_port: int, directory: str, edit: Callable[[str], str] = lambda block: block) -> ServerProcess:
    """nginx serving the documented block (changed by ``edit``) in the foreground, its files in ``directory``."""

    def command(port: int) -> list[str]:
        block = edit(documented_config())
        block = block.replace(DOC_UPSTREAM, f"server {HOST}:{upstream_port};").replace(
            DOC_LISTEN, f"listen {HOST}:{port};"
        )
        temp_paths = "\n".join(
            f"    {kind}_temp_path {directory}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        config = Path(directory) / "nginx.conf"
        config.write_text(
            f"daemon off;\npid {directory}/nginx.pid;\nerror_log stderr warn;\n"
            # As root, nginx's workers would switch to "nobody", who cannot use the temporary directory.
            + ("user root;\n" if os.geteuid() == 0 else "")
            + f"events {{ worker_connections 512; }}\nhttp {{\n    access_log off;\n{temp_paths}\n{block}\n}}\n"
        )
        return ["nginx", "-e", "stderr", "-p", directory, "-c", str(config)]

    return ServerProcess("nginx", command)


@contextlib.contextmanager
def nginx(upstream: launch.Server, edit: Callable[[str], str] = lambda block: block) -> Iterator[ServerProcess]:
    nginx_binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx_binary).exists(), "nginx is not installed (scripts/test.sh installs it)"
    with tempfile.TemporaryDirectory() as directory, nginx_server(upstream.port, directory, edit) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, launch.Server]]:
    with launch.serving([(stack, "http_servers.gated:app") for stack, _ in CASES]) as started:
        yield {server.stack: server for server in started}


def client_for(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=30.0)


async def outcome(client: httpx.AsyncClient, run: str) -> dict[str, Any]:
    """What the server's ``on_finish`` got for ``run``, once it has (a bounded poll of a test-only endpoint)."""
    with anyio.fail_after(15):
        while True:
            events = (await client.get(f"/events/{run}")).json()["events"]
            finished = [event for event in events if event["kind"] == "on_finish"]
            if finished:
                started = sorted(event["name"] for event in events if event["kind"] == "start")
                ended = sorted(event["name"] for event in events if event["kind"] == "finally")
                assert ended == started, "a finally block did not run"
                return dict(finished[0])
            await anyio.sleep(0.02)


@pytest.mark.parametrize(("stack", "anyio_backend"), CASES)
async def test_every_format_streams_through_the_documented_config(
    stack: str, upstreams: dict[str, launch.Server]
) -> None:
    with nginx(upstreams[stack]) as proxy:
        async with client_for(proxy) as client:
            received = await read_every_format(client)
    for fmt, (headers, body) in received.items():
        assert headers["server"].startswith("nginx"), fmt
        assert headers["transfer-encoding"] == "chunked", fmt
        assert headers["cache-control"] == "no-cache", fmt
        assert "x-accel-buffering" not in headers, fmt  # nginx acts on it and keeps it to itself
        await assert_decodes_as_the_run(fmt, body)


def nginx_defaults(block: str) -> str:
    """The block without the lines that change nginx's defaults: buffering on, HTTP/1.0 to the app."""
    for line in ("proxy_buffering off;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";'):
        assert line in block
        block = block.replace(line, "")
    return block


async def test_on_nginx_defaults_the_x_accel_buffering_header_keeps_it_streaming(
    upstreams: dict[str, launch.Server],
) -> None:
    """Buffering on, HTTP/1.0 to the app (which then ends the body by closing): the header alone lets it stream.

    (With ``proxy_ignore_headers X-Accel-Buffering`` added, nginx holds the first words back.)
    """
    with nginx(upstreams["uvicorn"], nginx_defaults) as proxy:
        async with client_for(proxy) as client:
            _, body = await read_gated(client, "data-stream")
    await assert_decodes_as_the_run("data-stream", body)


async def test_a_client_that_leaves_through_nginx_cancels_the_run(upstreams: dict[str, launch.Server]) -> None:
    run = f"leave-{uuid.uuid4().hex[:8]}"
    with nginx(upstreams["uvicorn"]) as proxy:
        async with await raw_client.connect(proxy.port) as connection:
            path = f"/stream/data-stream?run={run}&scenario=endless&heartbeat=none"
            response = await raw_client.RawResponse.open(connection, path, DATA_STREAM_REQUEST)
            assert response.status == 200
            piece = await response.next_piece()
            assert piece is not None
        # The connection to nginx is closed in the middle of the endless run.
        async with client_for(proxy) as client:
            finished = await outcome(client, run)
    assert finished["status"] == "cancelled"


def read_timeout_of_one_second(block: str) -> str:
    assert "proxy_read_timeout 60s;" in block
    return block.replace("proxy_read_timeout 60s;", "proxy_read_timeout 1s;")


async def read_into(client: httpx.AsyncClient, path: str, pieces: list[bytes]) -> None:
    """Append the body's pieces to ``pieces`` as they come (what came before an error stays there)."""
    async with client.stream("POST", path, json=DATA_STREAM_REQUEST) as response:
        assert response.status_code == 200
        async for piece in response.aiter_raw():
            pieces.append(piece)


@pytest.mark.parametrize("heartbeat", ["0.2", "none"])
async def test_a_silence_longer_than_proxy_read_timeout_needs_heartbeats(
    heartbeat: str, upstreams: dict[str, launch.Server]
) -> None:
    """The run is silent for 1.5 s and nginx waits 1 s for a byte: heartbeats every 0.2 s keep the stream,
    without them nginx cuts it and the run is cancelled."""
    run = f"quiet-{uuid.uuid4().hex[:8]}"
    path = f"/stream/data-stream?run={run}&scenario=idle&gap=1.5&heartbeat={heartbeat}"
    pieces: list[bytes] = []
    with nginx(upstreams["uvicorn"], read_timeout_of_one_second) as proxy:
        async with client_for(proxy) as client:
            try:
                await read_into(client, path, pieces)
            except httpx.RemoteProtocolError:  # the chunked body ended short
                pieces.append(b"<cut>")
            finished = await outcome(client, run)
    body = b"".join(pieces)
    if heartbeat == "none":
        assert body == b'0:"before the gap. "\n<cut>'
        assert finished["status"] == "cancelled"
        assert finished["text"] == "before the gap. "
    else:
        assert body.startswith(b'0:"before the gap. "\n\n')  # a heartbeat (an empty line) in the gap
        assert b'0:"after the gap."\n' in body
        assert body.endswith(b'"finishReason":"stop","usage":{"inputTokens":0,"outputTokens":0}}\n')
        assert finished["status"] == "completed"
