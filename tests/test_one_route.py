"""One FastAPI route for every client: the bodies each real client sends, answered in its own format.

The AI SDK's ``useChat`` body and the AG-UI ``RunAgentInput`` come from the
clients themselves (tests/conformance/client_requests.mjs records what their
fetch is called with); the OpenAI body is sent by the official ``openai``
SDK against the app; assistant-ui's two bodies are written as its runtimes
build them (``@assistant-ui/react-data-stream`` 0.12's
``toLanguageModelMessages`` and ``@assistant-ui/core`` 0.3's
assistant-transport runtime). Each answer is decoded by that client's own
decoder and compared with the run's message as ``on_finish`` got it.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx
import msgspec
import openai
import pytest
from conformance_helpers import NODE_DIR, UI_CONTINUING, adecode_batch, client_view, decode_openai, expected_view
from fastapi import FastAPI, Request
from provider_fakes import SDK_GENERATORS_ON_TRIO
from starlette.responses import Response

from assistant_stream_ce import RunController, RunOutcome, continue_ui_message, create_run, to_ui_message
from assistant_stream_ce.any_request import AnyChatRequest, read_any_chat_request
from assistant_stream_ce.chat_request import (
    AssistantTransportRequest,
    ChatCompletionRequest,
    ChatRequest,
    DataStreamRequest,
    RunAgentInput,
)

pytestmark = pytest.mark.anyio

# -- the bodies --------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict[str, Any]]:
    """What the AI SDK's Chat and AG-UI's HttpAgent POST, by format: ``{"headers", "body"}``."""
    done = subprocess.run(
        ["node", str(NODE_DIR / "client_requests.mjs")], cwd=NODE_DIR, capture_output=True, check=True, timeout=120
    )
    requests = [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]
    return {request["client"]: request for request in requests}


#: assistant-ui ``useDataStreamRuntime``: system, AI SDK 5 model messages, tools as a record, runConfig, state.
DATA_STREAM_BODY: dict[str, Any] = {
    "system": "Be brief.",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Lisbon?"},
                {"type": "file", "data": "data:image/png;base64,iVBORw0KGgo=", "mediaType": "image/png"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool-call", "toolCallId": "call-1", "toolName": "get_weather", "input": {"city": "Lisbon"}},
            ],
        },
        {
            "role": "tool",
            "content": [
                {
                    "type": "tool-result",
                    "toolCallId": "call-1",
                    "toolName": "get_weather",
                    "output": {"type": "json", "value": {"celsius": 21}},
                }
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
    ],
    "tools": {"get_weather": {"description": "Weather by city", "parameters": {"type": "object"}}},
    "unstable_assistantMessageId": "msg-9",
    "threadId": "thread-1",
    "runConfig": {},
    "state": {"units": "metric"},
    "temperature": 0.2,
}

#: assistant-ui ``useAssistantTransportRuntime``: commands, state, model context, thread.
TRANSPORT_BODY: dict[str, Any] = {
    "commands": [
        {
            "type": "add-message",
            "message": {
                "role": "user",
                "id": "m-1",
                "parts": [
                    {"type": "text", "text": "Weather in Lisbon?"},
                    {"type": "image", "image": "data:image/png;base64,iVBORw0KGgo="},
                ],
            },
            "parentId": None,
            "sourceId": None,
        }
    ],
    "state": {"messages": [], "units": "metric"},
    "system": "Be brief.",
    "tools": {"get_weather": {"description": "Weather by city", "parameters": {"type": "object"}}},
    "threadId": "thread-1",
    "callSettings": {"temperature": 0.2},
    "config": {},
    "temperature": 0.2,
}


# -- the app: one route ------------------------------------------------------------


def make_app(outcomes: list[RunOutcome], seen: list[AnyChatRequest]) -> FastAPI:
    app = FastAPI()

    async def chat(request: Request) -> Response:
        incoming = await read_any_chat_request(request)
        seen.append(incoming)

        async def run(controller: RunController) -> None:
            controller.append_text(f"Answered as {incoming.format}. ")
            tool = await controller.add_tool_call("get_weather", "call-9")
            tool.append_args_text('{"city": "Lisbon"}')
            tool.set_response({"celsius": 21})
            controller.append_text("Sunny.")

        async def keep(outcome: RunOutcome) -> None:
            outcomes.append(outcome)

        # Only a useChat answer carries the message id; the other formats take it and leave it out.
        return incoming.respond(create_run(run, state=incoming.state), message_id="answer-1", on_finish=keep)

    # The same handler; the OpenAI SDK posts to {base_url}/chat/completions.
    app.add_api_route("/api/chat", chat, methods=["POST"])
    app.add_api_route("/v1/chat/completions", chat, methods=["POST"])
    return app


async def post(app: FastAPI, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/api/chat", content=json.dumps(body), headers=headers or {})


CASES = [
    ("ui-message-stream", ChatRequest, {"x-vercel-ai-ui-message-stream": "v1"}),
    ("ag-ui", RunAgentInput, {}),
    ("data-stream", DataStreamRequest, {"x-vercel-ai-data-stream": "v1"}),
    ("assistant-transport", AssistantTransportRequest, {}),
]
MEDIA_TYPES = {
    "ui-message-stream": "text/event-stream",
    "ag-ui": "text/event-stream",
    "data-stream": "text/plain; charset=utf-8",
    "assistant-transport": "text/event-stream",
}


@pytest.mark.parametrize(("wire_format", "struct", "format_headers"), CASES, ids=[case[0] for case in CASES])
async def test_each_client_body_is_answered_in_its_format(
    recorded: dict[str, dict[str, Any]], wire_format: str, struct: type, format_headers: dict[str, str]
) -> None:
    bodies = {"data-stream": {"body": DATA_STREAM_BODY, "headers": {}}, "assistant-transport": {"body": TRANSPORT_BODY}}
    sent = recorded.get(wire_format) or bodies[wire_format]
    outcomes: list[RunOutcome] = []
    seen: list[AnyChatRequest] = []
    response = await post(make_app(outcomes, seen), sent["body"], sent.get("headers"))

    assert response.status_code == 200
    assert seen[0].format == wire_format
    assert type(seen[0].request) is struct
    assert response.headers["content-type"].split(";")[0] == MEDIA_TYPES[wire_format].split(";")[0]
    assert response.headers["cache-control"] == "no-cache"
    for name, value in format_headers.items():
        assert response.headers[name] == value
    [outcome] = outcomes
    assert outcome.status == "completed"
    assert outcome.message.text == f"Answered as {wire_format}. Sunny."
    # The client holds the state it sent, and its decoder starts from it (this run changes none).
    [decoded] = await adecode_batch([(wire_format, response.content, seen[0].state)])
    assert client_view(wire_format, decoded) == expected_view(wire_format, outcome.message, outcome.status)
    if wire_format == "ui-message-stream":
        assert decoded.features is not None
        assert decoded.features["stored"]["id"] == "answer-1"


async def test_ag_ui_answer_carries_the_inputs_thread_run_and_state(recorded: dict[str, dict[str, Any]]) -> None:
    sent = recorded["ag-ui"]
    response = await post(make_app([], []), sent["body"], sent["headers"])
    events = [json.loads(line[len("data: ") :]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[0] == {"type": "RUN_STARTED", "threadId": "thread-1", "runId": "run-1"}
    assert events[-1]["type"] == "RUN_FINISHED"
    assert (events[-1]["threadId"], events[-1]["runId"]) == ("thread-1", "run-1")


async def test_state_comes_from_the_body() -> None:
    seen: list[AnyChatRequest] = []
    await post(make_app([], seen), TRANSPORT_BODY)
    await post(make_app([], seen), DATA_STREAM_BODY)
    assert [incoming.state for incoming in seen] == [TRANSPORT_BODY["state"], DATA_STREAM_BODY["state"]]


@SDK_GENERATORS_ON_TRIO
async def test_openai_sdk_streams_from_the_same_route() -> None:
    outcomes: list[RunOutcome] = []
    seen: list[AnyChatRequest] = []
    app = make_app(outcomes, seen)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://test/v1", http_client=http)
    async with http:
        raw = await client.chat.completions.with_raw_response.create(
            model="my-model",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            ],
            stream=True,
        )
        assert raw.headers["content-type"].startswith("text/event-stream")
        stream = raw.parse()
        chunks = [chunk async for chunk in stream]
    assert seen[0].format == "openai"
    assert isinstance(seen[0].request, ChatCompletionRequest)
    assert seen[0].request.model == "my-model"
    assert {chunk.model for chunk in chunks} == {"my-model"}
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Answered as openai. Sunny."
    [outcome] = outcomes
    body = (
        b"".join(f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n".encode() for chunk in chunks)
        + b"data: [DONE]\n\n"
    )
    assert client_view("openai", decode_openai(body)) == expected_view("openai", outcome.message, outcome.status)


# -- the id of the answer ------------------------------------------------------------


def storing_app(saved: dict[str, Any], seen: list[AnyChatRequest]) -> FastAPI:
    """A route that names each useChat answer and stores it, continued ones under the id they continue."""
    app = FastAPI()

    async def book_train(to: str) -> dict[str, Any]:
        return {"booked": True, "to": to}

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        incoming = await read_any_chat_request(request)
        seen.append(incoming)
        body = incoming.request
        assert isinstance(body, ChatRequest)
        approvals = body.tool_approvals()
        new_id = f"answer-{len(saved)}"

        async def run(controller: RunController) -> None:
            if approvals:
                [approval] = approvals
                controller.start_tool_call("book_train", lambda tool: book_train(**tool.args), approval=approval)
                controller.append_text("Booked.")
            else:
                controller.append_text("Booking it. ")
                controller.start_tool_call(
                    "book_train", lambda tool: book_train(**tool.args), args={"to": "Paris"}, needs_approval=True
                )

        async def store(outcome: RunOutcome) -> None:
            continued = body.continued_message_id
            if continued is None:
                saved[new_id] = to_ui_message(outcome.message, id=new_id)
            else:
                saved[continued] = continue_ui_message(saved[continued], outcome.message)

        return incoming.respond(create_run(run), message_id=new_id, on_finish=store)

    return app


async def test_use_chat_keeps_the_id_the_app_gave_and_continues_it_after_an_approval() -> None:
    saved: dict[str, Any] = {}
    seen: list[AnyChatRequest] = []
    app = storing_app(saved, seen)
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Book a train to Paris"}]}
    first = await post(app, {"id": "chat-1", "trigger": "submit-message", "messages": [user]})
    [decoded] = await adecode_batch([("ui-message-stream", first.content)])
    assert decoded.features is not None
    kept = decoded.features["stored"]
    assert kept["id"] == "answer-0"
    stored = msgspec.to_builtins(saved["answer-0"])
    assert (stored["id"], stored["role"], stored["parts"]) == (kept["id"], kept["role"], kept["parts"])

    # The person approves in useChat; its next request sends the message back to be continued.
    part = kept["parts"][-1]
    decided = {**part, "state": "approval-responded", "approval": {**part["approval"], "approved": True}}
    kept = {**kept, "parts": [*kept["parts"][:-1], decided]}
    messages = [user, kept]
    second = await post(app, {"id": "chat-1", "trigger": "submit-message", "messages": messages})
    assert seen[1].request.continued_message_id == "answer-0"  # type: ignore[union-attr]
    [decoded] = await adecode_batch([(UI_CONTINUING, second.content, messages)])
    assert decoded.features is not None
    continued = decoded.features["stored"]
    assert continued["id"] == "answer-0"
    assert list(saved) == ["answer-0"]
    stored = msgspec.to_builtins(saved["answer-0"])
    assert (stored["id"], stored["parts"]) == (continued["id"], continued["parts"])


# -- what is refused ---------------------------------------------------------------


async def test_an_unrecognised_body_gets_a_422_naming_the_accepted_shapes() -> None:
    response = await post(make_app([], []), {"question": "hi"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("unrecognised request body: expected one of ")
    for shape in ("{commands}", "{messages, trigger}", "{threadId, runId, messages}", "{model, messages", "{messages}"):
        assert shape in detail


async def test_a_body_that_is_not_an_object_gets_a_422() -> None:
    response = await post(make_app([], []), [1, 2])
    assert response.status_code == 422
    assert response.json()["detail"] == "invalid request body: Expected `object`, got `array`"


async def test_a_recognised_but_malformed_body_names_the_place_and_the_shape() -> None:
    response = await post(make_app([], []), {"threadId": "t", "runId": "r", "messages": [{"role": "user"}]})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "invalid request body: Object missing required field `id` - at `$.messages[0]` (read as an AG-UI RunAgentInput)"
    )


async def test_an_openai_request_that_does_not_stream_is_refused() -> None:
    response = await post(make_app([], []), {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 422
    assert "stream" in response.json()["detail"]


async def test_the_body_limits_of_read_chat_request_apply() -> None:
    app = FastAPI()

    async def nothing(controller: RunController) -> None:
        pass

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        incoming = await read_any_chat_request(request, max_bytes=1000, max_values=50, max_depth=4)
        return incoming.respond(create_run(nothing))

    big = {"messages": [{"role": "user", "content": "x" * 2000}]}
    many = {"messages": [{"role": "user", "content": "x"}] * 20}
    deep = {"messages": [[[[[]]]]]}
    answers = [await post(app, body) for body in (big, many, deep)]
    assert [answer.status_code for answer in answers] == [413, 413, 422]
    assert answers[0].json()["detail"] == "request body too large: the limit is 1000 bytes"
    assert answers[1].json()["detail"] == "request body too large: more than 50 JSON values"
    assert answers[2].json()["detail"] == "invalid request body: JSON nested deeper than 4 levels"
