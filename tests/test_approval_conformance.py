"""Two rounds of a tool call that waits for approval, through the real clients and a live server.

Round 1: the AI SDK's ``Chat`` (and ``readUIMessageStream``), assistant-stream's
decoders and ``@ag-ui/client`` show the call waiting for a decision next to an
approval-free call that ran. The request each client sends with the decision
parses into the right :class:`ToolApproval`; round 2 shows the call's output
(approved) or its denial, in the same assistant message. Only approved calls run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from approval_rounds import get_json, two_rounds
from http_servers.launch import Server

from assistant_stream_ce import ToolApproval, set_approval_key
from assistant_stream_ce.chat_request import AssistantTransportRequest, ChatRequest, DataStreamRequest, RunAgentInput
from assistant_stream_ce.serialization.ag_ui import TOOL_APPROVAL_REASON

KEY = "conformance-approval-key"
ARGS = {"to": "Paris", "seats": 2}
REASON = "Too expensive"
DENIAL = f"The user denied this tool call. Reason: {REASON}"
BOOKED = {"booked": True, "to": "Paris"}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server("uvicorn", "http_servers.approval_app:app", env={"ASSISTANT_STREAM_CE_APPROVAL_KEY": KEY}) as running:
        yield running


@pytest.fixture(autouse=True)
def shared_key() -> Iterator[None]:
    set_approval_key(KEY)  # the server's key: this process verifies what the clients send back
    yield
    set_approval_key(None)


def _ran(server: Server) -> list[dict[str, Any]]:
    return list(get_json(server, "/ran"))


def _two_rounds(server: Server, decision: str) -> dict[str, Any]:
    return two_rounds(server, decision)


def _expected(tool_call_id: str, approved: bool) -> ToolApproval:
    return ToolApproval(
        tool_call_id=tool_call_id,
        tool_name="book_train",
        args=ARGS,
        approved=approved,
        reason=None if approved else REASON,
    )


def _same_decision(parsed: list[ToolApproval], expected: ToolApproval) -> None:
    assert len(parsed) == 1
    approval = parsed[0]
    decided = (approval.tool_call_id, approval.tool_name, approval.args, approval.approved, approval.reason)
    assert decided == (expected.tool_call_id, expected.tool_name, expected.args, expected.approved, expected.reason)


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_two_rounds_through_every_client(server: Server, decision: str) -> None:
    approved = decision == "approve"
    before = len(_ran(server))
    result = _two_rounds(server, decision)

    # The AI SDK's Chat (useChat): waiting, then the decision in the same assistant message.
    chat = result["chat"]
    book, weather = chat["round1"]["tools"]
    assert (book["type"], book["state"], book["input"]) == ("tool-book_train", "approval-requested", ARGS)
    assert book["approval"]["signature"]
    assert (weather["state"], weather["output"]) == ("output-available", {"celsius": 21})
    _same_decision(_chat(chat["request"]), _expected(book["toolCallId"], approved))
    assert chat["round2"]["messages"] == chat["round1"]["messages"]  # continued, not a second assistant message
    book2, weather2 = chat["round2"]["tools"]
    assert book2["toolCallId"] == book["toolCallId"]
    if approved:
        assert (book2["state"], book2["output"]) == ("output-available", BOOKED)
    else:
        assert (book2["state"], book2["approval"]["reason"]) == ("output-denied", REASON)
    assert weather2["state"] == "output-available"
    assert chat["round2"]["text"] == "Booking the train.Done."
    assert (chat["round2"]["status"], chat["round2"]["error"]) == ("ready", None)

    # ai's readUIMessageStream: the same two states, round 2 continuing round 1's message.
    read = result["readUIMessageStream"]
    assert read["round1"][0]["state"] == "approval-requested"
    assert read["round2"]["id"] == chat["request"]["messages"][-1]["id"]
    assert read["round2"]["tools"][0]["state"] == ("output-available" if approved else "output-denied")

    # assistant-stream's decoders: the approval on the call, the run waiting for the client; then the decision.
    for name, parse in (("dataStream", DataStreamRequest), ("transport", AssistantTransportRequest)):
        client = result[name]
        waiting, ran = client["round1"]["tools"]
        assert set(waiting["approval"]) == {"id", "signature"}  # not decided yet
        assert (waiting["result"], ran["result"]) == (None, {"celsius": 21})
        assert client["round1"]["status"] == {"type": "requires-action", "reason": "tool-calls"}
        _same_decision(_parse(parse, client["request"]).tool_approvals(), _expected(waiting["toolCallId"], approved))
        (decided,) = client["round2"]["tools"]
        assert (decided["toolCallId"], decided["args"]) == (waiting["toolCallId"], ARGS)
        assert decided["approval"]["approved"] is approved
        assert (decided["result"], decided["isError"]) == ((BOOKED, False) if approved else (DENIAL, True))
        assert client["round2"]["status"] == {"type": "complete", "reason": "stop"}

    # @ag-ui/client: the interrupt outcome, then resume.
    agui = result["agUi"]
    first, second = agui["outcomes"]
    (interrupt,) = first["interrupts"]
    assert (first["type"], interrupt["reason"]) == ("interrupt", TOOL_APPROVAL_REASON)
    _same_decision(
        _parse(RunAgentInput, agui["request"]).tool_approvals(), _expected(interrupt["toolCallId"], approved)
    )
    assert second == {"type": "success"}
    results = {m["toolCallId"]: m["content"] for m in agui["messages"] if m["role"] == "tool"}
    assert results[interrupt["toolCallId"]] == (json.dumps(BOOKED, separators=(",", ":")) if approved else DENIAL)
    assert agui["messages"][-1] == {"id": agui["messages"][-1]["id"], "role": "assistant", "content": "Done."}

    # Only approved calls ran: one booking per client when approved (Chat, readUIMessageStream, two
    # assistant-stream formats, AG-UI), none when denied; the approval-free call in every round 1.
    ran = _ran(server)[before:]
    booked = [call for call in ran if call["tool"] == "book_train"]
    assert [call["args"] for call in booked] == ([ARGS] * 5 if approved else [])
    assert sum(call["tool"] == "weather" for call in ran) == 5


def _parse(request_type: type[Any], body: dict[str, Any]) -> Any:
    return msgspec.json.decode(json.dumps(body), type=request_type)


def _chat(body: dict[str, Any]) -> list[ToolApproval]:
    request = _parse(ChatRequest, body)
    assert request.continued_message_id == body["messages"][-1]["id"] == body["messageId"]
    approvals: list[ToolApproval] = request.tool_approvals()
    return approvals
