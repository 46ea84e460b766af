"""The examples' server with a model (examples/server/app.py, ``OPENAI_API_KEY`` set): its booking waits for approval.

The model is the fake provider; the requests are the ones useChat sends in
two rounds, built from what the first run stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import msgspec
import pytest
from provider_fakes import (
    SDK_GENERATORS_ON_TRIO,
    FakeProvider,
    Reply,
    collect,
    openai_chunk,
    openai_tool_call,
    serving,
    trace_of,
)
from test_conversion import decided_part

from assistant_stream_ce import RunOutcome, ToolApprovalError, ToolApprovalRequestChunk, create_run, set_approval_key
from assistant_stream_ce.chat_request import ChatRequest
from assistant_stream_ce.conversion import to_ui_message

pytestmark = [pytest.mark.anyio, SDK_GENERATORS_ON_TRIO]

EXAMPLE_SERVER = Path(__file__).parent.parent / "examples" / "server"
PROMPT = "Book a train to Porto"
BOOKING = {"to": "Porto", "train": "08:15"}
BOOKED = {"booked": True, "to": "Porto", "train": "08:15", "seats": 1}


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example's app module, in its model mode."""
    monkeypatch.syspath_prepend(str(EXAMPLE_SERVER))
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    set_approval_key("example-test-key")
    import app

    yield app
    set_approval_key(None)


def chat_request(*messages: dict[str, Any]) -> ChatRequest:
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": PROMPT}]}
    body = {"id": "c", "trigger": "submit-message", "messages": [user, *messages]}
    return msgspec.json.decode(json.dumps(body), type=ChatRequest)


async def answer(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch, request: ChatRequest, reply: Reply
) -> tuple[list[Any], RunOutcome, FakeProvider]:
    """The example's model agent answering ``request``, the model replying ``reply``."""
    fake = FakeProvider([reply])
    outcomes: list[RunOutcome] = []
    chunks: list[Any] = []
    with anyio.fail_after(20):
        async with serving(fake) as url:
            monkeypatch.setenv("OPENAI_BASE_URL", url + "/v1")
            await collect(create_run(example.model_agent(request), on_finish=outcomes.append), chunks)
    return chunks, outcomes[0], fake


async def test_the_model_s_booking_waits_for_approval_then_runs(
    anyio_backend: str, example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    asking = Reply(
        [
            openai_chunk({"role": "assistant", "content": "Shall I? "}),
            *openai_tool_call(0, "call_b", "book_train", ['{"to": "Po', 'rto", "train": "08:15"}']),
            openai_chunk({}, "tool_calls"),
        ]
    )
    chunks, outcome, fake = await answer(example, monkeypatch, chat_request(), asking)
    assert [chunk.tool_call_id for chunk in chunks if isinstance(chunk, ToolApprovalRequestChunk)] == ["call_b"]
    assert not [entry for entry in trace_of(chunks) if entry[0] == "result"]  # nothing was booked
    assert "book_train" in [tool["function"]["name"] for tool in fake.requests[0]["tools"]]

    stored = msgspec.to_builtins(to_ui_message(outcome.message, id="msg-1"))
    stored["parts"] = [*stored["parts"][:-1], decided_part(stored["parts"][-1], "approved")]
    done = Reply([openai_chunk({"content": "Booked."}), openai_chunk({}, "stop")])
    chunks, _, fake = await answer(example, monkeypatch, chat_request(stored), done)
    assert ("result", "call_b", BOOKED, False) in trace_of(chunks)
    assert {"role": "tool", "tool_call_id": "call_b", "content": json.dumps(BOOKED)} in fake.requests[0]["messages"]

    # A decision on other arguments is refused before any run (the route answers 403).
    stored["parts"][-1]["input"] = {"to": "Lisbon", "train": "08:15"}
    with pytest.raises(ToolApprovalError):
        example.model_agent(chat_request(stored))
