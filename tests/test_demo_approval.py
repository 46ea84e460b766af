"""The demo's booking waits for approval, in every format the page offers.

Round 1 ("Book a train to Porto") announces ``book_train`` with its arguments
and a signed approval request, and ends without booking. Round 2 sends the
decision the page sends: approved, the booking runs and the answer goes on;
denied, it does not run and the denial goes out. A decision whose call was
altered, or that was never asked for, is a 403 and starts no run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from assistant_stream_ce.demo import create_app
from assistant_stream_ce.demo._formats import FORMATS_BY_ID

pytestmark = pytest.mark.anyio

ORIGIN = "http://127.0.0.1:8000"
PROMPT = "Book a train to Porto"
ARGS = {"to": "Porto", "train": "08:15", "seats": 1}
DENIAL = "The user denied this tool call. Reason: Too early"


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(pace=0.001))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield client


def _events(fmt: str, text: str) -> list[dict[str, Any]]:
    """The frames as JSON objects: SSE data, or a data-stream line as ``{"code", "value"}``."""
    if fmt == "data-stream":
        return [
            {"code": line.partition(":")[0], "value": json.loads(line.partition(":")[2])}
            for line in text.splitlines()
            if line
        ]
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def _approval_request(fmt: str, events: list[dict[str, Any]]) -> tuple[str, str, str]:
    """``(tool call id, approval id, signature)`` of the round's approval request."""
    if fmt == "data-stream":
        (frame,) = [e["value"] for e in events if e["code"] == "aui-tool-call-approval"]
        return frame["toolCallId"], frame["approval"]["id"], frame["approval"]["signature"]
    if fmt == "assistant-transport":
        (call,) = [e["part"] for e in events if e["type"] == "part-start" and e["part"]["type"] == "tool-call"]
        (frame,) = [e["approval"] for e in events if e["type"] == "tool-call-approval"]
        return call["toolCallId"], frame["id"], frame["signature"]
    (frame,) = [e for e in events if e["type"] == "tool-approval-request"]
    return frame["toolCallId"], frame["approvalId"], frame["signature"]


def _outcome(fmt: str, events: list[dict[str, Any]]) -> tuple[Any, str]:
    """The call's result (``"denied"`` for the UI message stream's denial) and the answer's text."""
    if fmt == "data-stream":
        (result,) = [e["value"] for e in events if e["code"] == "a"]
        text = "".join(e["value"] for e in events if e["code"] == "0")
        return (result["result"] if not result.get("isError") else ("error", result["result"])), text
    if fmt == "assistant-transport":
        (result,) = [e for e in events if e["type"] == "result"]
        parts = [e["part"]["type"] for e in events if e["type"] == "part-start"]  # a part's path is its index
        texts = [[index] for index, kind in enumerate(parts) if kind == "text"]
        text = "".join(e["textDelta"] for e in events if e["type"] == "text-delta" and e["path"] in texts)
        return (result["result"] if not result.get("isError") else ("error", result["result"])), text
    text = "".join(e["delta"] for e in events if e["type"] == "text-delta")
    (result,) = [e for e in events if e["type"] in ("tool-output-available", "tool-output-denied")]
    return result.get("output", "denied"), text


async def _chat(client: httpx.AsyncClient, fmt: str, body: dict[str, Any]) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post(f"/api/chat?format={fmt}", json=body)


def _decision(call: tuple[str, str, str], approved: bool, **changes: Any) -> dict[str, Any]:
    tool_call_id, approval_id, signature = call
    decision = {
        "toolCallId": tool_call_id,
        "toolName": "book_train",
        "args": ARGS,
        "approvalId": approval_id,
        "signature": signature,
        "approved": approved,
    }
    if not approved:
        decision["reason"] = "Too early"
    return {**decision, **changes}


@pytest.mark.parametrize("fmt", list(FORMATS_BY_ID))
@pytest.mark.parametrize("approved", [True, False], ids=["approve", "deny"])
async def test_booking_waits_for_the_decision(
    client: httpx.AsyncClient, fmt: str, approved: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="assistant_stream_ce.demo")
    history = [{"role": "user", "content": PROMPT}]
    first = _events(fmt, (await _chat(client, fmt, {"runId": "r1", "messages": history})).text)
    call = _approval_request(fmt, first)
    assert (await client.get("/api/runs/r1?wait=5")).json()["status"] == "completed"
    assert "booked the" not in caplog.text

    body = {"runId": "r2", "messages": history, "approval": _decision(call, approved)}
    result, text = _outcome(fmt, _events(fmt, (await _chat(client, fmt, body)).text))
    if approved:
        assert result == {"booked": True, **ARGS, "reference": f"TRN-{call[0][-6:].upper()}"}
        assert text.startswith("Booked: the 08:15 train to Porto")
        assert f"booked the 08:15 train to Porto ({call[0]})" in caplog.text
    else:
        assert result == ("denied" if fmt == "ui-message-stream" else ("error", DENIAL))
        assert text == "Understood, I did not book the train to Porto."
        assert "booked the" not in caplog.text
    report = (await client.get("/api/runs/r2?wait=5")).json()
    assert (report["status"], report["toolCalls"], report["toolResults"]) == ("completed", 1, 1)


@pytest.mark.parametrize(
    "changes",
    [{"args": {**ARGS, "seats": 9}}, {"toolName": "get_weather"}, {"toolCallId": "call-other"}, {"signature": "x"}],
    ids=["altered arguments", "another tool", "another call", "made-up signature"],
)
async def test_a_decision_that_does_not_verify_is_a_403(client: httpx.AsyncClient, changes: dict[str, Any]) -> None:
    history = [{"role": "user", "content": PROMPT}]
    call = _approval_request(
        "ui-message-stream",
        _events(
            "ui-message-stream", (await _chat(client, "ui-message-stream", {"runId": "r1", "messages": history})).text
        ),
    )
    body = {"runId": "r2", "messages": history, "approval": _decision(call, True, **changes)}
    refused = await _chat(client, "ui-message-stream", body)
    assert refused.status_code == 403
    assert "does not verify" in refused.json()["error"]
    assert (await client.get("/api/runs/r2")).status_code == 404
