"""LangGraph interrupts: a real compiled graph with a checkpointer asks, the client answers, the graph goes on.

Round 1 streams until the graph's ``interrupt()``; the client sees it as the
AG-UI ``interrupt`` outcome, a ``data-interrupt`` part (UI message stream) or
a ``2:`` data frame (data stream). Round 2 carries the answer (AG-UI's
``resume``, the ``resume`` body field elsewhere), which :func:`langgraph_command`
checks against the thread's pending interrupts and turns into the
``Command(resume=...)`` that continues the graph. LangGraph runs on asyncio
only: the HTTP round trips run there; the event handling runs on both backends.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import httpx
import pytest
from http_servers import langgraph_app
from http_servers.langgraph_app import QUESTION, app, graph
from langgraph.types import Interrupt

from assistant_stream_ce import DataChunk, RunController, create_run
from assistant_stream_ce.approval import approval_id_for, approval_token
from assistant_stream_ce.chat_request import AGUIResumeEntry
from assistant_stream_ce.modules.langgraph import (
    LANGGRAPH_INTERRUPT_REASON,
    append_langgraph_event,
    interrupt_data,
    langgraph_command,
)
from assistant_stream_ce.serialization.ag_ui import AGUIEncoder

pytestmark = pytest.mark.anyio

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


def _sse(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def _data_stream(text: str) -> list[tuple[str, Any]]:
    frames = []
    for line in text.splitlines():
        code, _, value = line.partition(":")
        frames.append((code, json.loads(value)))
    return frames


async def _post(path: str, body: dict[str, Any]) -> httpx.Response:
    with anyio.fail_after(20):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post(path, json=body)


def _thread() -> str:
    return f"thread-{uuid.uuid4().hex}"


async def _pending(thread_id: str) -> list[str]:
    state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    return [interrupt.id for interrupt in state.interrupts]


def _answer(interrupt_id: str, approved: bool) -> list[dict[str, Any]]:
    return [{"interruptId": interrupt_id, "status": "resolved", "payload": {"approved": approved}}]


@asyncio_only
@pytest.mark.parametrize("approved", [True, False])
async def test_ag_ui_interrupt_outcome_then_resume(approved: bool) -> None:
    thread = _thread()
    user = {"id": "u1", "role": "user", "content": "Book a train to Paris"}
    first = _sse((await _post("/agent", {"threadId": thread, "runId": "r1", "messages": [user]})).text)
    assert [e["type"] for e in first if e["type"] == "CUSTOM"] == []  # the interrupt is not a CUSTOM event
    (pending,) = await _pending(thread)
    assert first[-1] == {
        "type": "RUN_FINISHED",
        "threadId": thread,
        "runId": "r1",
        "outcome": {
            "type": "interrupt",
            "interrupts": [{"id": pending, "reason": LANGGRAPH_INTERRUPT_REASON, "metadata": {"value": QUESTION}}],
        },
    }

    before = len(langgraph_app.booked)
    body = {"threadId": thread, "runId": "r2", "messages": [user], "resume": _answer(pending, approved)}
    second = _sse((await _post("/agent", body)).text)
    text = "".join(e["delta"] for e in second if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == ("Booked." if approved else "I did not book it.")
    assert second[-1]["outcome"] == {"type": "success"}
    assert len(langgraph_app.booked) - before == int(approved)
    assert await _pending(thread) == []


@asyncio_only
async def test_ui_message_stream_data_part_then_resume_continues_the_message() -> None:
    thread = _thread()
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Book a train to Paris"}]}
    first = _sse((await _post("/chat", {"id": thread, "messages": [user]})).text)
    (pending,) = await _pending(thread)
    (part,) = [f for f in first if f["type"] == "data-interrupt"]
    assert part["data"] == {"kind": "interrupt", "id": pending, "reason": LANGGRAPH_INTERRUPT_REASON, "value": QUESTION}
    assert first[-1] == {"type": "finish", "finishReason": "stop"}

    # What Chat sends with sendMessage(undefined, {body: {resume}}): the message as it shows it, and the answer.
    parts = [{"type": "text", "text": "There is a train to Paris at 9:00. ", "state": "done"}]
    parts.append({"type": "data-interrupt", "id": part["id"], "data": part["data"]})
    assistant = {"id": first[0]["messageId"], "role": "assistant", "parts": parts}
    body = {"id": thread, "messages": [user, assistant], "trigger": "submit-message", "resume": _answer(pending, True)}
    second = _sse((await _post("/chat", body)).text)
    assert second[0] == {"type": "start", "messageId": assistant["id"]}
    assert "".join(f["delta"] for f in second if f["type"] == "text-delta") == "Booked."
    assert await _pending(thread) == []


@asyncio_only
async def test_data_stream_data_frame_then_resume() -> None:
    thread = _thread()
    user = {"role": "user", "content": [{"type": "text", "text": "Book a train to Paris"}]}
    first = _data_stream((await _post("/data-stream", {"threadId": thread, "messages": [user]})).text)
    (pending,) = await _pending(thread)
    assert ("2", [interrupt_data(Interrupt(QUESTION, id=pending))]) in first
    assert first[-1][0] == "d"

    body = {"threadId": thread, "messages": [user], "resume": _answer(pending, False)}
    second = _data_stream((await _post("/data-stream", body)).text)
    assert [value for code, value in second if code == "0"] == ["I did not book it."]
    assert [code for code, _ in second if code == "2"] == []
    assert await _pending(thread) == []


@asyncio_only
async def test_an_answer_to_an_interrupt_the_thread_is_not_waiting_on_is_refused() -> None:
    thread = _thread()
    user = {"id": "u1", "role": "user", "content": "Book a train to Paris"}
    await _post("/agent", {"threadId": thread, "runId": "r1", "messages": [user]})
    (pending,) = await _pending(thread)
    before = len(langgraph_app.booked)
    for interrupt_id, on_thread in ((f"{pending}0", thread), (pending, _thread())):
        body = {"threadId": on_thread, "runId": "r2", "messages": [user], "resume": _answer(interrupt_id, True)}
        refused = await _post("/agent", body)
        assert refused.status_code == 409
        assert "not waiting on interrupt" in refused.json()["detail"]
    assert len(langgraph_app.booked) == before  # nothing ran
    assert await _pending(thread) == [pending]


@asyncio_only
async def test_answers_to_tool_approvals_and_no_answers_give_no_command() -> None:
    config: Any = {"configurable": {"thread_id": _thread()}}
    token = approval_token(approval_id_for("call-1"), "signature")
    approval = AGUIResumeEntry(token, "resolved", {"approved": True})
    assert await langgraph_command(graph, config, [approval]) is None
    assert await langgraph_command(graph, config, []) is None
    assert await langgraph_command(graph, config, None) is None


@asyncio_only
async def test_a_cancelled_answer_resumes_with_none() -> None:
    thread = _thread()
    config: Any = {"configurable": {"thread_id": thread}}
    await _post(
        "/agent", {"threadId": thread, "runId": "r1", "messages": [{"id": "u", "role": "user", "content": "x"}]}
    )
    (pending,) = await _pending(thread)
    command = await langgraph_command(graph, config, [AGUIResumeEntry(pending, "cancelled", {"approved": True})])
    assert command is not None
    assert command.resume == {pending: None}


# -- the event handling, on both backends ----------------------------------------------------


INTERRUPT = Interrupt({"question": "Book it?"}, id="i-1")


async def _chunks(body: Any) -> list[Any]:
    with anyio.fail_after(10):
        return [chunk async for chunk in create_run(body)]


async def test_the_controller_sends_each_interrupt_once() -> None:
    async def body(controller: RunController) -> None:
        # A subgraph's interrupt arrives under its namespace and again at the top level.
        append_langgraph_event(controller, ("sub:1",), "updates", {"__interrupt__": (INTERRUPT,)})
        append_langgraph_event(controller, (), "updates", {"__interrupt__": (INTERRUPT,)})
        append_langgraph_event(controller, (), "updates", {"__interrupt__": ()})

    data = [chunk.data for chunk in await _chunks(body) if isinstance(chunk, DataChunk)]
    assert data == [{"kind": "interrupt", "id": "i-1", "reason": LANGGRAPH_INTERRUPT_REASON, "value": INTERRUPT.value}]


async def test_given_only_the_state_interrupts_stay_on_the_server_as_in_0_0_36() -> None:
    async def body(controller: RunController) -> None:
        controller.state = {}
        append_langgraph_event(controller.state, (), "updates", {"__interrupt__": (INTERRUPT,)})

    chunks = await _chunks(body)
    assert [chunk for chunk in chunks if isinstance(chunk, DataChunk)] == []


async def test_ag_ui_finishes_with_tool_approvals_and_data_interrupts_together() -> None:
    async def tool(call: Any) -> None:
        raise AssertionError("a call that waits for approval does not run")

    async def body(controller: RunController) -> None:
        controller.start_tool_call("book_train", tool, args={"to": "Paris"}, needs_approval=True)
        controller.add_data({"kind": "interrupt", "id": "ask-1", "reason": "question", "value": "Window seat?"})
        controller.add_data({"kind": "interrupt", "id": "ask-2"})  # no reason: plain data
        await anyio.lowlevel.checkpoint()

    writer = AGUIEncoder(thread_id="t", run_id="r").open()
    with anyio.fail_after(10):
        text = b"".join([writer.encode(chunk) async for chunk in create_run(body)] + [writer.finish("completed")])
    events = _sse(text.decode())
    assert [e["value"] for e in events if e["type"] == "CUSTOM"] == [{"kind": "interrupt", "id": "ask-2"}]
    approval, question = events[-1]["outcome"]["interrupts"]
    assert (approval["reason"], approval["id"].startswith(approval_id_for(approval["toolCallId"]))) == (
        "tool_approval",
        True,
    )
    assert question == {
        "id": "ask-1",
        "reason": "question",
        "message": "Window seat?",
        "metadata": {"value": "Window seat?"},
    }
