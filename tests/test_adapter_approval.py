"""A model's call to a tool that needs approval, through both agent loops and two rounds of useChat.

Round 1: the model calls ``get_weather`` and ``book_train`` (which needs
approval); the booking's arguments stream, then it asks for approval and the
run ends. Round 2: the request useChat sends with the person's decision
continues it: an approved booking runs and the model reads its result, a
denied one gives the model the denial.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import msgspec
import pytest
from anthropic import AsyncAnthropic
from conformance_helpers import adecode
from openai import AsyncOpenAI
from provider_fakes import (
    SDK_GENERATORS_ON_TRIO,
    FakeProvider,
    Reply,
    anthropic_message,
    anthropic_text,
    anthropic_tool_use,
    collect,
    openai_chunk,
    openai_tool_call,
    serving,
    trace_of,
)
from test_conversion import BOOKED, BOOKING, DENIAL, USER_TEXT, _as_client_shows, decided_part, frames_of

from assistant_stream_ce import (
    RunController,
    RunOutcome,
    ToolApproval,
    ToolApprovalError,
    ToolApprovalRequestChunk,
    create_run,
    set_approval_key,
)
from assistant_stream_ce.adapters.anthropic import run_messages_agent
from assistant_stream_ce.adapters.openai import run_chat_completion_agent
from assistant_stream_ce.assistant_stream_chunk import AssistantStreamChunk
from assistant_stream_ce.chat_request import ChatRequest
from assistant_stream_ce.conversion import to_anthropic_messages, to_openai_messages, to_ui_message
from assistant_stream_ce.serialization import AGUIEncoder, UIMessageStreamEncoder
from assistant_stream_ce.serialization.stream_encoder import StreamEncoder

pytestmark = [pytest.mark.anyio, SDK_GENERATORS_ON_TRIO]

PROVIDERS = ["openai", "anthropic"]
WEATHER = {"celsius": 21}
ARGS_PIECES = ['{"to"', ': "Pa', 'ris"}']


@pytest.fixture(autouse=True)
def key() -> Iterator[None]:
    set_approval_key("adapter-test-key")
    yield
    set_approval_key(None)


class Tools:
    """The tool functions, recording what ran."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, dict[str, Any]]] = []

    async def get_weather(self, city: str) -> dict[str, Any]:
        self.ran.append(("get_weather", {"city": city}))
        return WEATHER

    async def book_train(self, to: str) -> dict[str, Any]:
        self.ran.append(("book_train", {"to": to}))
        return {"booked": True, "to": to}

    def functions(self) -> dict[str, Any]:
        return {"get_weather": self.get_weather, "book_train": self.book_train}


def call_id(provider: str) -> str:
    return "call_book" if provider == "openai" else "toolu_book"


def asking_reply(provider: str, args_pieces: list[str] = ARGS_PIECES) -> Reply:
    """Text, then a weather lookup and a booking whose arguments come in pieces."""
    if provider == "openai":
        return Reply(
            [
                openai_chunk({"role": "assistant", "content": "Booking it. "}),
                *openai_tool_call(0, "w1", "get_weather", ['{"city": "Paris"}']),
                *openai_tool_call(1, call_id(provider), "book_train", args_pieces),
                openai_chunk({}, "tool_calls"),
            ]
        )
    blocks = [
        anthropic_text(0, ["Booking it. "]),
        anthropic_tool_use(1, "w1", "get_weather", ['{"city": "Paris"}']),
        anthropic_tool_use(2, call_id(provider), "book_train", args_pieces),
    ]
    return Reply(anthropic_message(blocks, "tool_use", "msg_1"), done=None)


def text_reply(provider: str, text: str) -> Reply:
    if provider == "openai":
        return Reply([openai_chunk({"content": text}), openai_chunk({}, "stop")])
    return Reply(anthropic_message([anthropic_text(0, [text])], "end_turn", "msg_2"), done=None)


async def run_agent(
    provider: str,
    fake: FakeProvider,
    tools: Tools,
    request: ChatRequest | None = None,
    approvals: list[ToolApproval] | None = None,
) -> tuple[list[AssistantStreamChunk], RunOutcome]:
    """One run of the provider's agent loop with ``book_train`` needing approval.

    ``approvals`` default to the request's ``tool_approvals()``.
    """
    if approvals is None:
        approvals = [] if request is None else request.tool_approvals()
    outcomes: list[RunOutcome] = []
    chunks: list[AssistantStreamChunk] = []
    with anyio.fail_after(20):
        async with serving(fake) as url:

            async def agent(controller: RunController) -> None:
                common: dict[str, Any] = {
                    "model": "m",
                    "tool_functions": tools.functions(),
                    "needs_approval": {"book_train"},
                    "approvals": approvals,
                }
                if provider == "openai":
                    async with AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0, timeout=10) as client:
                        messages = [{"role": "user", "content": USER_TEXT}]
                        await run_chat_completion_agent(
                            controller,
                            client,
                            messages=messages if request is None else to_openai_messages(request),
                            **common,
                        )
                else:
                    async with AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=10) as aclient:
                        messages = [{"role": "user", "content": [{"type": "text", "text": USER_TEXT}]}]
                        await run_messages_agent(
                            controller,
                            aclient,
                            max_tokens=100,
                            messages=messages if request is None else to_anthropic_messages(request).messages,
                            **common,
                        )

            await collect(create_run(agent, on_finish=outcomes.append), chunks)
    [outcome] = outcomes
    return chunks, outcome


async def frames(encoder: StreamEncoder, chunks: list[AssistantStreamChunk]) -> list[str]:
    """The run's chunks as ``encoder`` sends them."""

    async def replay() -> AsyncIterator[AssistantStreamChunk]:
        for chunk in chunks:
            yield chunk

    return [frame async for frame in encoder.encode_stream(replay())]


async def round_one(provider: str, tools: Tools) -> tuple[list[AssistantStreamChunk], RunOutcome, FakeProvider]:
    fake = FakeProvider([asking_reply(provider)])
    chunks, outcome = await run_agent(provider, fake, tools)
    return chunks, outcome, fake


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_call_streams_its_arguments_then_asks_for_approval(anyio_backend: str, provider: str) -> None:
    tools = Tools()
    chunks, outcome, fake = await round_one(provider, tools)
    booking = call_id(provider)

    # The booking's arguments stream in the model's pieces, then the call asks instead of running.
    assert [entry for entry in trace_of(chunks) if booking in entry or entry[0] == "tool-approval-request"] == [
        ("begin", booking, "book_train"),
        ("args", booking, "".join(ARGS_PIECES)),
        ("finish", booking),
        ("tool-approval-request",),
    ]
    [request] = [chunk for chunk in chunks if isinstance(chunk, ToolApprovalRequestChunk)]
    assert request.tool_call_id == booking
    # Signed over the streamed arguments, as a call started with needs_approval=True is.
    ToolApproval(
        tool_call_id=booking,
        tool_name="book_train",
        args=BOOKING,
        approved=True,
        approval_id=request.approval_id,
        signature=request.signature,
    ).verify()
    assert ("result", "w1", WEATHER, False) in trace_of(chunks)
    assert tools.ran == [("get_weather", {"city": "Paris"})]  # the booking never ran
    assert len(fake.requests) == 1  # the loop ended with the approval request

    # Each format ends with its "the client must act" finish, as for needs_approval=True.
    agui = [json.loads(frame[6:]) for frame in await frames(AGUIEncoder(thread_id="t", run_id="r"), chunks)]
    assert agui[-1]["outcome"]["type"] == "interrupt"
    assert [(i["reason"], i["toolCallId"]) for i in agui[-1]["outcome"]["interrupts"]] == [("tool_approval", booking)]
    body = [frame.encode() for frame in await frames(UIMessageStreamEncoder("msg-1"), chunks)]
    finish = frames_of(body)[-1]
    assert (finish["type"], finish["finishReason"]) == ("finish", "tool-calls")

    # useChat shows the call waiting for approval, with the arguments the model sent.
    [decoded] = await adecode("ui-message-stream", [body])
    shown = [part for part in decoded.clean()["parts"] if part["type"] != "step-start"]
    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))
    assert [_as_client_shows(part) for part in stored["parts"] if part["type"] != "step-start"] == shown
    assert [(part["toolName"], part["state"], part["args"]) for part in shown if part["type"] == "tool-call"] == [
        ("get_weather", "output-available", {"city": "Paris"}),
        ("book_train", "approval-requested", BOOKING),
    ]
    asked = next(frame for frame in frames_of(body) if frame["type"] == "tool-approval-request")
    assert stored["parts"][-1]["approval"] == {"id": asked["approvalId"], "signature": asked["signature"]}


async def decision_request(outcome: RunOutcome, case: str, **altered: Any) -> ChatRequest:
    """The request useChat sends after the person decided on the booking (``altered`` changes its part)."""
    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))
    stored["parts"] = [*stored["parts"][:-1], decided_part(stored["parts"][-1], case) | altered]
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": USER_TEXT}]}
    body = {"id": "c", "trigger": "submit-message", "messages": [user, stored]}
    return msgspec.json.decode(json.dumps(body), type=ChatRequest)


def tool_results(provider: str, messages: list[dict[str, Any]]) -> dict[str, str]:
    """What the model read back for each call, by call id."""
    if provider == "openai":
        return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}
    return {
        block["tool_use_id"]: block["content"]
        for message in messages
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block["type"] == "tool_result"
    }


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", ["approved", "denied with a reason", "denied"])
async def test_the_next_request_with_the_decision_continues_the_call(
    anyio_backend: str, provider: str, case: str
) -> None:
    tools = Tools()
    _, outcome, _ = await round_one(provider, tools)
    request = await decision_request(outcome, case)
    fake = FakeProvider([text_reply(provider, "Done.")])
    chunks, _ = await run_agent(provider, fake, tools, request)

    booking = call_id(provider)
    approved = case == "approved"
    result = json.dumps(BOOKED) if approved else DENIAL[case]
    assert tools.ran[1:] == ([("book_train", BOOKING)] if approved else [])
    [sent] = fake.requests
    assert tool_results(provider, sent["messages"]) == {"w1": json.dumps(WEATHER), booking: result}
    assert [entry for entry in trace_of(chunks) if entry[0] in ("result", "text")] == [
        ("result", booking, BOOKED if approved else DENIAL[case], not approved),
        ("text", "Done."),
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("forge", ["arguments", "signature"])
async def test_a_forged_decision_is_refused_and_nothing_runs(anyio_backend: str, provider: str, forge: str) -> None:
    tools = Tools()
    _, outcome, _ = await round_one(provider, tools)
    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))["parts"][-1]
    altered: dict[str, Any] = (
        {"input": {"to": "Lisbon"}}
        if forge == "arguments"
        else {"approval": {**stored["approval"], "approved": True, "signature": "forged"}}
    )
    request = await decision_request(outcome, "approved", **altered)
    with pytest.raises(ToolApprovalError) as refused:
        request.tool_approvals()
    assert refused.value.status_code == 403

    # Handed to the agent loop anyway (not through tool_approvals()), the decision is refused there too.
    forged = ToolApproval(
        tool_call_id=call_id(provider),
        tool_name="book_train",
        args=stored["input"] | altered.get("input", {}),
        approved=True,
        approval_id=stored["approval"]["id"],
        signature=altered.get("approval", stored["approval"])["signature"],
    )
    fake = FakeProvider([text_reply(provider, "Done.")])
    with pytest.raises(ToolApprovalError):
        await run_agent(provider, fake, tools, request, approvals=[forged])
    assert tools.ran == [("get_weather", {"city": "Paris"})]
    assert fake.requests == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_arguments_that_are_not_an_object_fail_the_call_instead(anyio_backend: str, provider: str) -> None:
    tools = Tools()
    fake = FakeProvider([asking_reply(provider, ['["Par', 'is"]']), text_reply(provider, "Sorry.")])
    chunks, _ = await run_agent(provider, fake, tools)
    booking = call_id(provider)
    error = "the arguments must be a JSON object, not list"
    assert not any(isinstance(chunk, ToolApprovalRequestChunk) for chunk in chunks)
    assert ("result", booking, error, True) in trace_of(chunks)
    assert tools.ran == [("get_weather", {"city": "Paris"})]
    assert tool_results(provider, fake.requests[1]["messages"])[booking] == error
    assert [entry for entry in trace_of(chunks) if entry[0] == "text"][-1] == ("text", "Sorry.")


@pytest.mark.parametrize(
    ("needs_approval", "error"),
    [("book_train", TypeError), ({"book_flight"}, ValueError)],
)
async def test_needs_approval_names_tool_functions(anyio_backend: str, needs_approval: Any, error: type) -> None:
    client = AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)

    async def agent(controller: RunController) -> None:
        with pytest.raises(error):
            await run_chat_completion_agent(
                controller,
                client,
                model="m",
                messages=[],
                tool_functions=Tools().functions(),
                needs_approval=needs_approval,
            )

    with anyio.fail_after(10):
        await collect(create_run(agent))
    await client.close()
