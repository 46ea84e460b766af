"""Message conversion, checked against the real SDK types and the real clients.

Every list handed to a provider is validated by the ``openai`` and
``anthropic`` packages' own types (a validated TypedDict keeps only the keys
it knows, so equality after validation also proves there are no stray keys).
A run's message goes out in each client's stored shape and comes back in as
that client's next request, then into the providers' types again; the
``UIMessage`` is compared with the one the AI SDK's ``Chat`` built from the
same run's stream.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic.types
import anyio
import msgspec
import openai.types.chat
import pytest
from anthropic import AsyncAnthropic
from conformance_helpers import UI_CONTINUING, adecode, adecode_batch, client_view, encode, encoder_for, expected_view
from openai import AsyncOpenAI
from provider_fakes import (
    SDK_GENERATORS_ON_TRIO,
    FakeProvider,
    Reply,
    anthropic_message,
    anthropic_text,
    collect,
    openai_chunk,
    serving,
    trace_of,
)
from pydantic import TypeAdapter
from test_one_route import DATA_STREAM_BODY, TRANSPORT_BODY

from assistant_stream_ce import RunController, RunOutcome, create_run
from assistant_stream_ce.adapters.anthropic import run_messages_agent
from assistant_stream_ce.adapters.openai import run_chat_completion_agent
from assistant_stream_ce.approval import approval_token
from assistant_stream_ce.chat_request import (
    AssistantTransportRequest,
    ChatCompletionRequest,
    ChatRequest,
    DataStreamRequest,
    RunAgentInput,
    UIMessage,
)
from assistant_stream_ce.conversion import (
    ClientMessages,
    continue_ui_message,
    to_agui_messages,
    to_anthropic_messages,
    to_model_messages,
    to_openai_messages,
    to_ui_message,
)
from assistant_stream_ce.message import ToolCallPart
from assistant_stream_ce.serialization.ui_message_stream import UIMessageStreamEncoder

pytestmark = pytest.mark.anyio

OPENAI = TypeAdapter(list[openai.types.chat.ChatCompletionMessageParam])
ANTHROPIC = TypeAdapter(list[anthropic.types.MessageParam])
PNG = "iVBORw0KGgo="
PNG_URL = f"data:image/png;base64,{PNG}"


def plain(value: Any) -> Any:
    """A validated value with pydantic's lazy iterables (the SDKs' ``Iterable[...]`` fields) read out."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ValidatorIterator":
        return [plain(item) for item in value]
    return value


def openai_messages(request: ClientMessages) -> list[dict[str, Any]]:
    messages = to_openai_messages(request)
    assert plain(OPENAI.validate_python(messages)) == messages
    return messages


def anthropic_messages(request: ClientMessages) -> tuple[str | None, list[dict[str, Any]]]:
    system, messages = to_anthropic_messages(request)
    assert plain(ANTHROPIC.validate_python(messages)) == messages
    return system, messages


def decode(body: dict[str, Any], request_type: type[Any]) -> Any:
    return msgspec.json.decode(msgspec.json.encode(body), type=request_type)


# The useChat body the AI SDK's Chat sends (as tests/conformance/client_requests.mjs records it).
USE_CHAT_BODY: dict[str, Any] = {
    "id": "chat-1",
    "messages": [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather in Lisbon?"}]},
        {
            "id": "a1",
            "role": "assistant",
            "parts": [
                {"type": "step-start"},
                {"type": "reasoning", "text": "Use the tool.", "state": "done"},
                {
                    "type": "tool-get_weather",
                    "toolCallId": "call-1",
                    "state": "output-available",
                    "input": {"city": "Lisbon"},
                    "output": {"celsius": 21},
                },
                {
                    "type": "tool-get_time",
                    "toolCallId": "call-2",
                    "state": "output-error",
                    "input": {"zone": "WET"},
                    "errorText": "clock broke",
                },
                {"type": "step-start"},
                {"type": "text", "text": "It is 21 C.", "state": "done"},
            ],
        },
        {
            "id": "u2",
            "role": "user",
            "parts": [
                {"type": "file", "mediaType": "image/png", "filename": "p.png", "url": PNG_URL},
                {"type": "text", "text": "And this picture?"},
            ],
        },
    ],
    "trigger": "submit-message",
}

AG_UI_BODY: dict[str, Any] = {
    "threadId": "thread-1",
    "runId": "run-1",
    "messages": [
        {"id": "s1", "role": "system", "content": "Be brief."},
        {
            "id": "u1",
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image", "source": {"type": "data", "value": PNG, "mimeType": "image/png"}},
            ],
        },
        {
            "id": "a1",
            "role": "assistant",
            "content": "Checking.",
            "toolCalls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
                }
            ],
        },
        {"id": "t1", "role": "tool", "toolCallId": "call-1", "content": '{"celsius":21}'},
        {"id": "u2", "role": "user", "content": "Thanks, and tomorrow?"},
    ],
}

OPENAI_BODY: dict[str, Any] = {
    "model": "m",
    "stream": True,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": PNG_URL}}],
        },
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": '{"celsius": 21}'},
    ],
}


# -- into the providers --------------------------------------------------------------


def test_use_chat_to_openai_one_assistant_message_per_step() -> None:
    messages = openai_messages(decode(USE_CHAT_BODY, ChatRequest))
    assert messages == [
        {"role": "user", "content": "Weather in Lisbon?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
                },
                {"id": "call-2", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": "WET"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": '{"celsius": 21}'},
        {"role": "tool", "tool_call_id": "call-2", "content": "clock broke"},
        {"role": "assistant", "content": "It is 21 C."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
            ],
        },
    ]


def test_use_chat_to_anthropic_results_in_a_user_message_with_is_error() -> None:
    system, messages = anthropic_messages(decode(USE_CHAT_BODY, ChatRequest))
    assert system is None
    assert [message["role"] for message in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"][0] == {
        "type": "tool_use",
        "id": "call-1",
        "name": "get_weather",
        "input": {"city": "Lisbon"},
    }
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call-1", "content": '{"celsius": 21}', "is_error": False},
        {"type": "tool_result", "tool_use_id": "call-2", "content": "clock broke", "is_error": True},
    ]
    assert messages[4]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }


def test_data_stream_body_to_both_providers() -> None:
    request = decode(DATA_STREAM_BODY, DataStreamRequest)
    messages = openai_messages(request)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"][1] == {"type": "image_url", "image_url": {"url": PNG_URL}}
    assert messages[2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Lisbon"}'}
    assert messages[3] == {"role": "tool", "tool_call_id": "call-1", "content": '{"celsius": 21}'}
    system, blocks = anthropic_messages(request)
    assert system == "Be brief."
    assert blocks[2]["content"][0]["type"] == "tool_result"


def test_data_stream_older_part_fields_are_read() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image", "image": PNG, "mimeType": "image/png"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool-call", "toolCallId": "c", "toolName": "t", "args": {"a": 1}}],
            },
            {
                "role": "tool",
                "content": [
                    {"type": "tool-result", "toolCallId": "c", "toolName": "t", "result": "no", "isError": True}
                ],
            },
        ]
    }
    _, messages = anthropic_messages(decode(body, DataStreamRequest))
    assert messages == [
        {
            "role": "user",
            "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}],
        },
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c", "name": "t", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c", "content": "no", "is_error": True}]},
    ]


def test_transport_commands_to_both_providers() -> None:
    request = decode(TRANSPORT_BODY, AssistantTransportRequest)
    assert openai_messages(request) == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Lisbon?"},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
            ],
        },
    ]
    assert anthropic_messages(request)[0] == "Be brief."


def test_transport_tool_result_command() -> None:
    body = {"commands": [{"type": "add-tool-result", "toolCallId": "c", "toolName": "t", "result": {"ok": True}}]}
    request = decode(body, AssistantTransportRequest)
    assert openai_messages(request) == [{"role": "tool", "tool_call_id": "c", "content": '{"ok": true}'}]
    assert anthropic_messages(request)[1] == [
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "c", "content": '{"ok": true}', "is_error": False}],
        }
    ]


def test_ag_ui_input_to_both_providers() -> None:
    request = decode(AG_UI_BODY, RunAgentInput)
    assert openai_messages(request) == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": '{"celsius":21}'},
        {"role": "user", "content": "Thanks, and tomorrow?"},
    ]
    system, messages = anthropic_messages(request)
    assert system == "Be brief."
    assert messages[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call-1", "content": '{"celsius":21}', "is_error": False},
            {"type": "text", "text": "Thanks, and tomorrow?"},
        ],
    }


def test_openai_request_stays_as_sent_and_converts_to_anthropic() -> None:
    request = decode(OPENAI_BODY, ChatCompletionRequest)
    assert openai_messages(request) == OPENAI_BODY["messages"]
    system, messages = anthropic_messages(request)
    assert system == "Be brief."
    assert messages[1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call-1", "name": "get_weather", "input": {"city": "Lisbon"}}],
    }


def test_files_that_are_not_images() -> None:
    pdf = "data:application/pdf;base64,JVBERi0="
    text = "data:text/plain;base64,aGVsbG8="
    body = {
        "id": "c",
        "trigger": "submit-message",
        "messages": [
            {
                "id": "u",
                "role": "user",
                "parts": [
                    {"type": "file", "mediaType": "application/pdf", "filename": "a.pdf", "url": pdf},
                    {"type": "file", "mediaType": "text/plain", "url": text},
                    {"type": "file", "mediaType": "application/pdf", "url": "https://example.com/b.pdf"},
                ],
            }
        ],
    }
    request = decode(body, ChatRequest)
    assert openai_messages(request)[0]["content"] == [
        {"type": "file", "file": {"file_data": pdf, "filename": "a.pdf"}},
        {"type": "file", "file": {"file_data": text, "filename": "file"}},
        {"type": "text", "text": "https://example.com/b.pdf"},
    ]
    assert anthropic_messages(request)[1][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}},
    ]


# -- out of a run, and back in --------------------------------------------------------


async def answer(controller: RunController) -> None:
    controller.append_reasoning("Two tools.")
    controller.append_text("Checking. ")
    ok = await controller.add_tool_call("get_weather", "call-1")
    ok.append_args_text('{"city": "Lisbon"}')
    ok.set_response({"celsius": 21})
    bad = await controller.add_tool_call("get_time", "call-2")
    bad.append_args_text('{"zone": "WET"}')
    bad.set_response("clock broke", is_error=True)
    controller.append_text("It is 21 C.")
    controller.add_source("s1", "https://example.com/weather", "Weather")
    controller.add_data({"kind": "forecast", "days": 3})


async def finished_run() -> tuple[RunOutcome, list[bytes]]:
    outcomes: list[RunOutcome] = []

    async def keep(outcome: RunOutcome) -> None:
        outcomes.append(outcome)

    writer = UIMessageStreamEncoder("msg-1").open()
    pieces = [writer.encode(chunk) async for chunk in create_run(answer, on_finish=keep)]
    pieces.append(writer.finish("completed"))
    return outcomes[0], pieces


def _as_client_shows(part: dict[str, Any]) -> dict[str, Any]:
    """A UIMessage part in the normalized shape of tests/conformance/decode.mjs."""
    kind = part["type"]
    if kind in ("text", "reasoning"):
        return {"type": kind, "text": part["text"], "state": part.get("state")}
    if kind.startswith("tool-"):
        state = part["state"]
        done = state in ("output-available", "output-error")
        result = part.get("output") if state == "output-available" else part.get("errorText")
        return {
            "type": "tool-call",
            "toolCallId": part["toolCallId"],
            "toolName": kind[len("tool-") :],
            "args": part.get("input"),
            "state": state,
            "hasResult": done,
            "result": result,
            "isError": state == "output-error",
        }
    if kind == "source-url":
        return {"type": "source", "id": part["sourceId"], "url": part["url"], "title": part.get("title")}
    return {"type": "data", "name": kind[len("data-") :], "data": part["data"]}


async def test_ui_message_is_what_use_chat_built_from_the_stream() -> None:
    outcome, body = await finished_run()
    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))
    [decoded] = await adecode("ui-message-stream", [body])
    shown = [part for part in decoded.clean()["parts"] if part["type"] != "step-start"]
    for part in shown:
        if part["type"] == "data":
            del part["id"]  # the stream's own data part ids
    assert [_as_client_shows(part) for part in stored["parts"] if part["type"] != "step-start"] == shown


async def test_ui_message_goes_back_in_as_the_next_use_chat_request() -> None:
    outcome, _ = await finished_run()
    stored = to_ui_message(outcome.message, id="msg-1")
    question = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather?"}]}
    body = {"id": "c", "trigger": "submit-message", "messages": [question, msgspec.to_builtins(stored)]}
    messages = openai_messages(decode(body, ChatRequest))
    # One assistant message per step, as convertToModelMessages makes them: the text after the results is the next.
    assert [message["role"] for message in messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert (messages[1]["content"], messages[4]["content"]) == ("Checking. ", "It is 21 C.")
    assert messages[3] == {"role": "tool", "tool_call_id": "call-2", "content": "clock broke"}
    anthropic_messages(decode(body, ChatRequest))


async def test_model_messages_go_back_in_as_the_next_data_stream_request() -> None:
    outcome, _ = await finished_run()
    stored = [msgspec.to_builtins(message) for message in to_model_messages(outcome.message)]
    assert stored[1]["content"][1] == {
        "type": "tool-result",
        "toolCallId": "call-2",
        "toolName": "get_time",
        "output": {"type": "error-json", "value": "clock broke"},
    }
    body = {"messages": [{"role": "user", "content": "Weather?"}, *stored]}
    _, messages = anthropic_messages(decode(body, DataStreamRequest))
    assert messages[1]["content"] == [
        {"type": "text", "text": "Checking. "},
        {"type": "tool_use", "id": "call-1", "name": "get_weather", "input": {"city": "Lisbon"}},
        {"type": "tool_use", "id": "call-2", "name": "get_time", "input": {"zone": "WET"}},
        {"type": "text", "text": "It is 21 C."},
    ]
    assert messages[2]["content"][1]["is_error"] is True
    openai_messages(decode(body, DataStreamRequest))


async def test_agui_messages_go_back_in_as_the_next_run_agent_input() -> None:
    outcome, _ = await finished_run()
    stored = [msgspec.to_builtins(message) for message in to_agui_messages(outcome.message, id="m1")]
    assert stored[0]["toolCalls"][1] == {
        "id": "call-2",
        "type": "function",
        "function": {"name": "get_time", "arguments": '{"zone": "WET"}'},
    }
    body = {"threadId": "t", "runId": "r", "messages": [{"id": "u", "role": "user", "content": "Weather?"}, *stored]}
    messages = openai_messages(decode(body, RunAgentInput))
    assert messages[1]["content"] == "Checking. It is 21 C."
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "call-1", "content": '{"celsius": 21}'},
        {"role": "tool", "tool_call_id": "call-2", "content": "clock broke"},
    ]
    _, blocks = anthropic_messages(decode(body, RunAgentInput))
    assert blocks[2]["content"][1] == {
        "type": "tool_result",
        "tool_use_id": "call-2",
        "content": "clock broke",
        "is_error": True,
    }


async def test_a_document_source_is_stored_as_a_source_document_part() -> None:
    async def cite(controller: RunController) -> None:
        controller.add_source("s1", "https://example.com", "Example")
        controller.add_document_source("d1", "Quarterly report", "application/pdf", "q3.pdf")

    outcomes: list[RunOutcome] = []
    async with create_run(cite, on_finish=outcomes.append) as chunks:
        async for _ in chunks:
            pass
    stored = msgspec.to_builtins(to_ui_message(outcomes[0].message, id="msg-1"))
    assert stored["parts"] == [
        {"type": "step-start"},
        {"type": "source-url", "sourceId": "s1", "url": "https://example.com", "title": "Example"},
        {
            "type": "source-document",
            "sourceId": "d1",
            "title": "Quarterly report",
            "mediaType": "application/pdf",
            "filename": "q3.pdf",
        },
    ]


# -- tool calls that wait for approval -------------------------------------------------

BOOKING = {"to": "Paris"}
BOOKED = {"booked": True, "to": "Paris"}
WEATHER = {"celsius": 21}
REASON = "Too expensive"
#: What the user decides on the booking, by case: (approved, reason); None leaves it waiting.
DECISIONS: dict[str, tuple[bool, str | None] | None] = {
    "approved": (True, None),
    "denied with a reason": (False, REASON),
    "denied": (False, None),
    "pending": None,
}
#: The booking call and what follows it, in OpenAI messages, by case.
DENIAL = {
    "denied with a reason": "The user denied this tool call. Reason: Too expensive",
    "denied": "The user denied this tool call.",
}


async def book_train(to: str) -> dict[str, Any]:
    return {"booked": True, "to": to}


async def get_weather(city: str) -> dict[str, Any]:
    return WEATHER


async def ask_to_book(controller: RunController) -> None:
    controller.append_text("Booking it. ")
    async with controller.tool_calls() as calls:
        calls.start("get_weather", lambda tool: get_weather(**tool.args), args={"city": "Paris"}, tool_call_id="w1")
        calls.start("book_train", lambda tool: book_train(**tool.args), args=BOOKING, needs_approval=True)


async def round_one() -> tuple[RunOutcome, list[bytes]]:
    """The run that asks for the approval, and its UI message stream."""
    outcomes: list[RunOutcome] = []
    writer = UIMessageStreamEncoder("msg-1").open()
    pieces = [writer.encode(chunk) async for chunk in create_run(ask_to_book, on_finish=outcomes.append)]
    pieces.append(writer.finish("completed"))
    return outcomes[0], pieces


def frames_of(pieces: list[bytes]) -> list[dict[str, Any]]:
    text = b"".join(pieces).decode()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def booking_call(outcome: RunOutcome) -> ToolCallPart:
    return next(call for call in outcome.message.tool_calls if call.tool_name == "book_train")


def expected_openai(case: str, call_id: str) -> list[dict[str, Any]]:
    """The OpenAI messages of the booking round, as the model has to see them next."""
    weather = {"id": "w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    booking = {"id": call_id, "type": "function", "function": {"name": "book_train", "arguments": '{"to": "Paris"}'}}
    messages = [
        {"role": "user", "content": "Book a train to Paris"},
        {"role": "assistant", "content": "Booking it. ", "tool_calls": [weather, booking]},
        {"role": "tool", "tool_call_id": "w1", "content": '{"celsius": 21}'},
    ]
    if case == "pending":  # left out until the person decides
        messages[1]["tool_calls"] = [weather]
    if case in DENIAL:  # the denial is the call's result
        messages.insert(2, {"role": "tool", "tool_call_id": call_id, "content": DENIAL[case]})
    return messages


def check_booking_round(request: ClientMessages, case: str, call_id: str, expected: list[dict[str, Any]]) -> None:
    """The request's messages in both providers' types, and the decision ``tool_approvals()`` verifies."""
    assert openai_messages(request) == expected
    _, blocks = anthropic_messages(request)
    results = [block for message in blocks for block in message["content"] if block["type"] == "tool_result"]
    uses = [block for message in blocks for block in message["content"] if block["type"] == "tool_use"]
    assert [block for block in results if block["tool_use_id"] == call_id] == (
        [{"type": "tool_result", "tool_use_id": call_id, "content": DENIAL[case], "is_error": True}]
        if case in DENIAL
        else []
    )
    shown = any(message.get("tool_calls", [{}])[-1].get("id") == call_id for message in expected)
    assert [block["input"] for block in uses if block["id"] == call_id] == ([BOOKING] if shown else [])
    decided = DECISIONS[case]
    approvals = [(a.tool_call_id, a.tool_name, a.args, a.approved, a.reason) for a in request.tool_approvals()]
    assert approvals == ([] if decided is None else [(call_id, "book_train", BOOKING, *decided)])


def decided_part(part: dict[str, Any], case: str) -> dict[str, Any]:
    """A stored tool part after the person decided in useChat (``addToolApprovalResponse``)."""
    decision = DECISIONS[case]
    if decision is None:
        return part
    approved, reason = decision
    approval = {**part["approval"], "approved": approved} | ({"reason": reason} if reason else {})
    return {**part, "state": "approval-responded", "approval": approval}


USER_TEXT = "Book a train to Paris"


async def test_a_call_waiting_for_approval_is_stored_as_use_chat_shows_it() -> None:
    outcome, body = await round_one()
    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))
    [decoded] = await adecode("ui-message-stream", [body])
    shown = [part for part in decoded.clean()["parts"] if part["type"] != "step-start"]
    assert [_as_client_shows(part) for part in stored["parts"] if part["type"] != "step-start"] == shown
    assert [part["state"] for part in shown if part["type"] == "tool-call"] == [
        "output-available",
        "approval-requested",
    ]
    asked = next(frame for frame in frames_of(body) if frame["type"] == "tool-approval-request")
    booking = stored["parts"][-1]
    assert booking["approval"] == {"id": asked["approvalId"], "signature": asked["signature"]}
    assert (booking["toolCallId"], booking["input"]) == (asked["toolCallId"], BOOKING)


@pytest.mark.parametrize("case", list(DECISIONS))
async def test_use_chat_decisions_into_both_providers(case: str) -> None:
    outcome, _ = await round_one()
    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))
    stored["parts"] = [*stored["parts"][:-1], decided_part(stored["parts"][-1], case)]
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": USER_TEXT}]}
    request = decode({"id": "c", "trigger": "submit-message", "messages": [user, stored]}, ChatRequest)
    call_id = booking_call(outcome).tool_call_id
    check_booking_round(request, case, call_id, expected_openai(case, call_id))


@pytest.mark.parametrize("case", list(DECISIONS))
async def test_data_stream_decisions_into_both_providers(case: str) -> None:
    outcome, _ = await round_one()
    assistant, results = [msgspec.to_builtins(message) for message in to_model_messages(outcome.message)]
    booking = assistant["content"][-1]
    assert set(booking["approval"]) == {"id", "signature"}  # as assistant-stream's client keeps it, undecided
    decision = DECISIONS[case]
    if decision is not None:
        booking["approval"] |= {"approved": decision[0]} | ({"reason": decision[1]} if decision[1] else {})
    body = {"messages": [{"role": "user", "content": USER_TEXT}, assistant, results]}
    call_id = booking_call(outcome).tool_call_id
    check_booking_round(decode(body, DataStreamRequest), case, call_id, expected_openai(case, call_id))


@pytest.mark.parametrize("case", [case for case, decision in DECISIONS.items() if decision is not None])
async def test_transport_decision_commands_into_both_providers(case: str) -> None:
    outcome, _ = await round_one()
    call = booking_call(outcome)
    assert call.approval is not None
    approved, reason = DECISIONS[case] or (True, None)
    approval = {"id": call.approval.id, "signature": call.approval.signature, "approved": approved, "reason": reason}
    command = {"type": "add-tool-approval", "toolCallId": call.tool_call_id, "toolName": "book_train"}
    request = decode({"commands": [{**command, "args": BOOKING, "approval": approval}]}, AssistantTransportRequest)
    # Its commands are what is new since the history the server keeps: a denial's result, or nothing
    # (the agent loop runs an approved call and adds its result).
    expected = [message for message in expected_openai(case, call.tool_call_id) if message["role"] == "tool"][:-1]
    check_booking_round(request, case, call.tool_call_id, expected)


@pytest.mark.parametrize("case", list(DECISIONS))
async def test_ag_ui_resume_decisions_into_both_providers(case: str) -> None:
    outcome, _ = await round_one()
    call = booking_call(outcome)
    assert call.approval is not None
    stored = [msgspec.to_builtins(message) for message in to_agui_messages(outcome.message, id="a1")]
    body: dict[str, Any] = {"threadId": "t", "runId": "r2", "messages": [{"id": "u1", "role": "user"}, *stored]}
    body["messages"][0]["content"] = USER_TEXT
    decision = DECISIONS[case]
    if decision is not None:
        # What HttpAgent.runAgent({resume}) sends; a denial without a reason as a cancelled interrupt.
        status = "cancelled" if decision == (False, None) else "resolved"
        payload = {"approved": decision[0]} | ({"reason": decision[1]} if decision[1] else {})
        interrupt = approval_token(call.approval.id, call.approval.signature)
        body["resume"] = [{"interruptId": interrupt, "status": status, "payload": payload}]
    check_booking_round(decode(body, RunAgentInput), case, call.tool_call_id, expected_openai(case, call.tool_call_id))


# -- the decided call through an agent loop, and the next round --------------------------


async def use_chat_decision(case: str) -> tuple[ChatRequest, dict[str, Any], str]:
    """Round 1, then the request useChat sends with the decision: (request, stored message, booking call id)."""
    outcome, _ = await round_one()
    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))
    stored["parts"] = [*stored["parts"][:-1], decided_part(stored["parts"][-1], case)]
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": USER_TEXT}]}
    body = {"id": "c", "trigger": "submit-message", "messages": [user, stored]}
    return decode(body, ChatRequest), stored, booking_call(outcome).tool_call_id


@SDK_GENERATORS_ON_TRIO
@pytest.mark.parametrize("case", ["approved", "denied with a reason"])
async def test_the_openai_agent_loop_continues_the_decided_call(anyio_backend: str, case: str) -> None:
    request, stored, call_id = await use_chat_decision(case)
    provider = FakeProvider([Reply([openai_chunk({"content": "Done."}), openai_chunk({}, "stop")])])
    outcomes: list[RunOutcome] = []
    with anyio.fail_after(20):
        async with serving(provider) as url:
            client = AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0, timeout=10)

            async def agent(controller: RunController) -> None:
                await run_chat_completion_agent(
                    controller,
                    client,
                    model="m",
                    messages=to_openai_messages(request),
                    approvals=request.tool_approvals(),
                    tool_functions={"book_train": book_train, "get_weather": get_weather},
                )

            chunks = await collect(create_run(agent, on_finish=outcomes.append))
            await client.close()

    approved = case == "approved"
    result = ('{"booked": true, "to": "Paris"}', BOOKED) if approved else (DENIAL[case], DENIAL[case])
    booked = [{"role": "tool", "tool_call_id": call_id, "content": result[0]}] if approved else []
    # The model sees the call with its result once: the denial from the conversion, the booking from the loop.
    assert provider.requests[0]["messages"] == expected_openai(case, call_id) + booked
    assert plain(OPENAI.validate_python(provider.requests[0]["messages"])) == provider.requests[0]["messages"]
    assert [entry for entry in trace_of(chunks) if entry[0] in ("result", "text")] == [
        ("result", call_id, result[1], not approved),
        ("text", "Done."),
    ]

    # Stored after round 2: the call with its decision, as useChat shows it (output-denied for a denial).
    [outcome] = outcomes
    continued = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))["parts"]
    booking, *steps, text = continued
    # A step opens for the call's output, and the model's next turn is a step of its own.
    assert steps == [{"type": "step-start"}] * 2
    decision = {"id": stored["parts"][-1]["approval"]["id"], "approved": approved}
    decision |= {"signature": stored["parts"][-1]["approval"]["signature"]} | ({} if approved else {"reason": REASON})
    assert (booking["toolCallId"], booking["approval"], text["text"]) == (call_id, decision, "Done.")
    assert booking["state"] == ("output-available" if approved else "output-denied")
    assert booking.get("output") == (BOOKED if approved else None)

    # The client's message after round 2 goes back in: the call and its result, nothing left to run.
    stored = msgspec.to_builtins(continue_ui_message(decode(stored, UIMessage), outcome.message))
    assert stored["parts"][-len(continued) :] == continued  # the booking's part, in place, then round 2's
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": USER_TEXT}]}
    again = decode({"id": "c", "trigger": "submit-message", "messages": [user, stored]}, ChatRequest)
    assert again.tool_approvals() == []
    messages = openai_messages(again)
    assert {"role": "tool", "tool_call_id": call_id, "content": result[0]} in messages
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["Booking it. ", "Done."]
    anthropic_messages(again)


@SDK_GENERATORS_ON_TRIO
async def test_the_anthropic_agent_loop_runs_the_approved_call(anyio_backend: str) -> None:
    request, _, call_id = await use_chat_decision("approved")
    reply = anthropic_message([anthropic_text(0, ["Done."])], "end_turn", "msg_2")
    provider = FakeProvider([Reply(reply, done=None)])
    with anyio.fail_after(20):
        async with serving(provider) as url:
            client = AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=10)

            async def agent(controller: RunController) -> None:
                await run_messages_agent(
                    controller,
                    client,
                    model="m",
                    max_tokens=100,
                    messages=to_anthropic_messages(request).messages,
                    approvals=request.tool_approvals(),
                    tool_functions={"book_train": book_train, "get_weather": get_weather},
                )

            chunks = await collect(create_run(agent))
            await client.close()

    sent = provider.requests[0]["messages"]
    assert plain(ANTHROPIC.validate_python(sent)) == sent
    assert [block["id"] for block in sent[1]["content"] if block["type"] == "tool_use"] == ["w1", call_id]
    # The booking's result joins the step's other results: one user message after the calls.
    assert sent[2:] == [
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call_id, "content": json.dumps(BOOKED), "is_error": False},
                {"type": "tool_result", "tool_use_id": "w1", "content": '{"celsius": 21}', "is_error": False},
            ],
        }
    ]
    assert ("result", call_id, BOOKED, False) in trace_of(chunks)


# -- the message useChat keeps, step by step --------------------------------------------


async def text_only(controller: RunController) -> None:
    controller.append_text("Hello ")
    controller.append_text("there.")


async def reasoning_then_text(controller: RunController) -> None:
    controller.append_reasoning("Say hi.")
    controller.append_text("Hi.")


async def call_tool(controller: RunController, name: str, call_id: str, args: str, result: Any) -> None:
    """A call with its arguments and result (an error if it is a string)."""
    call = await controller.add_tool_call(name, call_id)
    call.append_args_text(args)
    call.set_response(result, is_error=isinstance(result, str))


async def a_call_then_text(controller: RunController) -> None:
    controller.append_text("Checking. ")
    await call_tool(controller, "get_weather", "call-1", '{"city": "Lisbon"}', WEATHER)
    controller.append_text("It is 21 C.")
    await call_tool(controller, "get_time", "call-2", '{"zone": "WET"}', "clock broke")
    controller.append_text("No clock.")


async def parallel_calls(controller: RunController) -> None:
    async with controller.tool_calls() as calls:
        calls.start("get_weather", lambda tool: get_weather(**tool.args), args={"city": "Paris"}, tool_call_id="w1")
        calls.start("get_weather", lambda tool: get_weather(**tool.args), args={"city": "Rome"}, tool_call_id="w2")
    controller.append_text("Both 21 C.")


async def sources(controller: RunController) -> None:
    controller.append_text("See ")
    controller.add_source("s1", "https://example.com/a", "A")
    controller.add_document_source("d1", "Report", "application/pdf", "r.pdf")
    controller.append_text("these.")


async def an_error(controller: RunController) -> None:
    controller.append_text("Trying.")
    await call_tool(controller, "get_weather", "call-1", '{"city": "Lisbon"}', WEATHER)
    controller.add_error("the model failed")


async def explicit_steps(controller: RunController) -> None:
    controller.add_step_start("step-1")
    controller.append_text("One.")
    controller.add_step_finish("stop")
    controller.add_step_start("step-2")
    controller.append_text("Two.")
    controller.append_reasoning("Next.")
    controller.add_step_finish("stop")
    controller.append_reasoning("Three.")  # a step begins with the next part


async def ui_run(agent: Any, message_id: str = "msg-1") -> tuple[RunOutcome, list[bytes]]:
    """The run's outcome, and its UI message stream."""
    outcomes: list[RunOutcome] = []
    writer = UIMessageStreamEncoder(message_id).open()
    pieces = [writer.encode(chunk) async for chunk in create_run(agent, on_finish=outcomes.append)]
    pieces.append(writer.finish("completed"))
    return outcomes[0], pieces


async def kept_by_use_chat(body: list[bytes], messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The UIMessage the AI SDK's Chat keeps after reading ``body`` (continuing ``messages``' last one, if given)."""
    [decoded] = await adecode_batch([(UI_CONTINUING, body, messages)] if messages else [("ui-message-stream", body)])
    decoded.clean()
    assert decoded.features is not None
    stored: dict[str, Any] = decoded.features["stored"]
    return stored


STEP_RUNS = [text_only, reasoning_then_text, a_call_then_text, parallel_calls, sources, an_error, explicit_steps]


@pytest.mark.parametrize("agent", [*STEP_RUNS, answer, ask_to_book], ids=lambda agent: agent.__name__)
async def test_ui_message_is_the_message_use_chat_keeps(agent: Any) -> None:
    outcome, body = await ui_run(agent)
    kept = await kept_by_use_chat(body)
    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))
    assert stored["parts"] == kept["parts"]
    assert (stored["id"], stored["role"]) == (kept["id"], kept["role"])


# (the conformance views have no document sources)
@pytest.mark.parametrize("agent", [run for run in STEP_RUNS if run is not sources], ids=lambda agent: agent.__name__)
async def test_steps_leave_the_parts_the_other_clients_show(agent: Any) -> None:
    """Text that goes on across a step start stays one part for assistant-ui and AG-UI (the message's parts)."""
    outcomes: list[RunOutcome] = []
    chunks = await collect(create_run(agent, on_finish=outcomes.append))
    formats = ["data-stream", "ag-ui"]
    decoded = await adecode_batch([(fmt, encode(encoder_for(fmt), chunks, "completed")) for fmt in formats])
    for fmt, shown in zip(formats, decoded, strict=True):
        assert client_view(fmt, shown) == expected_view(fmt, outcomes[0].message, "completed"), fmt


@pytest.mark.parametrize("case", ["approved", "denied with a reason"])
async def test_a_continued_message_is_stored_as_use_chat_keeps_it(case: str) -> None:
    first, body = await ui_run(ask_to_book)
    kept = await kept_by_use_chat(body)
    stored = to_ui_message(first.message, id="msg-1")  # what on_finish stored after round 1
    # The person decides in useChat; its next request continues the message.
    kept["parts"] = [*kept["parts"][:-1], decided_part(kept["parts"][-1], case)]
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": USER_TEXT}]}
    request = decode({"id": "c", "trigger": "submit-message", "messages": [user, kept]}, ChatRequest)
    [approval] = request.tool_approvals()

    async def continue_booking(controller: RunController) -> None:
        controller.start_tool_call("book_train", lambda tool: book_train(**tool.args), approval=approval)
        controller.append_text("Done.")

    assert request.continued_message_id == "msg-1"
    second, body = await ui_run(continue_booking, request.continued_message_id)
    kept = await kept_by_use_chat(body, [user, kept])
    continued = msgspec.to_builtins(continue_ui_message(stored, second.message))
    assert continued["parts"] == kept["parts"]
    assert (continued["id"], continued["role"]) == (kept["id"], kept["role"])
    # Round 1's step, then round 2's: a denial is an output sent before the text, which begins a step of its own.
    steps = 3 if case.startswith("denied") else 2
    assert [part["type"] for part in kept["parts"]].count("step-start") == steps
