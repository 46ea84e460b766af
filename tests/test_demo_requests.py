"""What ``POST /api/chat`` of the demo refuses: other content types, other sites, oversize bodies, bad run ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from assistant_stream_ce.chat_request import DEFAULT_MAX_BYTES
from assistant_stream_ce.demo import create_app

pytestmark = pytest.mark.anyio

ORIGIN = "http://127.0.0.1:8000"
CHAT = "/api/chat?format=data-stream"


def chat_body(run_id: str) -> dict[str, Any]:
    return {"runId": run_id, "messages": [{"role": "user", "content": "Plan a weekend in Lisbon"}]}


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(pace=0.001))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [{}, {"origin": ORIGIN}, {"origin": "http://localhost:8000", "host": "localhost:8000"}],
    ids=["no origin (not a browser)", "its own origin", "its own origin by name"],
)
async def test_a_chat_from_the_page_or_a_script_streams_a_run(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post(CHAT, json=chat_body("run-ok"), headers=headers)
    assert response.status_code == 200
    assert response.headers["x-vercel-ai-data-stream"] == "v1"
    assert '0:"' in response.text


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("text/plain", b'{"runId": "r1", "messages": [{"role": "user", "content": "hi"}]}'),
        ("application/x-www-form-urlencoded", b"runId=r1&messages=hi"),
        ("multipart/form-data; boundary=x", b"--x--"),
        (None, b'{"runId": "r1", "messages": [{"role": "user", "content": "hi"}]}'),
    ],
    ids=["text/plain", "form", "multipart", "none"],
)
async def test_a_body_that_is_not_declared_json_is_a_415(
    client: httpx.AsyncClient, content_type: str | None, content: bytes
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post(CHAT, content=content, headers=headers)
    assert response.status_code == 415
    assert response.json() == {"error": "a chat request must be application/json"}
    assert (await client.get("/api/runs/r1")).status_code == 404


async def test_json_with_a_charset_is_json(client: httpx.AsyncClient) -> None:
    content = b'{"runId": "r1", "messages": [{"role": "user", "content": "hi"}]}'
    response = await client.post(CHAT, content=content, headers={"content-type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://attacker.example"},
        {"origin": "http://127.0.0.1:9999"},
        {"origin": "null"},
        # DNS rebinding: the attacker's name now points at 127.0.0.1, so the page is "same-origin".
        {"origin": "http://attacker.example:8000", "host": "attacker.example:8000"},
        {"host": "attacker.example:8000"},
    ],
    ids=["other site", "other port", "opaque origin", "rebound name", "rebound name without origin"],
)
async def test_a_request_from_another_site_is_a_403(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post(CHAT, json=chat_body("r1"), headers=headers)
    assert response.status_code == 403
    assert response.json()["error"].startswith("cross-origin request refused")
    assert (await client.get("/api/runs/r1")).status_code == 404

    stop = await client.post("/api/cancel/r1", headers=headers)
    assert stop.status_code == 403


async def test_an_oversize_body_is_a_413_and_stops_being_read() -> None:
    piece = b" " * 65536
    read = 0
    response: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": piece, "more_body": read < 1600}  # 100 MiB

    async def send(message: dict[str, Any]) -> None:
        response[message["type"]] = message

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/chat",
        "query_string": b"format=data-stream",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")],
    }
    await create_app()(scope, receive, send)
    assert response["http.response.start"]["status"] == 413
    assert read == DEFAULT_MAX_BYTES // len(piece) + 1


async def test_a_run_id_with_a_trailing_newline_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body("run-1\n"))
    assert response.status_code == 400
    assert "runId" in response.json()["error"]
