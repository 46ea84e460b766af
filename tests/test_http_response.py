"""AssistantStreamResponse driven as a plain ASGI app, in process, on asyncio and trio.

The ASGI ``receive``/``send`` here are scripted: the test decides when the
client disconnects, when a send fails, and when a send never returns. A
small line encoder stands in for the wire formats (each has its own tests);
what is checked is what the response does with any encoder.
"""

from __future__ import annotations

import gc
import logging
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import msgspec
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    DataStreamEncoder,
    DataStreamResponse,
    RunController,
    RunOutcome,
    TextDeltaChunk,
    ToolCall,
    create_run,
)
from assistant_stream_ce.resumable import ResumableStreamResponse
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse
from assistant_stream_ce.serialization.stream_encoder import FinishStatus, FrameWriter, StreamEncoder

pytestmark = pytest.mark.anyio

Message = dict[str, Any]


class LineWriter:
    """``<json chunk>\\n`` per chunk, ``end:<status>\\n`` once at the end."""

    def __init__(self) -> None:
        self.finished = False

    def encode(self, chunk: AssistantStreamChunk) -> bytes:
        return b"" if self.finished else msgspec.json.encode(chunk) + b"\n"

    def finish(self, status: FinishStatus) -> bytes:
        if self.finished:
            return b""
        self.finished = True
        return f"end:{status}\n".encode()


class LineEncoder(StreamEncoder):
    def get_media_type(self) -> str:
        return "application/x-lines"

    def get_headers(self) -> dict[str, str]:
        return {"X-Lines": "v1"}

    def get_keepalive_token(self) -> str | None:
        return "\n"

    def open(self) -> FrameWriter:
        return LineWriter()


class LegacyEncoder(StreamEncoder):
    """A 0.0.36-style encoder: only ``encode_stream``, which ends the stream itself."""

    def get_media_type(self) -> str:
        return "text/plain"

    async def encode_stream(self, stream: Any) -> AsyncIterator[str]:
        async for chunk in stream:
            yield chunk.type + "\n"
        yield "done\n"


class Client:
    """A scripted ASGI peer: records what was sent; disconnects or stalls on request."""

    def __init__(self, *, fail_send_after: int | None = None, stall_after: int | None = None) -> None:
        self.messages: list[Message] = []
        self.disconnected = anyio.Event()
        self.fail_send_after = fail_send_after
        self.stall_after = stall_after
        self.new_message = anyio.Event()

    async def receive(self) -> Message:
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.fail_send_after is not None and len(self.messages) >= self.fail_send_after:
            raise OSError("connection reset")
        if self.stall_after is not None and len(self.messages) >= self.stall_after:
            await anyio.sleep_forever()
        self.messages.append(message)
        self.new_message.set()
        self.new_message = anyio.Event()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")

    @property
    def lines(self) -> list[str]:
        return self.body.decode().splitlines()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self.new_message.wait()


async def serve(response: AssistantStreamResponse, client: Client) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}
    with anyio.fail_after(10):
        await response(scope, client.receive, client.send)


class Outcomes:
    def __init__(self) -> None:
        self.seen: list[RunOutcome] = []

    def __call__(self, outcome: RunOutcome) -> None:
        self.seen.append(outcome)

    @property
    def only(self) -> RunOutcome:
        assert len(self.seen) == 1
        return self.seen[0]


def text_run(words: list[str]) -> Callable[[RunController], Awaitable[None]]:
    async def callback(controller: RunController) -> None:
        for word in words:
            controller.append_text(word)
            await anyio.lowlevel.checkpoint()

    return callback


# -- a complete stream ------------------------------------------------------------


async def test_streams_every_chunk_then_one_terminal_frame() -> None:
    client, outcomes = Client(), Outcomes()
    response = AssistantStreamResponse(create_run(text_run(["a", "b", "c"])), LineEncoder(), on_finish=outcomes)
    await serve(response, client)

    start = client.messages[0]
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/x-lines"
    assert headers[b"x-lines"] == b"v1"
    assert headers[b"cache-control"] == b"no-cache"
    assert client.messages[-1] == {"type": "http.response.body", "body": b"end:completed\n", "more_body": False}
    assert all(m["more_body"] for m in client.messages[1:-1])
    chunks = [msgspec.json.decode(line) for line in client.lines[:-1]]
    assert "".join(c["text_delta"] for c in chunks) == "abc"
    assert outcomes.only.status == "completed"
    assert outcomes.only.message.text == "abc"


async def test_plain_async_iterable_is_closed_inside_the_response() -> None:
    closed = anyio.Event()

    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        try:
            yield TextDeltaChunk("x")
            yield TextDeltaChunk("y")
        finally:
            closed.set()

    client, outcomes = Client(), Outcomes()
    await serve(AssistantStreamResponse(chunks(), LineEncoder(), on_finish=outcomes), client)
    assert closed.is_set()
    assert client.lines[-1] == "end:completed"
    assert outcomes.only.message.text == "xy"


async def test_headers_from_the_caller_override_defaults() -> None:
    response = AssistantStreamResponse(
        create_run(text_run([])), LineEncoder(), headers={"Cache-Control": "no-store", "X-Run": "7"}, status_code=201
    )
    client = Client()
    await serve(response, client)
    assert client.messages[0]["status"] == 201
    headers = client.messages[0]["headers"]
    assert (b"cache-control", b"no-store") in headers
    assert (b"cache-control", b"no-cache") not in headers
    assert (b"x-run", b"7") in headers


async def test_a_response_streams_once() -> None:
    response = AssistantStreamResponse(create_run(text_run(["a"])), LineEncoder())
    await serve(response, Client())
    with pytest.raises(RuntimeError, match="once"):
        await serve(response, Client())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heartbeat": -1}, "heartbeat"),
        ({"heartbeat": float("nan")}, "heartbeat"),
        ({"send_timeout": 0}, "send_timeout"),
        ({"send_timeout": None}, "send_timeout"),
        ({"grace_period": float("inf")}, "grace_period"),
    ],
)
async def test_bad_options_are_rejected_when_the_response_is_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AssistantStreamResponse(create_run(text_run([])), LineEncoder(), **options)


# -- errors ---------------------------------------------------------------------------


async def test_a_failing_run_ends_with_its_error_then_the_error_terminal_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def callback(controller: RunController) -> None:
        controller.append_text("partial")
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("model unavailable")

    client, outcomes = Client(), Outcomes()
    with caplog.at_level(logging.ERROR, logger="assistant_stream_ce"):
        await serve(AssistantStreamResponse(create_run(callback), LineEncoder(), on_finish=outcomes), client)

    *frames, last = client.lines
    assert last == "end:error"
    assert [msgspec.json.decode(f) for f in frames][-1] == {"type": "error", "error": "model unavailable"}
    assert sum(f.startswith("end:") for f in client.lines) == 1
    assert outcomes.only.status == "error"
    assert isinstance(outcomes.only.error, RuntimeError)
    assert outcomes.only.message.errors == ["model unavailable"]
    assert any(r.exc_info and r.exc_info[1] is outcomes.only.error for r in caplog.records)


async def test_a_failing_iterable_gets_an_error_frame_made_for_it(caplog: pytest.LogCaptureFixture) -> None:
    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        yield TextDeltaChunk("x")
        raise ValueError("bad source")

    client, outcomes = Client(), Outcomes()
    with caplog.at_level(logging.ERROR, logger="assistant_stream_ce"):
        await serve(AssistantStreamResponse(chunks(), LineEncoder(), on_finish=outcomes), client)
    assert [msgspec.json.decode(line) for line in client.lines[:-1]] == [
        {"type": "text-delta", "text_delta": "x", "parent_id": None},
        {"type": "error", "error": "bad source"},
    ]
    assert client.lines[-1] == "end:error"
    assert outcomes.only.status == "error"
    assert outcomes.only.message.errors == ["bad source"]


class Abort(BaseException):
    """An application's own BaseException: neither an Exception nor a cancellation."""


def aborting_stream(kind: str) -> Any:
    """A run whose callback, or a plain iterable that, writes "x" and then raises :class:`Abort`."""

    async def callback(controller: RunController) -> None:
        controller.append_text("x")
        await anyio.lowlevel.checkpoint()
        raise Abort("stop")

    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        yield TextDeltaChunk("x")
        raise Abort("stop")

    return create_run(callback) if kind == "run" else chunks()


@pytest.mark.parametrize("kind", ["run", "iterable"])
async def test_a_base_exception_of_the_stream_ends_the_body_then_propagates_through_the_response(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SystemExit, KeyboardInterrupt, an application's own: the client gets a well-formed end, the server it."""
    client, outcomes = Client(), Outcomes()
    with caplog.at_level(logging.ERROR, logger="assistant_stream_ce"), pytest.raises(Abort, match="stop"):
        await serve(AssistantStreamResponse(aborting_stream(kind), LineEncoder(), on_finish=outcomes), client)
    assert [msgspec.json.decode(line) for line in client.lines[:-1]] == [
        {"type": "text-delta", "text_delta": "x", "parent_id": None},
        {"type": "error", "error": "stop"},
    ]
    assert client.lines[-1] == "end:error"
    assert outcomes.only.status == "error"


async def test_a_base_exception_of_stored_frames_propagates_through_the_response() -> None:
    """A resumed reader's frames are sent by a task of the backend's: what they raise still reaches the server."""

    async def stored() -> AsyncIterator[bytes]:
        yield b'0:"x"\n'
        raise Abort("stop")

    client = Client()
    with pytest.raises(Abort, match="stop"):
        await serve(ResumableStreamResponse(stored(), DataStreamEncoder(), "s"), client)
    assert client.body == b'0:"x"\n'


async def test_on_finish_that_raises_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def on_finish(outcome: RunOutcome) -> None:
        raise RuntimeError("database down")

    with caplog.at_level(logging.ERROR, logger="assistant_stream_ce"):
        await serve(AssistantStreamResponse(create_run(text_run(["a"])), LineEncoder(), on_finish=on_finish), Client())
    assert "on_finish raised" in caplog.text


# -- the client goes away -------------------------------------------------------------


class Cleanup:
    """Which finally blocks of a run ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.cancelled_seen = False


def endless_run_with_tools(cleanup: Cleanup) -> Callable[[RunController], Awaitable[None]]:
    async def tool(call: ToolCall) -> str:
        try:
            await call.append_args_text('{"q": ')
            await anyio.sleep_forever()
        finally:
            cleanup.ran.append(call.tool_call_id)
        return "unreachable"

    async def callback(controller: RunController) -> None:
        try:
            controller.start_tool_call("search", tool, tool_call_id="t1")
            controller.start_tool_call("search", tool, tool_call_id="t2")
            while True:
                controller.append_text(".")
                await anyio.sleep(0.001)
        finally:
            cleanup.cancelled_seen = controller.is_cancelled
            cleanup.ran.append("callback")

    return callback


async def test_disconnect_cancels_the_run_and_reports_the_partial_message() -> None:
    client, outcomes, cleanup = Client(), Outcomes(), Cleanup()
    response = AssistantStreamResponse(create_run(endless_run_with_tools(cleanup)), LineEncoder(), on_finish=outcomes)
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, response, client)
        await client.wait_for(lambda: client.body.count(b'"text-delta"') >= 3)
        client.disconnected.set()
    assert sorted(cleanup.ran) == ["callback", "t1", "t2"]
    assert cleanup.cancelled_seen
    outcome = outcomes.only
    assert outcome.status == "cancelled"
    assert outcome.message.text
    assert {call.tool_call_id for call in outcome.message.tool_calls} <= {"t1", "t2"}
    assert client.body.decode().count("end:") == 0


@pytest.mark.parametrize("how", ["disconnected", "send fails"])
async def test_a_client_gone_before_the_first_frame_ends_the_run_at_once(how: str) -> None:
    """The run's producer may not have started yet: it is cancelled as it starts, not after the grace period."""
    client, outcomes, cleanup = Client(fail_send_after=0 if how == "send fails" else None), Outcomes(), Cleanup()
    if how == "disconnected":
        client.disconnected.set()
    run = create_run(endless_run_with_tools(cleanup), grace_period=60)
    response = AssistantStreamResponse(run, LineEncoder(), on_finish=outcomes, grace_period=60)
    with anyio.fail_after(5):
        await serve(response, client)
    assert outcomes.only.status == "cancelled"
    # Cancelled as it starts or at its first wait; whatever it had started was cleaned up.
    assert sorted(cleanup.ran) in ([], ["callback"], ["callback", "t1", "t2"])
    assert b"end:" not in client.body


async def test_a_failed_send_is_a_disconnect() -> None:
    client, outcomes, cleanup = Client(fail_send_after=4), Outcomes(), Cleanup()
    response = AssistantStreamResponse(create_run(endless_run_with_tools(cleanup)), LineEncoder(), on_finish=outcomes)
    await serve(response, client)
    assert sorted(cleanup.ran) == ["callback", "t1", "t2"]
    assert outcomes.only.status == "cancelled"
    assert len(client.messages) == 4


async def test_a_client_that_stops_reading_is_dropped_after_send_timeout() -> None:
    client, outcomes, cleanup = Client(stall_after=3), Outcomes(), Cleanup()
    response = AssistantStreamResponse(
        create_run(endless_run_with_tools(cleanup)), LineEncoder(), on_finish=outcomes, send_timeout=0.05
    )
    await serve(response, client)
    assert sorted(cleanup.ran) == ["callback", "t1", "t2"]
    assert outcomes.only.status == "cancelled"


async def test_a_client_that_stops_reading_before_the_last_frame_is_dropped_after_send_timeout() -> None:
    class StallsOnTheLastFrame(Client):
        async def send(self, message: Message) -> None:
            if message["type"] == "http.response.body" and not message["more_body"]:
                await anyio.sleep_forever()
            await super().send(message)

    client, outcomes = StallsOnTheLastFrame(), Outcomes()
    response = AssistantStreamResponse(
        create_run(text_run(["a", "b"])), LineEncoder(), on_finish=outcomes, send_timeout=0.05
    )
    await serve(response, client)
    assert outcomes.only.status == "cancelled"
    assert "end:completed" not in client.lines


class ReportsTheEndInsideTheLastSend(Client):
    """A server that reports ``http.disconnect`` from inside the send of the last frame (hypercorn does,
    once the body is complete), then returns from that send, or never does (``stall``)."""

    def __init__(self, *, stall: bool) -> None:
        super().__init__()
        self.stall = stall

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message["more_body"]:
            self.disconnected.set()
            for _ in range(3):
                await anyio.lowlevel.checkpoint()  # the response sees the disconnect while this send is under way
            if self.stall:
                await anyio.sleep_forever()
        await super().send(message)


@pytest.mark.parametrize("stall", [False, True], ids=["returns", "stalls"])
async def test_a_disconnect_reported_inside_the_last_send_does_not_cut_it(stall: bool) -> None:
    client, outcomes = ReportsTheEndInsideTheLastSend(stall=stall), Outcomes()
    response = AssistantStreamResponse(
        create_run(text_run(["a", "b"])), LineEncoder(), on_finish=outcomes, send_timeout=0.05
    )
    await serve(response, client)
    if stall:  # still dropped after send_timeout
        assert outcomes.only.status == "cancelled"
        assert "end:completed" not in client.lines
    else:
        assert outcomes.only.status == "completed"
        assert client.lines[-1] == "end:completed"


async def test_a_send_the_server_shields_still_times_out_the_run() -> None:
    """Some servers (hypercorn on trio) shield their socket writes: the run is cancelled on time anyway."""
    release = anyio.Event()
    outcomes, cleanup = Outcomes(), Cleanup()

    class ShieldingClient(Client):
        async def send(self, message: Message) -> None:
            if len(self.messages) >= 3:
                with anyio.CancelScope(shield=True):
                    await release.wait()
            await super().send(message)

    client = ShieldingClient()

    def on_finish(outcome: RunOutcome) -> None:
        outcomes(outcome)
        release.set()  # the run was cancelled while the send was still stuck: now let it return

    response = AssistantStreamResponse(
        create_run(endless_run_with_tools(cleanup)), LineEncoder(), on_finish=on_finish, send_timeout=0.05
    )
    await serve(response, client)
    assert sorted(cleanup.ran) == ["callback", "t1", "t2"]
    assert outcomes.only.status == "cancelled"


class CountsReceives(Client):
    """Counts the calls of ``receive`` and how many are still waiting; a receive takes a few turns of
    the event loop to leave (as a server's may), so that one left behind is seen."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls = self.waiting = 0

    async def receive(self) -> Message:
        self.calls += 1
        self.waiting += 1
        try:
            return await super().receive()
        finally:
            with anyio.CancelScope(shield=True):
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()
            self.waiting -= 1


ENDINGS = ["completed", "completed, not a run", "disconnect", "send fails", "send_timeout", "cancelled from outside"]


@pytest.mark.parametrize("ending", ENDINGS)
async def test_the_response_stops_waiting_on_receive_before_it_returns(ending: str) -> None:
    """The disconnect watch is a task of the response's: however the response ends, that task has ended
    (its wait on ``receive`` left) by the time the response returns, and it watched while it streamed."""
    client = CountsReceives(
        fail_send_after=3 if ending == "send fails" else None, stall_after=3 if ending == "send_timeout" else None
    )
    cleanup = Cleanup()
    stream: AsyncIterator[AssistantStreamChunk]
    if ending == "completed, not a run":

        async def chunks() -> AsyncIterator[AssistantStreamChunk]:
            for word in ["a", "b", "c"]:
                yield TextDeltaChunk(text_delta=word)
                await anyio.lowlevel.checkpoint()

        stream = chunks()
    else:
        stream = create_run(text_run(["a", "b", "c"]) if ending == "completed" else endless_run_with_tools(cleanup))
    response = AssistantStreamResponse(stream, LineEncoder(), send_timeout=0.05)
    returned = False
    async with anyio.create_task_group() as tg:

        async def serve_then_count() -> None:
            nonlocal returned
            await serve(response, client)
            returned = True
            assert client.waiting == 0

        tg.start_soon(serve_then_count)
        if ending in ("disconnect", "cancelled from outside"):
            await client.wait_for(lambda: client.body.count(b'"text-delta"') >= 3)
            if ending == "disconnect":
                client.disconnected.set()
            else:
                tg.cancel_scope.cancel()
    assert returned is (ending != "cancelled from outside")
    assert client.calls >= 1
    assert client.waiting == 0
    if ending.startswith("completed"):
        assert client.lines[-1] == "end:completed"


async def test_disconnect_during_a_plain_iterable_closes_it() -> None:
    closed = anyio.Event()
    client = Client()

    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        try:
            while True:
                yield TextDeltaChunk("x")
                await anyio.sleep(0.001)
        finally:
            closed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, AssistantStreamResponse(chunks(), LineEncoder()), client)
        await client.wait_for(lambda: len(client.lines) >= 2)
        client.disconnected.set()
    assert closed.is_set()


async def test_a_run_error_while_a_frame_is_being_written_then_a_disconnect_is_reported_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client never gets the error frame: the outcome is still the error, and it is logged."""
    stalled, failing = anyio.Event(), anyio.Event()
    boom = RuntimeError("model unavailable")

    class StallsOnTheFirstFrame(Client):
        async def send(self, message: Message) -> None:
            if message["type"] == "http.response.body":
                stalled.set()
                await anyio.sleep_forever()
            await super().send(message)

    async def callback(controller: RunController) -> None:
        controller.append_text("partial")
        await stalled.wait()
        failing.set()
        raise boom

    client, run_outcomes, outcomes = StallsOnTheFirstFrame(), Outcomes(), Outcomes()
    response = AssistantStreamResponse(create_run(callback, on_finish=run_outcomes), LineEncoder(), on_finish=outcomes)
    with caplog.at_level(logging.ERROR, logger="assistant_stream_ce"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve, response, client)
            await failing.wait()  # the callback raised while "partial" was being sent
            client.disconnected.set()
    assert client.body == b""
    for outcome in (outcomes.only, run_outcomes.only):
        assert (outcome.status, outcome.error) == ("error", boom)
        assert outcome.message.text == ""
    assert any(r.exc_info and r.exc_info[1] is boom for r in caplog.records)


@pytest.mark.parametrize("fail_send_after", [2, 3, 5])
async def test_the_runs_on_finish_message_holds_only_what_the_client_received(fail_send_after: int) -> None:
    """A chunk whose send failed is not in the run's message either, however much was coalesced into it."""

    async def callback(controller: RunController) -> None:
        for i in range(1000):
            controller.append_text(f"{i} ")
            if i % 7 == 0:
                await anyio.lowlevel.checkpoint()

    client, run_outcomes, outcomes = Client(fail_send_after=fail_send_after), Outcomes(), Outcomes()
    response = AssistantStreamResponse(create_run(callback, on_finish=run_outcomes), LineEncoder(), on_finish=outcomes)
    await serve(response, client)
    sent = "".join(msgspec.json.decode(line)["text_delta"] for line in client.lines)
    assert sent
    assert outcomes.only.status == run_outcomes.only.status == "cancelled"
    assert outcomes.only.message.text == sent
    assert run_outcomes.only.message.text == sent


async def test_the_runs_on_finish_message_of_a_completed_response_holds_every_chunk() -> None:
    client, run_outcomes, outcomes = Client(), Outcomes(), Outcomes()
    run = create_run(text_run(["a", "b", "c"]), on_finish=run_outcomes)
    await serve(AssistantStreamResponse(run, LineEncoder(), on_finish=outcomes), client)
    assert client.lines[-1] == "end:completed"
    for outcome in (outcomes.only, run_outcomes.only):
        assert (outcome.status, outcome.message.text) == ("completed", "abc")


# -- one owner of the outcome ----------------------------------------------------------


class StallsOnTheLastFrame(Client):
    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message["more_body"]:
            await anyio.sleep_forever()
        await super().send(message)


async def test_the_run_and_the_response_get_one_outcome_when_the_last_frame_never_leaves() -> None:
    """The run's own hook is told what the response's is: the end never reached the client, so cancelled."""
    client, run_outcomes, outcomes = StallsOnTheLastFrame(), Outcomes(), Outcomes()
    run = create_run(text_run(["a", "b"]), on_finish=run_outcomes)
    await serve(AssistantStreamResponse(run, LineEncoder(), on_finish=outcomes, send_timeout=0.05), client)
    assert "end:completed" not in client.lines
    assert run_outcomes.only is outcomes.only
    assert (outcomes.only.status, outcomes.only.message.text) == ("cancelled", "ab")


def chunks_of(words: list[str], error: Exception | None = None) -> Callable[[], AsyncIterator[AssistantStreamChunk]]:
    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        for word in words:
            yield TextDeltaChunk(word)
            await anyio.lowlevel.checkpoint()
        if error is not None:
            raise error

    return chunks


def failing_run(words: list[str], error: Exception) -> Callable[[RunController], Awaitable[None]]:
    async def callback(controller: RunController) -> None:
        await text_run(words)(controller)
        raise error

    return callback


@pytest.mark.parametrize(
    "client", ["reads all", "send fails", "stalls on the last frame", "fails"], ids=lambda name: name.replace(" ", "-")
)
async def test_a_plain_iterable_gets_the_outcome_a_run_of_the_same_chunks_gets(client: str) -> None:
    """The stream a response sends owns its outcome as a run does: one rule for the status and the message."""
    words = ["a", "b", "c"]
    boom = RuntimeError("boom") if client == "fails" else None
    seen: dict[str, RunOutcome] = {}
    for kind in ("run", "iterable"):
        peer = {
            "reads all": Client,
            "fails": Client,
            "send fails": lambda: Client(fail_send_after=3),
            "stalls on the last frame": StallsOnTheLastFrame,
        }[client]()
        outcomes = Outcomes()
        if kind == "run":
            stream: Any = create_run(failing_run(words, boom) if boom else text_run(words))
        else:
            stream = chunks_of(words, boom)()
        await serve(AssistantStreamResponse(stream, LineEncoder(), on_finish=outcomes, send_timeout=0.05), peer)
        sent = [msgspec.json.decode(line) for line in peer.lines if line.startswith("{")]
        # The message is what reached the client (a run may have coalesced its text into fewer frames).
        assert outcomes.only.message.text == "".join(chunk.get("text_delta", "") for chunk in sent)
        seen[kind] = outcomes.only
    run, iterable = seen["run"], seen["iterable"]
    assert (iterable.status, iterable.error) == (run.status, run.error)
    assert iterable.message.errors == run.message.errors
    expected = {"reads all": "completed", "fails": "error", "send fails": "cancelled"}
    assert run.status == expected.get(client, "cancelled")


# -- heartbeats -----------------------------------------------------------------------


async def test_heartbeats_fill_idle_gaps_only() -> None:
    client, go_on = Client(), anyio.Event()

    async def callback(controller: RunController) -> None:
        controller.append_text("a")
        await go_on.wait()
        controller.append_text("b")

    response = AssistantStreamResponse(create_run(callback), LineEncoder(), heartbeat=0.02)
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, response, client)
        await client.wait_for(lambda: client.body.endswith(b"\n\n\n"))
        go_on.set()
    lines = client.body.decode().split("\n")
    assert lines[0].startswith("{")
    assert lines[-2] == "end:completed"
    assert lines[1:3] == ["", ""]
    assert [msgspec.json.decode(line)["text_delta"] for line in lines if line.startswith("{")] == ["a", "b"]


async def test_a_keepalive_send_that_never_returns_still_times_out_the_run() -> None:
    """The server shields a keepalive that hangs: the next frame waits for it at most send_timeout."""
    outcomes, cleanup, release, stuck = Outcomes(), Cleanup(), anyio.Event(), anyio.Event()

    class StallsOnKeepalive(Client):
        async def send(self, message: Message) -> None:
            if message.get("body") == b"\n":
                stuck.set()
                with anyio.move_on_after(5, shield=True):  # bounded, so that a regression fails instead of hanging
                    await release.wait()
            await super().send(message)

    async def callback(controller: RunController) -> None:
        try:
            controller.append_text("a")
            await stuck.wait()
            controller.append_text("b")  # its frame waits behind the keepalive
            await anyio.sleep_forever()
        finally:
            cleanup.ran.append("callback")

    def on_finish(outcome: RunOutcome) -> None:
        outcomes(outcome)
        release.set()

    client = StallsOnKeepalive()
    response = AssistantStreamResponse(
        create_run(callback), LineEncoder(), heartbeat=0.01, send_timeout=0.1, on_finish=on_finish
    )
    await serve(response, client)
    assert cleanup.ran == ["callback"]
    assert outcomes.only.status == "cancelled"
    assert [line for line in client.lines if line] == [msgspec.json.encode(TextDeltaChunk("a")).decode()]


@pytest.mark.parametrize(
    "options", [{"heartbeat": 0.01}, {"heartbeat": None, "send_timeout": 0.01}], ids=["keepalives", "no-keepalives"]
)
async def test_a_disconnect_in_a_long_silence_is_noticed_after_many_timekeeping_turns(options: dict[str, Any]) -> None:
    """Timekeeping interrupts the wait for ``http.disconnect``: the wait must resume and still see it."""
    outcomes, cleanup, resumed = Outcomes(), Cleanup(), anyio.Event()

    class CountsReceives(Client):
        calls = 0

        async def receive(self) -> Message:
            self.calls += 1
            if self.calls == 4:
                resumed.set()
            return await super().receive()

    async def callback(controller: RunController) -> None:
        try:
            controller.append_text("a")
            await anyio.sleep_forever()  # a model that went silent
        finally:
            cleanup.ran.append("callback")

    client = CountsReceives()
    response = AssistantStreamResponse(create_run(callback), LineEncoder(), on_finish=outcomes, **options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, response, client)
        await resumed.wait()  # three waits were interrupted, the fourth is under way
        client.disconnected.set()
    assert cleanup.ran == ["callback"]
    assert outcomes.only.status == "cancelled"
    assert client.lines[0] == msgspec.json.encode(TextDeltaChunk("a")).decode()
    assert client.lines[-1] != "end:completed"


@pytest.mark.parametrize("heartbeat", [None, False, 0])
async def test_heartbeats_can_be_turned_off(heartbeat: Any) -> None:
    response = AssistantStreamResponse(create_run(text_run(["a"])), LineEncoder(), heartbeat=heartbeat)
    client = Client()
    await serve(response, client)
    assert b"\n\n" not in client.body


# -- encoders with only encode_stream -------------------------------------------------


async def test_an_encoder_with_only_encode_stream_still_streams() -> None:
    client, outcomes = Client(), Outcomes()
    await serve(AssistantStreamResponse(create_run(text_run(["a", "b"])), LegacyEncoder(), on_finish=outcomes), client)
    assert client.lines[-1] == "done"
    assert set(client.lines[:-1]) == {"text-delta"}
    assert outcomes.only.status == "completed"
    assert outcomes.only.message.text == "ab"


async def test_an_encoder_with_only_encode_stream_reports_the_run_error(caplog: pytest.LogCaptureFixture) -> None:
    async def callback(controller: RunController) -> None:
        raise RuntimeError("boom")

    client, outcomes = Client(), Outcomes()
    with caplog.at_level(logging.ERROR, logger="assistant_stream_ce"):
        await serve(AssistantStreamResponse(create_run(callback), LegacyEncoder(), on_finish=outcomes), client)
    assert client.lines == ["error"]
    assert outcomes.only.status == "error"
    assert outcomes.only.message.errors == ["boom"]
    assert isinstance(outcomes.only.error, RuntimeError)


async def test_run_state_starts_from_the_initial_state() -> None:
    async def callback(controller: RunController) -> None:
        controller.append_state_text(["log"], " world")

    outcomes = Outcomes()
    run = create_run(callback, state={"log": "hello"})
    await serve(AssistantStreamResponse(run, LineEncoder(), on_finish=outcomes), Client())
    assert outcomes.only.message.state == {"log": "hello world"}


# -- garbage ----------------------------------------------------------------------------


async def test_a_finished_response_leaves_no_reference_cycles() -> None:
    """Every object of a finished exchange is freed by reference counting, none waits for the collector."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            await serve(AssistantStreamResponse(create_run(text_run(["a", "b"])), LineEncoder()), Client())
        gc.collect()
        ours = [
            obj
            for obj in gc.garbage
            if (isinstance(obj, types.FrameType) and "assistant_stream_ce" in obj.f_code.co_filename)
            or type(obj).__module__.startswith("assistant_stream_ce")
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert ours == []


async def test_the_error_of_a_stream_that_is_not_a_run_is_worded_by_the_responses_hook(anyio_backend: str) -> None:
    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        yield TextDeltaChunk("partial")
        raise ConnectionError("model at 10.1.2.3:8000 refused")

    seen: list[BaseException] = []

    def error_message(exc: BaseException) -> str:
        seen.append(exc)
        return "The model is unavailable."

    client = Client()
    await serve(DataStreamResponse(chunks(), error_message=error_message), client)
    assert client.lines[-2:-1] == ['3:"The model is unavailable."']
    assert b"10.1.2.3" not in client.body
    assert [type(exc) for exc in seen] == [ConnectionError]


async def test_a_broken_hook_of_a_response_falls_back_to_the_default_text(anyio_backend: str) -> None:
    async def chunks() -> AsyncIterator[AssistantStreamChunk]:
        yield TextDeltaChunk("partial")
        raise ValueError("the model is down")

    def error_message(exc: BaseException) -> str:
        raise RuntimeError("a broken hook")

    client = Client()
    await serve(DataStreamResponse(chunks(), error_message=error_message), client)
    assert client.lines[-2:-1] == ['3:"the model is down"']
