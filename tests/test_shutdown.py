"""Shutting down with runs in flight: each stream ends with its format's closing frames for a cancelled run.

In process, on both backends: a response cancelled from outside (what a
server does to the requests still open at the end of its graceful timeout)
ends its body with the closing frames; :class:`GracefulShutdown` answers
new requests with 503 once it began and gives the running ones its deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from http_servers.apps import FORMATS
from http_servers.launch import STACKS, Server
from http_servers.shutdown_app import FIRST_WORDS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from test_http_response import Client, LineEncoder, Outcomes

from assistant_stream_ce import (
    AssistantStreamChunk,
    GracefulShutdown,
    RunController,
    TextDeltaChunk,
    UIMessageStreamEncoder,
    UIMessageStreamResponse,
    create_run,
)
from assistant_stream_ce.resumable import ResumableStreamResponse
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse

pytestmark = pytest.mark.anyio

SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}
#: What differs between two streams of the same chunks: generated ids and the creation time.
_FRESH = re.compile(rb"(?:msg|run|thread|chatcmpl)-[A-Za-z0-9-]+|\"created\":\d+")


def same_frames(body: bytes) -> bytes:
    return _FRESH.sub(b"<fresh>", body)


class Cleanup:
    """What a held stream's ``finally`` block saw."""

    def __init__(self) -> None:
        self.ran = False


def held_run(cleanup: Cleanup) -> Any:
    async def run(controller: RunController) -> None:
        try:
            controller.append_text(FIRST_WORDS)
            await anyio.sleep_forever()
        finally:
            cleanup.ran = True

    return run


async def held_chunks(cleanup: Cleanup) -> AsyncIterator[AssistantStreamChunk]:
    try:
        yield TextDeltaChunk(text_delta=FIRST_WORDS)
        await anyio.sleep_forever()
    finally:
        cleanup.ran = True


async def cancel_once_streaming(response: AssistantStreamResponse | ResumableStreamResponse, client: Client) -> None:
    """Serve ``response``; cancel it from outside once its first words were sent, as a server would."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as server:
            server.start_soon(response, SCOPE, client.receive, client.send)
            await client.wait_for(lambda: FIRST_WORDS.encode() in client.body)
            server.cancel_scope.cancel()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_a_response_cancelled_by_its_server_ends_with_the_closing_frames(fmt: str) -> None:
    cleanup, outcomes, client = Cleanup(), Outcomes(), Client()
    response = FORMATS[fmt][2](held_chunks(cleanup), heartbeat=None, on_finish=outcomes)
    await cancel_once_streaming(response, client)

    writer = response.stream_encoder.open()
    expected = writer.encode(TextDeltaChunk(text_delta=FIRST_WORDS)) + writer.finish("cancelled")
    assert same_frames(client.body) == same_frames(expected)
    assert client.messages[-1]["more_body"] is False
    assert cleanup.ran
    assert outcomes.only.status == "cancelled"


async def test_a_run_cancelled_by_its_server_runs_its_cleanup_and_reports_cancelled() -> None:
    cleanup, outcomes, client = Cleanup(), Outcomes(), Client()
    response = AssistantStreamResponse(create_run(held_run(cleanup)), LineEncoder(), None, on_finish=outcomes)
    await cancel_once_streaming(response, client)

    assert client.lines[-1] == "end:cancelled"
    assert client.messages[-1]["more_body"] is False
    assert cleanup.ran
    assert outcomes.only.status == "cancelled"
    assert outcomes.only.message.text == FIRST_WORDS


async def test_a_response_cancelled_before_its_start_still_sends_a_whole_response() -> None:
    cleanup, outcomes, client = Cleanup(), Outcomes(), Client()
    response = AssistantStreamResponse(create_run(held_run(cleanup)), LineEncoder(), None, on_finish=outcomes)
    with anyio.fail_after(10), anyio.CancelScope() as server:
        server.cancel()
        await response(SCOPE, client.receive, client.send)

    assert [message["type"] for message in client.messages] == ["http.response.start", "http.response.body"]
    assert client.lines == ["end:cancelled"]
    assert client.messages[-1]["more_body"] is False
    assert outcomes.only.status == "cancelled"


class StallsOnTheLastFrame(Client):
    """A server whose send of the body's last frame never returns the first time (cancelled there)."""

    def __init__(self) -> None:
        super().__init__()
        self.at_the_last_frame = anyio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if message.get("more_body") is False and not self.at_the_last_frame.is_set():
            self.at_the_last_frame.set()
            await anyio.sleep_forever()
        await super().send(message)


async def test_a_response_cancelled_while_sending_its_last_frame_sends_that_frame() -> None:
    outcomes, client = Outcomes(), StallsOnTheLastFrame()

    async def done(controller: RunController) -> None:
        controller.append_text(FIRST_WORDS)

    response = AssistantStreamResponse(create_run(done), LineEncoder(), None, on_finish=outcomes)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as server:
            server.start_soon(response, SCOPE, client.receive, client.send)
            await client.at_the_last_frame.wait()
            server.cancel_scope.cancel()

    assert client.lines[-1] == "end:completed"
    assert client.messages[-1]["more_body"] is False
    assert outcomes.only.status == "cancelled"  # nothing says the client got it


async def test_a_resumable_streams_frames_cancelled_by_the_server_are_left_cut_for_the_client_to_resume() -> None:
    async def stored() -> AsyncIterator[bytes]:
        yield FIRST_WORDS.encode()
        await anyio.sleep_forever()

    client = Client()
    response = ResumableStreamResponse(stored(), UIMessageStreamEncoder(), "stream-1", heartbeat=None)
    await cancel_once_streaming(response, client)

    assert client.body == FIRST_WORDS.encode()
    assert all(message.get("more_body", True) for message in client.messages[1:])


async def test_a_send_stuck_while_closing_is_given_up_after_send_timeout() -> None:
    cleanup, outcomes = Cleanup(), Outcomes()
    client = Client(stall_after=2)  # the start and the first words go; the closing frames never do
    response = AssistantStreamResponse(
        create_run(held_run(cleanup)), LineEncoder(), None, send_timeout=0.05, on_finish=outcomes
    )
    await cancel_once_streaming(response, client)

    assert client.lines[-1] != "end:cancelled"
    assert cleanup.ran
    assert outcomes.only.status == "cancelled"


class ShutdownApp:
    """An app under a GracefulShutdown: ``/held`` streams a held run, ``/`` answers at once."""

    def __init__(self, deadline: float) -> None:
        self.shutdown = GracefulShutdown(deadline=deadline)
        self.cleanup, self.outcomes = Cleanup(), Outcomes()

        async def held(request: Request) -> Response:
            return UIMessageStreamResponse(create_run(held_run(self.cleanup)), heartbeat=None, on_finish=self.outcomes)

        async def plain(request: Request) -> Response:
            return PlainTextResponse("ok")

        self.app = Starlette(
            routes=[Route("/held", held, methods=["POST"]), Route("/", plain)], middleware=[self.shutdown.middleware]
        )

    async def request(self, path: str, client: Client) -> None:
        scope = {**SCOPE, "method": "POST" if path == "/held" else "GET", "path": path, "headers": []}
        await self.app(scope, client.receive, client.send)


#: How the UI message stream ends a cancelled run.
UI_CLOSING_FRAMES = b'data: {"type":"abort"}\n\ndata: [DONE]\n\n'


async def test_after_begin_new_requests_get_503_and_a_running_stream_ends_at_the_deadline() -> None:
    served = ShutdownApp(deadline=0.05)
    client, late = Client(), Client()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(served.request, "/held", client)
            await client.wait_for(lambda: FIRST_WORDS.encode() in client.body)
            served.shutdown.begin()
            assert served.shutdown.began
            await served.request("/", late)

    assert client.body.endswith(UI_CLOSING_FRAMES)
    assert client.messages[-1]["more_body"] is False
    assert served.cleanup.ran
    assert served.outcomes.only.status == "cancelled"
    assert late.messages[0]["status"] == 503
    assert (b"connection", b"close") in late.messages[0]["headers"]
    assert late.body == b'{"error":"the server is shutting down"}'


async def test_requests_before_begin_are_served() -> None:
    served = ShutdownApp(deadline=0.05)
    client = Client()
    with anyio.fail_after(10):
        await served.request("/", client)
    assert client.messages[0]["status"] == 200
    assert not served.shutdown.began


async def test_the_lifespan_ends_by_ending_the_running_streams() -> None:
    served = ShutdownApp(deadline=0.05)
    client = Client()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            async with served.shutdown.lifespan(served.app):
                tg.start_soon(served.request, "/held", client)
                await client.wait_for(lambda: FIRST_WORDS.encode() in client.body)
            assert served.shutdown.began
            assert client.body.endswith(UI_CLOSING_FRAMES)
            assert served.cleanup.ran


async def test_a_deadline_must_be_positive_seconds() -> None:
    with pytest.raises(ValueError, match="deadline must be a positive number of seconds"):
        GracefulShutdown(deadline=0)


# -- under real servers -----------------------------------------------------------------------
# The servers' stacks are what is tested; the test's own HTTP client runs on asyncio only.

#: The servers' graceful timeout (http_servers.launch) and the shutdown app's deadline, in seconds.
GRACEFUL_TIMEOUT, DEADLINE = 1.0, 0.5
#: Seconds the test gives a server to end a held stream and exit, on a busy machine.
SERVER_BOUND = 20.0


class HeldStream:
    """A held run streamed by a server, read as it comes."""

    def __init__(self, server: Server, client: httpx.AsyncClient, response: httpx.Response) -> None:
        self.server, self.client = server, client
        self._pieces = response.aiter_raw()
        self.body = b""

    async def read_to_the_end(self) -> float:
        """Read the rest of the body; how many seconds that took."""
        started = anyio.current_time()
        async for piece in self._pieces:
            self.body += piece
        return anyio.current_time() - started

    def assert_ended_cancelled(self) -> None:
        assert self.body.endswith(UI_CLOSING_FRAMES), self.body
        log = self.server.log()
        assert "cleanup ran" in log, log
        assert "outcome: cancelled" in log, log


@contextlib.asynccontextmanager
async def held_stream(stack: str) -> AsyncIterator[HeldStream]:
    """The shutdown app served by ``stack`` (its deadline 0.5 s), streaming a held run that sent its first words."""
    app = "http_servers.shutdown_app:app"
    with Server(stack, app, env={"SHUTDOWN_DEADLINE": str(DEADLINE)}) as server, server.showing_log():
        async with (
            httpx.AsyncClient(base_url=server.url) as client,
            client.stream("POST", "/held/ui-message-stream") as response,
        ):
            assert response.status_code == 200
            held = HeldStream(server, client, response)
            with anyio.fail_after(SERVER_BOUND):
                while FIRST_WORDS.encode() not in held.body:
                    held.body += await anext(held._pieces)
            yield held


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("stack", STACKS)
async def test_sigterm_ends_a_stream_in_flight_with_its_closing_frames(stack: str) -> None:
    """The server cancels the stream at the end of its graceful timeout; the stream writes its closing frames."""
    async with held_stream(stack) as held:
        os.kill(held.server.pid, signal.SIGTERM)
        with anyio.fail_after(SERVER_BOUND):
            assert await held.read_to_the_end() >= GRACEFUL_TIMEOUT
        held.server.wait_exit(SERVER_BOUND)
    held.assert_ended_cancelled()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("stack", STACKS)
async def test_begin_then_sigterm_refuses_new_requests_and_ends_the_stream_at_the_deadline(stack: str) -> None:
    """The pre-stop step, then SIGTERM: 503 for a new request, the stream ends at the deadline, the server exits."""
    async with held_stream(stack) as held:
        with anyio.fail_after(SERVER_BOUND):
            assert (await held.client.post("/drain")).status_code == 204
            refused = await held.client.get("/")
            assert refused.status_code == 503
            assert refused.json() == {"error": "the server is shutting down"}
            assert await held.read_to_the_end() >= DEADLINE - 0.1  # measured from a little after begin()
        os.kill(held.server.pid, signal.SIGTERM)
        held.server.wait_exit(SERVER_BOUND)  # on_finish may print after the body ended: read the log once it exited
    held.assert_ended_cancelled()
