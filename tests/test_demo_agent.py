"""The demo's scripted agent, run in-process on asyncio and trio: what a client of the run receives."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    DataChunk,
    SourceChunk,
    ToolCallBeginChunk,
    ToolResultChunk,
    UpdateStateChunk,
    create_run,
)
from assistant_stream_ce.demo.agent import TOOL_NAMES, initial_state, plan_trip, topic_of
from assistant_stream_ce.message import MessageBuilder
from assistant_stream_ce.state import apply_operations

pytestmark = pytest.mark.anyio

ALL_DONE = [(task["id"], "done") for task in initial_state("Oslo")["tasks"]]


async def _chunks(**kwargs: Any) -> list[AssistantStreamChunk]:
    agent = functools.partial(plan_trip, prompt="Plan a weekend in Oslo", pace=0.05, **kwargs)
    async with create_run(agent) as chunks:
        return [chunk async for chunk in chunks]


def _statuses(state: Any) -> list[tuple[str, str]]:
    return [(task["id"], task["status"]) for task in state["tasks"]]


@pytest.mark.parametrize(
    ("prompt", "place"),
    [("Plan a weekend in Lisbon", "Lisbon"), ("What should I do in Kyoto?", "Kyoto"), ("hello", "Lisbon")],
)
def test_topic_is_the_place_named(prompt: str, place: str) -> None:
    assert topic_of(prompt) == place


async def test_agent_streams_every_part_with_results_in_call_order(anyio_backend: str) -> None:
    chunks = await _chunks()
    begun = {c.tool_call_id: c.tool_name for c in chunks if isinstance(c, ToolCallBeginChunk)}
    assert list(begun.values()) == list(TOOL_NAMES)
    results = [begun[c.tool_call_id] for c in chunks if isinstance(c, ToolResultChunk)]
    assert results == list(TOOL_NAMES), "the slowest call began first, and its result still comes first"

    state: Any = None
    changes: list[tuple[str, str]] = []  # (task, status) in the order the state operations came
    for chunk in chunks:
        if isinstance(chunk, UpdateStateChunk):
            before = _statuses(state) if state else []
            state = apply_operations(state, chunk.operations)
            changes += [change for change in _statuses(state) if change not in before]
    assert _statuses(state) == ALL_DONE
    assert changes.index(("find_events", "done")) < changes.index(("get_weather", "done")), changes

    builder = MessageBuilder()
    for chunk in chunks:
        builder.add(chunk)
    message = builder.message
    assert "run them at the same time" in message.reasoning
    assert "Here is a plan for Oslo" in message.text
    assert [c.title for c in chunks if isinstance(c, SourceChunk)] == [
        "Oslo forecast",
        "What's on in Oslo",
        "Oslo on Wikipedia",
    ]
    assert not [c for c in chunks if isinstance(c, DataChunk)]


async def test_state_as_data_sends_a_snapshot_per_change(anyio_backend: str) -> None:
    chunks = await _chunks(state_as_data=True)
    snapshots = [c.data["state"] for c in chunks if isinstance(c, DataChunk)]
    assert all(c.data["kind"] == "state" for c in chunks if isinstance(c, DataChunk))
    assert _statuses(snapshots[0]) == [(task, "pending") for task, _ in ALL_DONE], "each snapshot is a copy"
    assert _statuses(snapshots[-1]) == ALL_DONE
    assert len(snapshots) == 1 + 2 * len(ALL_DONE), "the initial state, then each task started and done"
