"""End to end over loopback sockets: real servers in subprocesses, streaming HTTP clients.

Stacks: uvicorn (asyncio), hypercorn on asyncio, hypercorn on trio (``-k trio``),
each serving a FastAPI app and a bare Starlette app (tests/http_servers/). The
server reports what happened on its side (finally blocks, on_finish, live run
tasks) at ``/events/{run}``; tests wait for those reports with a bounded poll.
What the browser clients make of the bytes is decided by the real JavaScript
clients (tests/conformance/).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute
from conformance_helpers import adecode_batch
from http_servers import launch, raw_client
from http_servers.apps import MAX_BYTES
from http_servers.scenarios import FULL_STATE, FULL_TOOLS, full_text

pytestmark = pytest.mark.anyio

#: Every server, each with one client backend, so that every stack and every app meets both.
CASES = [
    ("uvicorn/fastapi", "asyncio"),
    ("uvicorn/starlette", "trio"),
    ("hypercorn-asyncio/fastapi", "trio"),
    ("hypercorn-asyncio/starlette", "asyncio"),
    ("hypercorn-trio/fastapi", "asyncio"),
    ("hypercorn-trio/starlette", "trio"),
]
JS_FORMATS = ("data-stream", "assistant-transport", "ui-message-stream", "ag-ui")
FORMATS = (*JS_FORMATS, "openai")
SSE_FORMATS = ("assistant-transport", "ui-message-stream", "ag-ui", "openai")

_USE_CHAT = {
    "id": "chat-1",
    "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
    "trigger": "submit-message",
    "messageId": None,
}
#: What each format's client POSTs.
REQUESTS: dict[str, dict[str, Any]] = {
    "data-stream": {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": {},
        "unstable_assistantMessageId": "a1",
    },
    "assistant-transport": {
        "commands": [
            {
                "type": "add-message",
                "message": {"role": "user", "parts": [{"type": "text", "text": "hi"}]},
                "parentId": None,
                "sourceId": None,
            }
        ],
        "state": None,
        "system": None,
        "tools": {},
        "threadId": None,
    },
    "ui-message-stream": _USE_CHAT,
    "openai": _USE_CHAT,
    "ag-ui": _USE_CHAT,
}


# -- servers and clients ------------------------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, launch.Server]]:
    started = launch.start_all([(stack, app) for stack in launch.STACKS for app in launch.APPS])
    try:
        yield {server.name: server for server in started}
    finally:
        outputs = {server.name: launch.stop(server) for server in started}
    for name, output in outputs.items():
        assert "Traceback" not in output, f"{name} logged a traceback:\n{output}"


@pytest.fixture(params=CASES, ids=[f"{name}-{backend}" for name, backend in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return tuple(request.param)  # type: ignore[return-value]


@pytest.fixture
def anyio_backend(case: tuple[str, str]) -> str:
    return case[1]


@pytest.fixture
def server(case: tuple[str, str], servers: dict[str, launch.Server]) -> launch.Server:
    return servers[case[0]]


def client_for(server: launch.Server) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    return httpx.AsyncClient(base_url=server.url, timeout=30.0, limits=limits)


def new_run(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def stream_url(fmt: str, run: str, scenario: str, **options: float | str) -> str:
    query = "&".join(f"{name}={value}" for name, value in {"run": run, "scenario": scenario, **options}.items())
    return f"/stream/{fmt}?{query}"


async def fetch(client: httpx.AsyncClient, fmt: str, run: str, scenario: str, **options: float | str) -> list[bytes]:
    """The response body, in the pieces that came off the wire."""
    async with client.stream("POST", stream_url(fmt, run, scenario, **options), json=REQUESTS[fmt]) as response:
        assert response.status_code == 200, await response.aread()
        return [piece async for piece in response.aiter_raw()]


async def server_events(client: httpx.AsyncClient, run: str, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The server's report on ``run``, once ``until`` holds (bounded poll of a test-only endpoint)."""
    with anyio.fail_after(15):
        while True:
            report: dict[str, Any] = (await client.get(f"/events/{run}")).json()
            if until(report):
                return report
            await anyio.sleep(0.02)


def finished(report: dict[str, Any]) -> bool:
    return any(event["kind"] == "on_finish" for event in report["events"])


def outcome_of(report: dict[str, Any]) -> dict[str, Any]:
    (outcome,) = [event for event in report["events"] if event["kind"] == "on_finish"]
    return outcome


def names(report: dict[str, Any], kind: str) -> list[str]:
    return sorted(event["name"] for event in report["events"] if event["kind"] == kind)


# -- what a client made of a stream ----------------------------------------------------


def sse_payloads(body: bytes) -> list[str]:
    return [line[len("data: ") :] for line in body.decode().split("\n") if line.startswith("data: ")]


def openai_summary(body: bytes) -> dict[str, Any]:
    payloads = sse_payloads(body)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    text, calls, reasons = "", {}, []
    for chunk in chunks:
        (choice,) = chunk["choices"]
        delta = choice["delta"]
        text += delta.get("content") or ""
        for call in delta.get("tool_calls", []):
            entry = calls.setdefault(call["index"], {"name": "", "arguments": ""})
            entry["name"] += call.get("function", {}).get("name") or ""
            entry["arguments"] += call.get("function", {}).get("arguments") or ""
        if choice["finish_reason"] is not None:
            reasons.append(choice["finish_reason"])
    tools = [(c["name"], json.loads(c["arguments"]), None) for _, c in sorted(calls.items())]
    return {"text": text, "tools": tools, "state": None, "done": reasons == ["stop"]}


def summary(fmt: str, message: dict[str, Any]) -> dict[str, Any]:
    """Text, tool calls (name, args, result), state and whether the client saw a normal end."""
    if fmt == "ag-ui":
        results = {m["toolCallId"]: json.loads(m["content"]) for m in message["messages"] if m["role"] == "tool"}
        assistant = [m for m in message["messages"] if m["role"] == "assistant"]
        return {
            "text": "".join(m["content"] or "" for m in assistant),
            "tools": [
                (t["name"], json.loads(t["arguments"]), results.get(t["id"])) for m in assistant for t in m["toolCalls"]
            ],
            "state": message["state"],
            "done": message["terminal"] == ["RUN_FINISHED"],
        }
    parts = message["parts"]
    if fmt == "ui-message-stream":
        done = message["finishReason"] == "stop" and message["chatError"] is None and not message["aborted"]
    else:
        done = message["status"] == "complete/stop"
    return {
        "text": "".join(p["text"] for p in parts if p["type"] == "text"),
        "tools": [(p["toolName"], p["args"], p["result"]) for p in parts if p["type"] == "tool-call"],
        "state": message.get("state"),
        "done": done,
    }


def expected_full(fmt: str) -> dict[str, Any]:
    tools = [(name, args, None if fmt == "openai" else result) for name, args, result in FULL_TOOLS]
    state = None if fmt in ("openai", "ui-message-stream") else FULL_STATE
    return {"text": full_text("hi"), "tools": tools, "state": state, "done": True}


async def summaries(bodies: dict[str, list[bytes]]) -> dict[str, dict[str, Any]]:
    """Decode every body with its format's JavaScript client (one node process), or parse OpenAI's."""
    js = [(key, pieces) for key, pieces in bodies.items() if key.split(":")[0] in JS_FORMATS]
    decoded = await adecode_batch([(key.split(":")[0], pieces) for key, pieces in js])
    result = {key: summary(key.split(":")[0], d.clean()) for (key, _), d in zip(js, decoded, strict=True)}
    for key, pieces in bodies.items():
        if key.split(":")[0] == "openai":
            result[key] = openai_summary(b"".join(pieces))
    return result


# -- 1. every format streams complete -------------------------------------------------


async def test_every_format_streams_complete_and_the_js_clients_decode_it(server: launch.Server) -> None:
    bodies: dict[str, list[bytes]] = {}
    runs = {fmt: new_run(f"full-{fmt}") for fmt in FORMATS}
    async with client_for(server) as client:

        async def one(fmt: str, scenario: str) -> None:
            run = runs[fmt] if scenario == "full" else new_run(f"{scenario}-{fmt}")
            bodies[f"{fmt}:{scenario}"] = await fetch(client, fmt, run, scenario)

        async with anyio.create_task_group() as tg:
            for fmt in FORMATS:
                tg.start_soon(one, fmt, "full")
            for fmt in JS_FORMATS:
                tg.start_soon(one, fmt, "failing")
        failing = {key: bodies.pop(key) for key in list(bodies) if key.endswith(":failing")}
        for key, result in (await summaries(bodies)).items():
            assert result == expected_full(key.split(":")[0]), key
        for run in runs.values():
            report = await server_events(client, run, finished)
            assert outcome_of(report)["status"] == "completed"
            assert outcome_of(report)["text"] == full_text("hi")
            assert names(report, "finally") == names(report, "start")

    # A run that raises: the error reaches every client, and the stream still ends well-formed.
    decoded = await adecode_batch([(key.split(":")[0], pieces) for key, pieces in failing.items()])
    for key, result in zip(failing, decoded, strict=True):
        fmt, message = key.split(":")[0], result.clean()
        if fmt == "ag-ui":
            assert message["runError"] == "the model is unavailable"
            assert message["terminal"] == ["RUN_ERROR"]
        else:
            assert "the model is unavailable" in str(message["errors"]), fmt
            assert "Starting." in summary(fmt, message)["text"]


# -- 2. disconnects ---------------------------------------------------------------------


def frame_count(fmt: str, pieces: list[bytes]) -> int:
    return b"".join(pieces).count(b"\n\n" if fmt in SSE_FORMATS else b"\n")


def data_stream_text(body: bytes) -> str:
    lines = body.split(b"\n")[:-1]  # the last line may be cut
    return "".join(json.loads(line[2:]) for line in lines if line.startswith(b"0:"))


DISCONNECT_AFTER = (1, 3, 8, 40)


async def hang_up_after(port: int, fmt: str, path: str, k: int) -> bytes:
    """Read the body until it holds ``k`` frames (the piece that completes them included), then close."""
    pieces: list[bytes] = []
    async with await raw_client.connect(port) as connection:
        response = await raw_client.RawResponse.open(connection, path, REQUESTS[fmt])
        assert response.status == 200
        while frame_count(fmt, pieces) < k:
            piece = await response.next_piece()
            assert piece is not None, "the body ended early"
            pieces.append(piece)
    return b"".join(pieces)


async def hang_up_all(
    server: launch.Server, client: httpx.AsyncClient, streams: dict[str, tuple[str, str, int]]
) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Open every stream (run -> format, path, k) at once and hang up each after k frames.

    Then, per run, what its client received and the server's report, once the run
    has ended: cancelled, with every ``finally`` run, the callback's included.
    """
    received: dict[str, bytes] = {}

    async def one(run: str, fmt: str, path: str, k: int) -> None:
        received[run] = await hang_up_after(server.port, fmt, path, k)

    async with anyio.create_task_group() as tg:
        for run, stream in streams.items():
            tg.start_soon(one, run, *stream)
    result: dict[str, tuple[bytes, dict[str, Any]]] = {}
    for run, (fmt, _, k) in streams.items():
        report = await server_events(client, run, finished)
        assert outcome_of(report)["status"] == "cancelled", (fmt, k)
        assert "callback" in names(report, "start")
        assert names(report, "finally") == names(report, "start"), (fmt, k)
        result[run] = (received[run], report)
    return result


async def test_disconnect_after_k_frames_cancels_the_run_and_runs_every_finally(server: launch.Server) -> None:
    runs = {(fmt, k): new_run(f"leave-{fmt}-{k}") for fmt in FORMATS for k in DISCONNECT_AFTER}
    streams = {run: (fmt, stream_url(fmt, run, "endless", heartbeat="none"), k) for (fmt, k), run in runs.items()}
    async with client_for(server) as client:
        ended = await hang_up_all(server, client, streams)
        for (fmt, k), run in runs.items():
            body, report = ended[run]
            outcome = outcome_of(report)
            assert outcome["text"].startswith("Searching. "), (fmt, k)
            started = names(report, "start")
            if k == DISCONNECT_AFTER[-1]:  # mid-tool-call: begun, arguments streaming, no result
                tools = outcome["tool_calls"]
                assert {t["id"] for t in tools} == {"call-a", "call-b"}
                assert all(t["args_text"].startswith('{"query": "') for t in tools)
                assert not any(t["args_finished"] or t["has_result"] for t in tools)
                assert {"tool call-a", "tool call-b"} <= set(started)
            if fmt == "data-stream":
                assert outcome["text"].startswith(data_stream_text(body))
        report = await server_events(client, "none", lambda r: r["live"] == 0)
        assert report["live"] == 0


#: A window longer than server_events waits: a run that sat it out would fail the test.
LONG_WINDOW = 60


async def test_a_callback_that_checks_is_cancelled_saves_its_answer_when_the_client_disconnects(
    server: launch.Server,
) -> None:
    """0.0.36's pattern (check ``is_cancelled``, break, save) saves; its tool call and a callback that
    never checks are cancelled at once (with a window far longer than the test may take)."""
    runs = {(fmt, scenario): new_run(f"{scenario}-{fmt}") for fmt in FORMATS for scenario in ("saving", "endless")}
    # 12 frames: past the tool's start, so the saving callback has read is_cancelled.
    streams = {
        run: (fmt, stream_url(fmt, run, scenario, heartbeat="none", cancel_window=LONG_WINDOW), 12)
        for (fmt, scenario), run in runs.items()
    }
    async with client_for(server) as client:
        ended = await hang_up_all(server, client, streams)
        for (fmt, scenario), run in runs.items():
            _, report = ended[run]
            outcome = outcome_of(report)
            saved = [event for event in report["events"] if event["kind"] == "saved"]
            if scenario == "endless":
                assert saved == [], fmt
                continue
            assert names(report, "start") == ["callback", "tool call-a"], fmt
            assert [event["kind"] for event in report["events"]][-3:] == ["saved", "finally", "on_finish"], fmt
            [event] = saved
            assert outcome["text"].startswith("Searching. "), fmt
            assert event["text"].startswith(outcome["text"]), fmt
            assert event["text"].startswith("Searching. 0 "), fmt
        await server_events(client, "none", lambda r: r["live"] == 0)


# -- 3. a client that stops reading ---------------------------------------------------------


def rss_bytes(group: int) -> int:
    """The resident memory of a server's process group (hypercorn serves from a worker process)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            status = (proc / "status").read_text()
        except OSError:  # the process ended meanwhile
            continue
        # Field 5 of /proc/PID/stat is the process group; the name before it may hold spaces.
        if int(stat.rpartition(")")[2].split()[2]) != group:
            continue
        total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    assert total, f"no process in group {group}"
    return total


async def test_a_client_that_stops_reading_is_dropped_after_send_timeout(server: launch.Server) -> None:
    run = new_run("stuck")
    path = stream_url("data-stream", run, "flood", heartbeat="none", send_timeout=0.5)
    rss_before = rss_bytes(server.pid)
    async with client_for(server) as client, await raw_client.connect(server.port) as stuck:
        stuck.extra(SocketAttribute.raw_socket).setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        await stuck.send(raw_client.request_bytes(path, REQUESTS["data-stream"]))
        # Never read: the server fills its buffers, its send waits, and send_timeout drops us.
        report = await server_events(client, run, finished)
        assert outcome_of(report)["status"] == "cancelled"
        assert names(report, "finally") == names(report, "start") == ["callback", "flood source"]
        (produced,) = [event["bytes"] for event in report["events"] if event["kind"] == "produced"]
        # Backpressure: what was produced is what the socket buffers hold, not what 0.5 s of flooding makes.
        assert produced < 16 * 2**20
        assert rss_bytes(server.pid) - rss_before < 64 * 2**20


# -- 4. heartbeats -------------------------------------------------------------------------


KEEPALIVES = {"data-stream": b"\n\n"}


async def test_heartbeats_fill_an_idle_gap_and_every_client_still_decodes(server: launch.Server) -> None:
    bodies: dict[str, list[bytes]] = {}
    async with client_for(server) as client:

        async def one(fmt: str) -> None:
            bodies[fmt] = await fetch(client, fmt, new_run(f"idle-{fmt}"), "idle", heartbeat=0.1, gap=0.45)

        async with anyio.create_task_group() as tg:
            for fmt in FORMATS:
                tg.start_soon(one, fmt)
    for fmt, pieces in bodies.items():
        keepalive = KEEPALIVES.get(fmt, b": heartbeat\n\n")
        assert b"".join(pieces).count(keepalive) >= 2, fmt
    for fmt, result in (await summaries(bodies)).items():
        assert result["text"] == "before the gap. after the gap.", fmt
        assert result["done"], fmt


async def test_a_client_that_leaves_between_heartbeats_is_noticed(server: launch.Server) -> None:
    """Each heartbeat interrupts the server's wait for the disconnect; after three, the wait still sees it."""
    run = new_run("leave-idle")
    path = stream_url("data-stream", run, "idle", heartbeat=0.05, gap=60)
    async with client_for(server) as client:
        async with await raw_client.connect(server.port) as connection:
            response = await raw_client.RawResponse.open(connection, path, REQUESTS["data-stream"])
            body = b""
            while body.count(b"\n\n") < 3:
                piece = await response.next_piece()
                assert piece is not None, "the idle run ended"
                body += piece
        # Closed in the gap: the run must not sit out its 60 s silence (server_events waits 15 s at most).
        report = await server_events(client, run, finished)
        assert outcome_of(report)["status"] == "cancelled"
        assert outcome_of(report)["text"] == "before the gap. "
        assert names(report, "finally") == names(report, "start") == ["callback"]


# -- 5. many clients at once ------------------------------------------------------------


CONCURRENT_CLIENTS = 200


#: One server per stack for the load test, with both client backends among them.
LOAD_CASES = [
    ("uvicorn/fastapi", "asyncio"),
    ("hypercorn-asyncio/starlette", "trio"),
    ("hypercorn-trio/fastapi", "trio"),
]


@pytest.mark.parametrize("case", LOAD_CASES, ids=[f"{name}-{backend}" for name, backend in LOAD_CASES])
async def test_200_concurrent_streams_all_complete_and_correct(server: launch.Server) -> None:
    bodies: dict[str, list[bytes]] = {}
    async with client_for(server) as client:

        async def one(i: int) -> None:
            fmt = FORMATS[i % len(FORMATS)]
            bodies[f"{fmt}:{i}"] = await fetch(client, fmt, new_run(f"load-{i}"), "full")

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for i in range(CONCURRENT_CLIENTS):
                    tg.start_soon(one, i)
        assert len(bodies) == CONCURRENT_CLIENTS
        for key, result in (await summaries(bodies)).items():
            assert result == expected_full(key.split(":")[0]), key
        await server_events(client, "none", lambda r: r["live"] == 0)


# -- 6. bad requests --------------------------------------------------------------------------


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 8192):
        yield data[start : start + 8192]


async def test_bad_requests_get_a_4xx_with_a_reason_and_the_server_keeps_serving(server: launch.Server) -> None:
    too_big = json.dumps({"messages": [{"role": "user", "content": "x" * MAX_BYTES}]}).encode()
    json_type = {"content-type": "application/json"}
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("not json", "data-stream", {"content": b'{"messages": [', "headers": json_type}, 422, "invalid request body"),
        (
            "wrong type",
            "ui-message-stream",
            {"json": {"messages": [{"id": "m", "role": 3, "parts": []}]}},
            422,
            "$.messages[0].role",
        ),
        ("missing field", "assistant-transport", {"json": {"state": {}}}, 422, "commands"),
        (
            "unknown command",
            "assistant-transport",
            {"json": {"commands": [{"type": "zap"}]}},
            422,
            "$.commands[0].type",
        ),
        ("too large", "data-stream", {"content": too_big, "headers": json_type}, 413, "too large"),
    ]
    async with client_for(server) as client:
        for what, fmt, request, status, reason in cases:
            response = await client.post(f"/stream/{fmt}?run=bad", **request)
            assert response.status_code == status, (what, response.text)
            assert reason in response.text, (what, response.text)
            assert "Traceback" not in response.text, what
            assert "\n" not in response.text.strip(), (what, response.text)
        response = await client.post("/stream/data-stream?run=bad", content=chunked(too_big), headers=json_type)
        assert response.status_code == 413, response.text
        assert "too large" in response.text
        body = b"".join(await fetch(client, "data-stream", new_run("after-bad"), "full"))
        assert data_stream_text(body) == full_text("hi")
        assert body.split(b"\n")[-2].startswith(b'd:{"finishReason":"stop"')
