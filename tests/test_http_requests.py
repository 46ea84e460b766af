"""Request bodies of the chat clients: typed decoding, and 413/422 with a one-line reason."""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import msgspec
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from assistant_stream_ce import RunController, RunOutcome, create_run
from assistant_stream_ce.chat_request import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_VALUES,
    AddMessageCommand,
    AddToolResultCommand,
    AssistantTransportRequest,
    ChatRequest,
    ChatRequestError,
    DataStreamRequest,
    read_chat_request,
)
from assistant_stream_ce.serialization.assistant_transport import AssistantTransportResponse

pytestmark = pytest.mark.anyio

LIMIT = 2048

# Bodies as the clients send them (assistant-ui's runtimes, AI SDK's DefaultChatTransport).
TRANSPORT_BODY = {
    "commands": [
        {
            "type": "add-message",
            "message": {"role": "user", "parts": [{"type": "text", "text": "Weather in Paris?"}]},
            "parentId": "m0",
            "sourceId": None,
        },
        {
            "type": "add-tool-result",
            "toolCallId": "call_1",
            "toolName": "confirm",
            "result": {"approved": True},
            "isError": False,
        },
    ],
    "state": {"todos": []},
    "system": "Be brief.",
    "tools": {"confirm": {"parameters": {"type": "object"}}},
    "callSettings": {"temperature": 0.2},
    "config": {"modelName": "m"},
    "threadId": "t1",
    "parentId": "m0",
    "temperature": 0.2,  # callSettings are also spread at the top level: ignored
}
DATA_STREAM_BODY = {
    "system": "Be brief.",
    "messages": [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": [{"type": "text", "text": "Look it up"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool-call", "toolCallId": "c1", "toolName": "search", "args": {"q": "x"}}],
        },
        {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "search", "result": 1}]},
    ],
    "tools": {"search": {"description": "Search", "parameters": {"type": "object"}}},
    "unstable_assistantMessageId": "a1",
    "runConfig": {},
    "state": None,
}
USE_CHAT_BODY = {
    "id": "chat-1",
    "messages": [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
        {
            "id": "a1",
            "role": "assistant",
            "parts": [
                {"type": "step-start"},
                {
                    "type": "tool-weather",
                    "toolCallId": "c1",
                    "state": "output-available",
                    "input": {"city": "Paris"},
                    "output": {"temperature": 21},
                },
                {
                    "type": "dynamic-tool",
                    "toolName": "lookup",
                    "toolCallId": "c2",
                    "state": "input-available",
                    "input": {},
                },
                {"type": "data-progress", "id": "p1", "data": {"value": 0.5}},
            ],
            "metadata": {"model": "m"},
        },
    ],
    "trigger": "regenerate-message",
    "messageId": "a1",
}


async def echo(request: Request) -> Response:
    kind = {"transport": AssistantTransportRequest, "data": DataStreamRequest, "chat": ChatRequest}
    body = await read_chat_request(request, kind[request.path_params["kind"]], max_bytes=LIMIT)
    return JSONResponse(msgspec.to_builtins(body))


async def echo_with_limits(request: Request) -> Response:
    """Like ``echo``, with the default size limit and the depth and value limits from the query string."""
    limits = {key: int(value) for key, value in request.query_params.items()}
    body = await read_chat_request(request, AssistantTransportRequest, **limits)
    return JSONResponse(msgspec.to_builtins(body))


routes = [Route("/limits", echo_with_limits, methods=["POST"]), Route("/{kind}", echo, methods=["POST"])]
starlette_app = Starlette(routes=routes)
fastapi_app = FastAPI()
fastapi_app.add_api_route("/limits", echo_with_limits, methods=["POST"])
fastapi_app.add_api_route("/{kind}", echo, methods=["POST"])


@pytest.fixture(params=["starlette", "fastapi"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    app = starlette_app if request.param == "starlette" else fastapi_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


def reason(response: httpx.Response) -> str:
    """The one-line reason, as Starlette (text) or FastAPI (``{"detail": ...}``) writes it."""
    if response.headers["content-type"].startswith("application/json"):
        detail: str = response.json()["detail"]
        return detail
    return response.text


async def test_assistant_transport_commands_decode_typed(client: httpx.AsyncClient) -> None:
    response = await client.post("/transport", json=TRANSPORT_BODY)
    assert response.status_code == 200
    body = msgspec.convert(response.json(), AssistantTransportRequest)
    add, result = body.commands
    assert isinstance(add, AddMessageCommand)
    assert add.type == "add-message"
    assert add.message.parts[0].text == "Weather in Paris?"
    assert add.parent_id == "m0"
    assert isinstance(result, AddToolResultCommand)
    assert (result.tool_call_id, result.result, result.is_error) == ("call_1", {"approved": True}, False)
    assert body.state == {"todos": []}
    assert body.call_settings == {"temperature": 0.2}
    assert body.thread_id == "t1"


async def test_data_stream_messages_decode_typed(client: httpx.AsyncClient) -> None:
    response = await client.post("/data", json=DATA_STREAM_BODY)
    assert response.status_code == 200
    body = msgspec.convert(response.json(), DataStreamRequest)
    assert [m.role for m in body.messages] == ["system", "user", "assistant", "tool"]
    assert body.messages[0].content == "You help."
    call = body.messages[2].content[0]  # type: ignore[index]
    assert (call.type, call.tool_name, call.args) == ("tool-call", "search", {"q": "x"})
    assert body.assistant_message_id == "a1"
    assert response.json()["unstable_assistantMessageId"] == "a1"


async def test_use_chat_ui_messages_decode_typed(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat", json=USE_CHAT_BODY)
    assert response.status_code == 200
    body = msgspec.convert(response.json(), ChatRequest)
    assert (body.id, body.trigger, body.message_id) == ("chat-1", "regenerate-message", "a1")
    user, assistant = body.messages
    assert user.text == "Hi there"
    step, weather, dynamic, data = assistant.parts
    assert step.tool is None
    assert (weather.tool, weather.state, weather.output) == ("weather", "output-available", {"temperature": 21})
    assert (dynamic.tool, dynamic.tool_call_id) == ("lookup", "c2")
    assert (data.type, data.data) == ("data-progress", {"value": 0.5})
    assert assistant.metadata == {"model": "m"}


class Undo(msgspec.Struct, tag="undo", tag_field="type"):
    """An application's own command."""

    steps: int


class RequestWithUndo(AssistantTransportRequest):
    commands: list[AddMessageCommand | AddToolResultCommand | Undo]  # type: ignore[assignment]


def test_a_subclass_adds_custom_commands() -> None:
    body = msgspec.json.decode(b'{"commands": [{"type": "undo", "steps": 2}], "threadId": "t"}', type=RequestWithUndo)
    assert body.commands == [Undo(steps=2)]
    assert body.thread_id == "t"


@pytest.mark.parametrize(
    ("content", "status", "expected"),
    [
        (b'{"messages": [', 422, "invalid request body: Input data was truncated"),
        (b"not json at all", 422, "invalid request body: JSON is malformed"),
        (b'{"messages": [{"id": "m", "role": 7, "parts": []}]}', 422, "Expected `str`, got `int` - at `$.messages[0]"),
        (b'{"messages": [{"id": "m", "role": "robot", "parts": []}]}', 422, "at `$.messages[0].role`"),
        (b'{"id": "chat-1"}', 422, "missing required field `messages`"),
        (b"[]", 422, "Expected `object`, got `array`"),
        (b'{"messages": []}' + b" " * LIMIT, 413, f"request body too large: the limit is {LIMIT} bytes"),
    ],
)
async def test_bad_bodies_get_a_one_line_reason(
    client: httpx.AsyncClient, content: bytes, status: int, expected: str
) -> None:
    response = await client.post("/chat", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert expected in reason(response)
    assert "\n" not in reason(response)
    assert "Traceback" not in response.text


async def test_unknown_commands_are_rejected_with_their_path(client: httpx.AsyncClient) -> None:
    response = await client.post("/transport", json={"commands": [{"type": "zap"}]})
    assert response.status_code == 422
    assert reason(response) == "invalid request body: Invalid value 'zap' - at `$.commands[0].type`"


async def asgi_post(app: Any, headers: list[tuple[bytes, bytes]], pieces: int) -> tuple[int, int]:
    """POST ``pieces`` pieces of 512 bytes to ``app``; the status, and how many pieces it read."""
    read = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b" " * 512, "more_body": read < pieces}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "method": "POST", "path": "/chat", "headers": headers, "query_string": b""}
    await app(scope, receive, send)
    return status, read


@pytest.mark.parametrize("app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
async def test_an_oversize_body_without_content_length_stops_being_read(app: Any) -> None:
    assert await asgi_post(app, [], pieces=100) == (413, LIMIT // 512 + 1)


@pytest.mark.parametrize("app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
async def test_a_lying_content_length_is_caught_while_reading(app: Any) -> None:
    status, _ = await asgi_post(app, [(b"content-length", b"10")], pieces=100)
    assert status == 413


def nested(depth: int) -> bytes:
    """A JSON value of ``depth`` nested arrays and objects, alternating."""
    opening = b"".join(b"[" if level % 2 == 0 else b'{"k":' for level in range(depth))
    closing = b"".join(b"]" if level % 2 == 0 else b"}" for level in reversed(range(depth)))
    return opening + b"1" + closing


def transport_body(state: bytes, **extra: bytes) -> bytes:
    fields = b"".join(b',"' + key.encode() + b'":' + value for key, value in extra.items())
    return b'{"commands":[],"state":' + state + fields + b"}"


async def post(client: httpx.AsyncClient, path: str, content: bytes) -> httpx.Response:
    return await client.post(path, content=content, headers={"content-type": "application/json"})


async def test_nesting_up_to_the_depth_limit_is_accepted(client: httpx.AsyncClient) -> None:
    assert DEFAULT_MAX_DEPTH == 64
    response = await post(client, "/limits", transport_body(nested(DEFAULT_MAX_DEPTH - 1)))
    assert response.status_code == 200
    assert msgspec.json.encode(response.json()["state"]) == nested(DEFAULT_MAX_DEPTH - 1)


@pytest.mark.parametrize(
    "body",
    [
        transport_body(nested(DEFAULT_MAX_DEPTH)),  # the state: one level below the body's own object
        transport_body(b"null", ignored=nested(5000)),  # a field that no struct reads
        transport_body(b"null", system=b'"' + b"[" * 5000 + b'"', ignored=nested(DEFAULT_MAX_DEPTH)),
    ],
    ids=["state", "ignored field", "after brackets in a string"],
)
async def test_nesting_deeper_than_the_limit_is_a_422(client: httpx.AsyncClient, body: bytes) -> None:
    response = await post(client, "/limits", body)
    assert response.status_code == 422
    assert reason(response) == f"invalid request body: JSON nested deeper than {DEFAULT_MAX_DEPTH} levels"


async def test_brackets_inside_strings_do_not_count(client: httpx.AsyncClient) -> None:
    text = '[{"\\"\\\\[' * 10_000
    body = msgspec.json.encode({"commands": [], "state": {"text": text}, "system": text})
    response = await post(client, "/limits", body)
    assert response.status_code == 200
    assert response.json()["state"] == {"text": text}


async def test_a_raised_depth_limit_still_answers_422_where_the_decoder_gives_up(client: httpx.AsyncClient) -> None:
    response = await post(client, "/limits?max_depth=100000", transport_body(nested(5000)))
    assert response.status_code == 422
    assert reason(response) == "invalid request body: JSON nested too deeply to decode"
    assert (await post(client, "/limits?max_depth=100", transport_body(nested(99)))).status_code == 200


def empty_objects(count: int) -> bytes:
    return b"[" + b",".join([b"{}"] * count) + b"]"


async def test_values_up_to_the_limit_are_accepted(client: httpx.AsyncClient) -> None:
    assert DEFAULT_MAX_VALUES == 100_000
    # The body's object, its two fields' values, the state's list: 4 values around the objects.
    response = await post(client, "/limits", transport_body(empty_objects(DEFAULT_MAX_VALUES - 4), system=b'""'))
    assert response.status_code == 200
    assert len(response.json()["state"]) == DEFAULT_MAX_VALUES - 4


@pytest.mark.parametrize(
    ("path", "body", "limit"),
    [
        ("/limits", transport_body(empty_objects(DEFAULT_MAX_VALUES - 3), system=b'""'), DEFAULT_MAX_VALUES),
        ("/limits", transport_body(b"[" + b",".join([b"1"] * DEFAULT_MAX_VALUES) + b"]"), DEFAULT_MAX_VALUES),
        (
            "/limits",
            transport_body(b"{" + b",".join(b'"k%d":""' % i for i in range(DEFAULT_MAX_VALUES)) + b"}"),
            DEFAULT_MAX_VALUES,
        ),
        ("/limits?max_values=10", transport_body(b"[[],[],[],[],[],[],[],[]]"), 10),
    ],
    ids=["objects", "numbers", "strings", "raised limit"],
)
async def test_more_values_than_the_limit_is_a_413(
    client: httpx.AsyncClient, path: str, body: bytes, limit: int
) -> None:
    response = await post(client, path, body)
    assert response.status_code == 413
    assert reason(response) == f"request body too large: more than {limit} JSON values"


async def test_a_body_of_empty_objects_costs_a_few_times_its_size() -> None:
    """Under the byte limit, 1.3 million empty objects once took 100 MB to decode; now they are refused unread."""
    body = transport_body(empty_objects(1_300_000))
    assert len(body) < 4 * 1024 * 1024
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=starlette_app), base_url="http://test") as client:
        tracemalloc.start()
        try:
            response = await post(client, "/limits", body)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert response.status_code == 413
    assert peak < 5 * len(body)


async def test_a_422_reason_is_short_whatever_the_value(client: httpx.AsyncClient) -> None:
    huge = "x" * 3_000_000
    body = msgspec.json.encode({"commands": [{"type": "add-message", "message": {"role": huge, "parts": []}}]})
    response = await post(client, "/limits", body)
    assert response.status_code == 422
    assert len(reason(response)) < 200
    assert reason(response).startswith("invalid request body: Invalid enum value 'xxx")
    assert reason(response).endswith("' - at `$.commands[0].message.role`")


async def test_a_state_update_costs_what_changed_not_the_whole_state(anyio_backend: str) -> None:
    """With ``on_finish``, the run folds what it sent onto its copy of the state: in place, not by copying it."""
    peaks: list[int] = []
    tails: list[Any] = []

    async def route(request: Request) -> Response:
        body = await read_chat_request(request, AssistantTransportRequest)

        async def run(controller: RunController) -> None:
            tracemalloc.start()  # the run's copies of the state exist already
            for step in range(20):
                controller.state.append(step)
                await anyio.lowlevel.checkpoint()  # the response sends it: one update-state chunk each

        def on_finish(outcome: RunOutcome) -> None:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            tails.append(outcome.message.state[-21:])

        return AssistantTransportResponse(create_run(run, state=body.state, on_finish=on_finish))

    app = Starlette(routes=[Route("/", route, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await post(client, "/", transport_body(empty_objects(50_000)))
    assert response.status_code == 200
    assert response.text.count('"type":"update-state"') > 1
    assert tails == [[{}, *range(20)]]
    state_size = 50_000 * (sys.getsizeof({}) + 8)
    assert peaks[0] < state_size / 10


async def test_escaped_quotes_without_an_end_are_scanned_in_one_pass(client: httpx.AsyncClient) -> None:
    """A string that never ends, full of escaped quotes: each quote must not restart the scan to the end."""
    body = b'{"commands":[],"system":"' + b'\\"' * 40_000
    started = time.perf_counter()
    response = await post(client, "/limits", body)
    assert time.perf_counter() - started < 2  # a scan from every quote took 14 s
    assert response.status_code == 422
    assert reason(response) == "invalid request body: Input data was truncated"


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON, with strings full of what the scan must see past: quotes, backslashes, brackets, commas."""
    text = st.text(alphabet='ab"\\[]{},: \n', max_size=8)
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4))


def count_values(value: Any) -> tuple[int, int]:
    """How many JSON values ``value`` holds, and how deep its objects and arrays nest."""
    children = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
    counted = [count_values(child) for child in children]
    depth = 1 + max((d for _, d in counted), default=0) if isinstance(value, (dict, list)) else 0
    return 1 + sum(n for n, _ in counted), depth


async def read_with_limits(content: bytes, max_depth: int, max_values: int) -> int:
    """The status of ``read_chat_request`` with these limits (200 when it decodes)."""
    chunks = [{"type": "http.request", "body": content, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop()

    request = Request({"type": "http", "method": "POST", "headers": [], "query_string": b""}, receive)
    try:
        await read_chat_request(request, Any, max_depth=max_depth, max_values=max_values)  # type: ignore[arg-type]
    except ChatRequestError as exc:
        return exc.status_code
    return 200


@settings(max_examples=300, deadline=None)
@given(json_values(), st.sampled_from([None, 0, 2]))
def test_the_limits_count_exactly_what_the_body_holds(value: Any, indent: int | None) -> None:
    content = json.dumps(value, indent=indent, separators=(" , ", " : ")).encode()
    values, depth = count_values(value)
    assert anyio.run(read_with_limits, content, depth, values) == 200
    assert anyio.run(read_with_limits, content, depth, values - 1) == 413
    if depth:
        assert anyio.run(read_with_limits, content, depth - 1, values) == 422
