"""The demo command under each server and backend: it starts, streams every format to the end over
loopback HTTP, cancels a run whose client went away, and stops cleanly on Ctrl+C."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from demo_process import DemoProcess, get_json, get_json_post, open_chat

from assistant_stream_ce.__main__ import main
from assistant_stream_ce.demo.agent import TOOL_NAMES
from assistant_stream_ce.demo.cli import _listen, _url

FORMATS = ("data-stream", "assistant-transport", "ui-message-stream")
COMBINATIONS = [("hypercorn", "asyncio"), ("hypercorn", "trio"), ("uvicorn", "asyncio")]


@dataclass
class Seen:
    """What a client of the format would take from the stream."""

    begun: list[str] = field(default_factory=list)  # tool names, in the order the calls began
    results: list[str] = field(default_factory=list)  # tool names, in the order their results arrived
    text: str = ""
    finished: bool = False
    names: dict[str, str] = field(default_factory=dict)  # tool call id -> name

    def begin(self, tool_call_id: str, name: str) -> None:
        self.names[tool_call_id] = name
        self.begun.append(name)

    def result(self, tool_call_id: str) -> None:
        self.results.append(self.names[tool_call_id])


def _read_data_stream(lines: list[str]) -> Seen:
    seen = Seen()
    for line in lines:
        code, _, payload = line.partition(":")
        value = json.loads(payload)
        if code == "b":
            seen.begin(value["toolCallId"], value["toolName"])
        elif code == "a":
            seen.result(value["toolCallId"])
        elif code == "0":
            seen.text += value
        elif code == "d":
            seen.finished = value["finishReason"] == "stop"
    return seen


def _read_assistant_transport(events: list[Any]) -> Seen:
    seen = Seen()
    parts: list[dict[str, Any]] = []
    for event in events:
        if event == "[DONE]":
            seen.finished = True
        elif event["type"] == "part-start":
            parts.append(event["part"])
            if event["part"]["type"] == "tool-call":
                seen.begin(event["part"]["toolCallId"], event["part"]["toolName"])
        elif event["type"] == "text-delta" and parts[event["path"][0]]["type"] == "text":
            seen.text += event["textDelta"]
        elif event["type"] == "result":
            seen.result(parts[event["path"][0]]["toolCallId"])
    return seen


def _read_ui_message_stream(events: list[Any]) -> Seen:
    seen = Seen()
    for event in events:
        if event == "[DONE]":
            continue
        if event["type"] == "tool-input-start":
            seen.begin(event["toolCallId"], event["toolName"])
        elif event["type"] == "tool-output-available":
            seen.result(event["toolCallId"])
        elif event["type"] == "text-delta":
            seen.text += event["delta"]
        elif event["type"] == "finish":
            seen.finished = event["finishReason"] == "stop"
    return seen


def _read(fmt: str, body: str) -> Seen:
    if fmt == "data-stream":
        assert body.endswith("\n")
        return _read_data_stream([line for line in body.split("\n") if line])
    events = [block.removeprefix("data: ") for block in body.split("\n\n") if block.startswith("data: ")]
    assert events[-1] == "[DONE]", "an SSE format ends with data: [DONE]"
    decoded = [event if event == "[DONE]" else json.loads(event) for event in events]
    return _read_assistant_transport(decoded) if fmt == "assistant-transport" else _read_ui_message_stream(decoded)


def _check_full_run(demo: DemoProcess, fmt: str) -> None:
    run_id = f"smoke-{fmt}"
    with open_chat(demo.url, fmt, run_id, "Plan a weekend in Porto") as response:
        assert response.status == 200
        body = response.read().decode()
    seen = _read(fmt, body)
    assert seen.begun == list(TOOL_NAMES)
    assert seen.results == list(TOOL_NAMES), "results arrive in the order the calls began"
    assert "Here is a plan for Porto" in seen.text
    assert seen.finished
    report = get_json(f"{demo.url}/api/runs/{run_id}?wait=10")
    assert report["status"] == "completed"
    assert (report["toolResults"], report["sources"]) == (3, 3)


def _check_disconnect_cancels(demo: DemoProcess) -> None:
    run_id = "smoke-disconnect"
    with open_chat(demo.url, "data-stream", run_id, "Plan a weekend in Porto") as response:
        for line in response:
            if line.startswith(b"b:"):
                break  # the tools are running: hang up
    report = get_json(f"{demo.url}/api/runs/{run_id}?wait=10")
    assert report["status"] == "cancelled"
    assert report["toolResults"] == 0


def _check_stop_by_id(demo: DemoProcess) -> None:
    run_id = "smoke-stop"
    with open_chat(demo.url, "ui-message-stream", run_id, "Plan a weekend in Porto") as response:
        for line in response:
            if b'"tool-input-start"' in line:
                break  # the tools are running: stop the run from another request
        report = get_json_post(f"{demo.url}/api/cancel/{run_id}")
        assert report["status"] == "cancelled"
        response.read()  # the body ends


@pytest.fixture(scope="module")
def demos() -> Iterator[dict[tuple[str, str], DemoProcess]]:
    """One demo process per combination, started side by side (starting Python is the slow part)."""
    processes = {
        (server, backend): DemoProcess("--server", server, "--backend", backend, "--pace", "0.3")
        for server, backend in COMBINATIONS
    }
    with contextlib.ExitStack() as stack:
        for process in processes.values():
            process.start()
            stack.callback(process.stop)
        yield processes


@pytest.mark.parametrize(("server", "backend"), COMBINATIONS)
def test_demo_runs_on_each_server_and_backend(
    demos: dict[tuple[str, str], DemoProcess], server: str, backend: str
) -> None:
    demo = demos[server, backend]
    with demo.showing_log():
        demo.wait_ready()
        config = get_json(demo.url + "/api/config")
        assert (config["server"], config["backend"], config["agent"]) == (server, backend, "scripted")
        assert [fmt["id"] for fmt in config["formats"]] == list(FORMATS)
        for fmt in FORMATS:
            _check_full_run(demo, fmt)
        _check_disconnect_cancels(demo)
        _check_stop_by_id(demo)
        assert demo.stop() == 0, "Ctrl+C stops the demo cleanly"
        log = demo.log()
        assert f"demo: {demo.url}/ " in log, "the demo prints its page's URL"
        for fmt in FORMATS:
            assert f"run smoke-{fmt} completed" in log
        assert "run smoke-disconnect cancelled:" in log
        assert "run smoke-stop cancelled by a stop request" in log
        assert "cancelled before it finished" in log, "the cancelled run's tool tasks ran their cleanup"
        assert "Traceback" not in log


def test_uvicorn_on_trio_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--server", "uvicorn", "--backend", "trio"])
    assert exit_info.value.code == 2
    assert "uvicorn runs on asyncio only; use --server hypercorn for --backend trio" in capsys.readouterr().err


def test_port_0_listens_on_a_free_port_and_the_url_names_it() -> None:
    with _listen("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        assert port != 0
        assert _url(sock) == f"http://127.0.0.1:{port}/"
