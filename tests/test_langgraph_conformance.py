"""A LangGraph interrupt's two rounds through the real clients and a live server.

The server (tests/http_servers/langgraph_app.py) runs a compiled graph with an
``InMemorySaver`` that interrupts to ask whether to book. Round 1: the AI SDK's
``Chat`` shows the question as a ``data-interrupt`` part, assistant-stream's
``DataStreamDecoder`` as message data, ``@ag-ui/client`` as the run's interrupt
outcome (and ``pendingInterrupts``). Round 2 sends the answer (``body:
{resume}``, ``resume``, ``runAgent({resume})``) and the graph goes on from its
checkpoint: booking only when the person approved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from approval_rounds import get_json, two_rounds
from http_servers.langgraph_app import QUESTION
from http_servers.launch import Server

from assistant_stream_ce.chat_request import AGUIResumeEntry
from assistant_stream_ce.modules.langgraph import LANGGRAPH_INTERRUPT_REASON, LangGraphChatRequest


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server("uvicorn", "http_servers.langgraph_app:app") as running:
        yield running


def _interrupt(data: dict[str, Any]) -> str:
    assert (data["kind"], data["reason"], data["value"]) == ("interrupt", LANGGRAPH_INTERRUPT_REASON, QUESTION)
    interrupt_id: str = data["id"]
    return interrupt_id


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_interrupt_then_resume_through_every_client(server: Server, decision: str) -> None:
    approved = decision == "approve"
    answer = "Booked." if approved else "I did not book it."
    before = len(get_json(server, "/booked"))
    result = two_rounds(server, decision, "langgraph")

    # The AI SDK's Chat: the question as a data part, the answer continuing the same assistant message.
    chat = result["chat"]
    plan, question = chat["round1"]["parts"]
    assert (plan["type"], plan["text"], question["type"]) == (
        "text",
        "There is a train to Paris at 9:00. ",
        "data-interrupt",
    )
    interrupt_id = _interrupt(question["data"])
    parsed = msgspec.json.decode(json.dumps(chat["request"]), type=LangGraphChatRequest)
    assert parsed.resume == [AGUIResumeEntry(interrupt_id, "resolved", {"approved": approved})]
    assert parsed.continued_message_id == chat["round1"]["messages"][-1]["id"]
    assert chat["round2"]["messages"] == chat["round1"]["messages"]  # continued, not a second assistant message
    assert [p["text"] for p in chat["round2"]["parts"]] == [plan["text"], None, answer]
    assert (chat["round2"]["status"], chat["round2"]["error"]) == ("ready", None)

    # assistant-stream's data stream decoder: the question in the message's data, then the answer.
    data_stream = result["dataStream"]
    (data,) = data_stream["round1"]["data"]
    assert data_stream["request"]["resume"][0]["interruptId"] == _interrupt(data)
    assert data_stream["round1"]["status"] == {"type": "complete", "reason": "stop"}
    assert (data_stream["round2"]["text"], data_stream["round2"]["data"]) == (answer, [])

    # @ag-ui/client: the interrupt outcome and pendingInterrupts, then runAgent({resume}).
    agui = result["agUi"]
    first, second = agui["outcomes"]
    (interrupt,) = first["interrupts"]
    assert first["type"] == "interrupt"
    assert interrupt == {"id": interrupt["id"], "reason": LANGGRAPH_INTERRUPT_REASON, "metadata": {"value": QUESTION}}
    assert agui["pending"] == [interrupt]
    assert (second, agui["pendingAfter"]) == ({"type": "success"}, [])
    assert agui["texts"] == ["There is a train to Paris at 9:00. ", answer]
    assert agui["state"]["booking"] == ("booked" if approved else "declined")

    # The graph booked once per client when approved, never when denied.
    assert len(get_json(server, "/booked")) - before == (3 if approved else 0)
