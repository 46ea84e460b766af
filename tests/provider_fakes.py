"""A fake model provider on 127.0.0.1 that replays recorded-shape streams, and what tests observe.

It is a plain ASGI app served by Hypercorn inside the test's own task group
(on asyncio or trio, whichever the test runs on), so the real SDK clients
talk HTTP to it. Each request gets the next scripted reply; the app records
the requests, and notices when a client goes away in the middle of a reply.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import sniffio
from conformance_helpers import adecode_batch, client_view, encode, encoder_for, expected_view
from hypercorn.config import Config

from assistant_stream_ce import (
    AssistantStreamChunk,
    ErrorChunk,
    ReasoningDeltaChunk,
    Run,
    RunOutcome,
    TextDeltaChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
)

#: The SDKs read their HTTP streams through chains of async generators that they do not close
#: when they stop early (at ``[DONE]``, on an error, on cancellation). On trio, which finalizes
#: such generators itself, that shows as this ResourceWarning; the adapters close the response.
SDK_GENERATORS_ON_TRIO = pytest.mark.filterwarnings(
    r"ignore:Async generator '(openai|anthropic|httpx2?|httpcore2?)\.[^']*' was garbage collected:ResourceWarning"
)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


@dataclass
class Reply:
    """One scripted streamed response: SSE events (``event``, ``data``) in order."""

    events: list[tuple[str | None, str]]
    #: Keep the response open after the events, until the client leaves.
    hang: bool = False
    #: The event that ends an OpenAI stream (Anthropic streams end without one).
    done: str | None = "[DONE]"


@dataclass
class FakeProvider:
    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    #: Set once a reply is hanging (its events are all sent).
    hanging: anyio.Event = field(default_factory=anyio.Event)
    #: Set when a client left before its reply was complete, after the handler's ``finally``.
    disconnected: anyio.Event = field(default_factory=anyio.Event)
    completed: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.paths.append(scope["path"])
        self.requests.append(json.loads(body))
        reply = self.replies[len(self.requests) - 1]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        complete = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, receive, tg.cancel_scope)
                for event, data in reply.events:
                    frame = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
                    await send({"type": "http.response.body", "body": frame.encode(), "more_body": True})
                if reply.hang:
                    self.hanging.set()
                    await anyio.sleep_forever()
                end = f"data: {reply.done}\n\n" if reply.done else ""
                await send({"type": "http.response.body", "body": end.encode(), "more_body": False})
                complete = True
                tg.cancel_scope.cancel()
        finally:
            if complete:
                self.completed += 1
            else:
                self.disconnected.set()

    async def _watch(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()


@asynccontextmanager
async def serving(app: FakeProvider) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port for the duration of the block; yields its base URL."""
    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve
    else:
        from hypercorn.asyncio import serve  # type: ignore[assignment]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{listener.detach()}"]
    config.graceful_timeout = 1.0
    config.accesslog = None
    stop = anyio.Event()
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(app, config, shutdown_trigger=stop.wait, mode="asgi"))  # type: ignore[arg-type]
        try:
            yield f"http://127.0.0.1:{port}"
        except Exception as exc:  # shut the server down cleanly first (cancelling it breaks Hypercorn)
            failure = exc
        finally:
            stop.set()
    if failure is not None:
        raise failure


# -- what the tests observe -----------------------------------------------------------------------


class Tools:
    """Tool functions; Lisbon's lookup finishes after Porto's, to show results keep call order."""

    def __init__(self) -> None:
        self.porto_done = anyio.Event()
        self.calls: list[tuple[str, str]] = []  # in the order the functions finished

    async def get_weather(self, city: str) -> dict[str, Any]:
        if city == "Lisbon":
            await self.porto_done.wait()
            self.calls.append(("get_weather", city))
            return {"city": city, "celsius": 21, "sky": "sunny"}
        self.porto_done.set()
        self.calls.append(("get_weather", city))
        return {"city": city, "celsius": 18, "sky": "cloudy"}

    async def local_time(self, zone: str) -> str:
        self.calls.append(("local_time", zone))
        if zone.startswith("Mars/"):
            raise ValueError(f"unknown time zone {zone!r}")
        return "14:05"

    def functions(self) -> dict[str, Any]:
        return {"get_weather": self.get_weather, "local_time": self.local_time}


async def collect(run: Any, chunks: list[AssistantStreamChunk] | None = None) -> list[AssistantStreamChunk]:
    """Every chunk of the run (also into ``chunks``, which keeps them if the run raises)."""
    chunks = [] if chunks is None else chunks
    async with run as stream:
        async for chunk in stream:
            chunks.append(chunk)
    return chunks


def trace_of(chunks: list[AssistantStreamChunk]) -> list[tuple[Any, ...]]:
    """The chunks with consecutive deltas of one part joined (they may coalesce either way)."""
    trace: list[tuple[Any, ...]] = []
    for chunk in chunks:
        match chunk:
            case TextDeltaChunk() | ReasoningDeltaChunk():
                kind, value = (
                    ("text", chunk.text_delta)
                    if isinstance(chunk, TextDeltaChunk)
                    else ("reasoning", chunk.reasoning_delta)
                )
                if trace and trace[-1][0] == kind:
                    trace[-1] = (kind, trace[-1][1] + value)
                else:
                    trace.append((kind, value))
            case ToolCallDeltaChunk():
                if trace and trace[-1][:2] == ("args", chunk.tool_call_id):
                    trace[-1] = ("args", chunk.tool_call_id, trace[-1][2] + chunk.args_text_delta)
                else:
                    trace.append(("args", chunk.tool_call_id, chunk.args_text_delta))
            case ToolCallBeginChunk():
                trace.append(("begin", chunk.tool_call_id, chunk.tool_name))
            case ToolCallArgsFinishChunk():
                trace.append(("finish", chunk.tool_call_id))
            case ToolResultChunk():
                trace.append(("result", chunk.tool_call_id, chunk.result, chunk.is_error))
            case ErrorChunk():
                trace.append(("error", chunk.error))
            case _:
                trace.append((chunk.type,))
    return trace


def check_call_invariants(trace: list[tuple[Any, ...]]) -> None:
    """Per call: begin, argument deltas, finish, one result; results in the order the calls began."""
    begun = [entry[1] for entry in trace if entry[0] == "begin"]
    results = [entry[1] for entry in trace if entry[0] == "result"]
    assert results == begun
    for call_id in begun:
        kinds = [entry[0] for entry in trace if len(entry) > 1 and entry[1] == call_id and entry[0] != "text"]
        assert kinds[0] == "begin"
        assert kinds[-2:] == ["finish", "result"]
        assert set(kinds[1:-2]) <= {"args"}


# -- recorded shapes -------------------------------------------------------------------------------


def openai_chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> tuple[None, str]:
    """One ``chat.completion.chunk`` as OpenAI streams it."""
    chunk: dict[str, Any] = {
        "id": extra.pop("id", "chatcmpl-AbC123"),
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    chunk.update(extra)
    return None, json.dumps(chunk)


def openai_tool_call(index: int, call_id: str, name: str, arguments: list[str]) -> list[tuple[None, str]]:
    """The deltas of one streamed tool call: id and name first, then the arguments in pieces."""
    first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return [openai_chunk({"tool_calls": [first]})] + [
        openai_chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}) for piece in arguments
    ]


def anthropic_event(type: str, **fields: Any) -> tuple[str, str]:
    """One server-sent event of an Anthropic message stream."""
    return type, json.dumps({"type": type, **fields})


def anthropic_message(blocks: list[list[tuple[str, str]]], stop_reason: str, message_id: str) -> list[tuple[str, str]]:
    """A whole streamed message around its content blocks' events."""
    start = anthropic_event(
        "message_start",
        message={
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-test-model",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 472, "output_tokens": 2},
        },
    )
    return [
        start,
        *[event for block in blocks for event in block],
        anthropic_event("ping"),
        anthropic_event(
            "message_delta", delta={"stop_reason": stop_reason, "stop_sequence": None}, usage={"output_tokens": 89}
        ),
        anthropic_event("message_stop"),
    ]


def anthropic_block(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One content block: its start, its deltas, its stop."""
    return [
        anthropic_event("content_block_start", index=index, content_block=start),
        *[anthropic_event("content_block_delta", index=index, delta=delta) for delta in deltas],
        anthropic_event("content_block_stop", index=index),
    ]


def anthropic_tool_use(index: int, call_id: str, name: str, pieces: list[str]) -> list[tuple[str, str]]:
    return anthropic_block(
        index,
        {"type": "tool_use", "id": call_id, "name": name, "input": {}},
        [{"type": "input_json_delta", "partial_json": piece} for piece in ["", *pieces]],
    )


def anthropic_text(index: int, pieces: list[str]) -> list[tuple[str, str]]:
    return anthropic_block(index, {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in pieces])


async def check_clients_decode(chunks: list[AssistantStreamChunk], outcome: RunOutcome) -> None:
    """Encode the run in each wire format the JS clients read; each client shows what was sent."""
    formats = ("data-stream", "assistant-transport", "ui-message-stream")
    bodies = [(fmt, encode(encoder_for(fmt), chunks, outcome.status)) for fmt in formats]
    decoded = await adecode_batch(bodies)
    for fmt, shown in zip(formats, decoded, strict=True):
        assert client_view(fmt, shown) == expected_view(fmt, outcome.message, outcome.status), fmt


async def leave_at_first_tool_args(run: Run, form: str = "async for") -> None:
    """Read ``run`` until the first tool-argument delta, then go away, as a client that hangs up."""
    if form == "async with":
        async with run as chunks:
            async for chunk in chunks:
                if isinstance(chunk, ToolCallDeltaChunk):
                    break
        return
    async for chunk in run:
        if isinstance(chunk, ToolCallDeltaChunk):
            break
    await run.aclose()
