"""The demo's live mode against a fake OpenAI-compatible endpoint on loopback, through the real
``openai`` client: the model's three parallel tool calls run as the run's tool calls, their results
reach the client in call order, the task list follows them, and the model's answer streams."""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import anyio
import httpx
import pytest
from demo_process import DemoProcess
from openai import AsyncOpenAI
from provider_fakes import SDK_GENERATORS_ON_TRIO, FakeProvider, Reply, openai_chunk, openai_tool_call, serving

from assistant_stream_ce import (
    AssistantStreamChunk,
    DataChunk,
    SourceChunk,
    ToolCallBeginChunk,
    ToolResultChunk,
    UpdateStateChunk,
    create_run,
)
from assistant_stream_ce.demo.agent import TOOL_NAMES, canned_result
from assistant_stream_ce.demo.cli import _live_agent
from assistant_stream_ce.demo.live import SYSTEM_PROMPT, LiveAgent
from assistant_stream_ce.message import MessageBuilder
from assistant_stream_ce.state import apply_operations

pytestmark = [pytest.mark.anyio, SDK_GENERATORS_ON_TRIO]

ASKS_FOR_TOOLS = Reply(
    [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"reasoning_content": "Three lookups, all at once."}),
        *openai_tool_call(0, "call_w", "get_weather", ['{"pla', 'ce": "Oslo"}']),
        *openai_tool_call(1, "call_e", "find_events", ['{"place": "Oslo", "limit": 3}']),
        *openai_tool_call(2, "call_t", "estimate_travel", ['{"to": ', '"Oslo"}']),
        openai_chunk({}, "tool_calls"),
    ]
)
ANSWERS = Reply(
    [
        openai_chunk({"role": "assistant", "content": ""}, id="chatcmpl-2"),
        openai_chunk({"content": "Oslo looks sunny; "}, id="chatcmpl-2"),
        openai_chunk({"content": "take the morning train."}, id="chatcmpl-2"),
        openai_chunk({}, "stop", id="chatcmpl-2"),
    ]
)


async def _live_run(provider: FakeProvider, **kwargs: Any) -> list[AssistantStreamChunk]:
    async with (
        serving(provider) as base_url,
        AsyncOpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0, timeout=10) as client,
    ):
        agent = LiveAgent(client, "demo-model", pace=0.02)
        messages = [{"role": "user", "content": "Plan a weekend in Oslo"}]
        async with create_run(functools.partial(agent, messages=messages, **kwargs)) as chunks:
            return [chunk async for chunk in chunks]


async def test_live_mode_streams_the_model_and_runs_its_tools(anyio_backend: str) -> None:
    provider = FakeProvider([ASKS_FOR_TOOLS, ANSWERS])
    chunks = await _live_run(provider)

    begun = {c.tool_call_id: c.tool_name for c in chunks if isinstance(c, ToolCallBeginChunk)}
    assert list(begun.values()) == list(TOOL_NAMES)
    results = [(begun[c.tool_call_id], c.result) for c in chunks if isinstance(c, ToolResultChunk)]
    assert results == [(name, canned_result(name, "Oslo")) for name in TOOL_NAMES], "in call order"

    state: Any = None
    for chunk in chunks:
        if isinstance(chunk, UpdateStateChunk):
            state = apply_operations(state, chunk.operations)
    # a task per call, added when the call's arguments were complete and it started
    assert sorted((task["id"], task["status"]) for task in state["tasks"]) == sorted((n, "done") for n in TOOL_NAMES)

    builder = MessageBuilder()
    for chunk in chunks:
        builder.add(chunk)
    assert builder.message.reasoning == "Three lookups, all at once."
    assert builder.message.text == "Oslo looks sunny; take the morning train."
    assert [c.title for c in chunks if isinstance(c, SourceChunk)] == ["Oslo on Wikipedia"]

    first, second = provider.requests
    assert first["model"] == "demo-model"
    assert first["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert [tool["function"]["name"] for tool in first["tools"]] == list(TOOL_NAMES)
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    call_ids = ("call_w", "call_e", "call_t")
    assert [(m["tool_call_id"], json.loads(m["content"])) for m in tool_messages] == [
        (call_id, canned_result(name, "Oslo")) for call_id, name in zip(call_ids, TOOL_NAMES, strict=True)
    ]


async def test_live_mode_sends_state_as_data_when_asked(anyio_backend: str) -> None:
    chunks = await _live_run(FakeProvider([ASKS_FOR_TOOLS, ANSWERS]), state_as_data=True)
    snapshots = [c.data["state"] for c in chunks if isinstance(c, DataChunk)]
    assert sorted((t["id"], t["status"]) for t in snapshots[-1]["tasks"]) == sorted((n, "done") for n in TOOL_NAMES)


def test_live_agent_needs_no_key_for_a_local_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    agent = _live_agent("local-model", 1.0)
    assert agent.model == "local-model"
    assert str(agent.client.base_url) == "http://127.0.0.1:9/v1/"


async def test_demo_command_uses_the_model_at_openai_base_url(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeProvider([ASKS_FOR_TOOLS, ANSWERS])
    for key in [key for key in os.environ if key.startswith("OPENAI_")]:
        monkeypatch.delenv(key)
    async with serving(provider) as base_url:
        demo = DemoProcess("--backend", anyio_backend, env={"OPENAI_BASE_URL": base_url + "/v1"})
        # Started from this thread (the process lives as long as the thread that started it); the
        # blocking waits run in a worker thread, so this event loop keeps serving the fake provider.
        demo.start()
        try:
            await anyio.to_thread.run_sync(demo.wait_ready)
            async with httpx.AsyncClient(timeout=30) as client:
                assert (await client.get(demo.url + "/api/config")).json()["agent"] == "model gpt-4o-mini"
                body = {"runId": "live", "messages": [{"role": "user", "content": "Plan a weekend in Oslo"}]}
                response = await client.post(demo.url + "/api/chat?format=data-stream", json=body)
        finally:
            status = await anyio.to_thread.run_sync(demo.stop)
    assert status == 0
    assert "run live completed" in demo.log()
    frames = [line.split(":", 1) for line in response.text.splitlines() if line]
    assert "".join(json.loads(value) for code, value in frames if code == "0") == (
        "Oslo looks sunny; take the morning train."
    )
    assert [json.loads(value)["toolCallId"] for code, value in frames if code == "a"] == ["call_w", "call_e", "call_t"]
    assert provider.requests[0]["model"] == "gpt-4o-mini"
