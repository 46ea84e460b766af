"""State as code written for assistant-stream 0.0.36 drives it: ``StateManager``, ``state_proxy``, a same-text write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage

from assistant_stream_ce import RunController, create_run
from assistant_stream_ce.assistant_stream_chunk import UpdateStateChunk
from assistant_stream_ce.modules.langgraph import append_langgraph_event
from assistant_stream_ce.serialization.data_stream import StateProxyJSONEncoder
from assistant_stream_ce.state import StateKeyError, apply_operations
from assistant_stream_ce.state_manager import StateManager
from assistant_stream_ce.state_proxy import StateProxy


def manager_with_chunks(initial: Any) -> tuple[StateManager, list[UpdateStateChunk]]:
    chunks: list[UpdateStateChunk] = []
    return StateManager(chunks.append, initial), chunks


def test_state_manager_batches_writes_until_flush() -> None:
    manager, chunks = manager_with_chunks({"user": {"name": "A"}, "items": []})

    manager.state["user"]["name"] += "l"
    manager.state["items"].append({"id": 1})
    manager.append_text(["user", "name"], "ice")
    assert chunks == []
    assert manager.state_data == {"user": {"name": "Alice"}, "items": [{"id": 1}]}

    manager.flush()
    manager.flush()  # nothing new: nothing sent

    assert len(chunks) == 1
    assert chunks[0].operations == [
        {"type": "append-text", "path": ["user", "name"], "value": "l"},
        {"type": "set", "path": ["items", "0"], "value": {"id": 1}},
        {"type": "append-text", "path": ["user", "name"], "value": "ice"},
    ]
    assert apply_operations({"user": {"name": "A"}, "items": []}, chunks[0].operations) == manager.state_data


def test_state_manager_applies_wire_operations_and_looks_paths_up() -> None:
    manager, chunks = manager_with_chunks({"a": {"b": "x"}})

    manager.add_operations([{"type": "set", "path": ["a", "c"], "value": [1]}])
    manager.add_operations([{"type": "append-text", "path": ["a", "b"], "value": "y"}])

    assert manager.get_value_at_path(["a", "c"]) == [1]
    assert manager.get_value_at_path(["a", "b"]) == "xy"
    with pytest.raises(KeyError):
        manager.get_value_at_path(["a", "missing"])
    manager.flush()
    assert [op["type"] for op in chunks[0].operations] == ["set", "append-text"]


def test_state_manager_without_state_has_no_proxy() -> None:
    manager, _ = manager_with_chunks(None)
    assert manager.state is None
    assert manager.state_data is None


def test_state_proxy_module_path_gives_the_state_proxy() -> None:
    manager, _ = manager_with_chunks({"k": [1, 2]})
    assert isinstance(manager.state, StateProxy)
    assert json.dumps({"v": manager.state["k"]}, cls=StateProxyJSONEncoder) == '{"v": [1, 2]}'


def test_writing_the_same_text_again_sends_a_set() -> None:
    manager, chunks = manager_with_chunks({"m": [{"text": "hello"}]})

    manager.state["m"][0]["text"] = "hello"
    manager.flush()

    assert chunks[0].operations == [{"type": "set", "path": ["m", "0", "text"], "value": "hello"}]


@pytest.mark.anyio
async def test_a_run_sends_a_set_for_the_same_text_too() -> None:
    async def callback(controller: RunController) -> None:
        controller.state["title"] = "draft"

    operations = [
        op
        async for chunk in create_run(callback, state={"title": "draft"})
        if isinstance(chunk, UpdateStateChunk)
        for op in chunk.operations
    ]
    assert operations == [{"type": "set", "path": ["title"], "value": "draft"}]


def test_langgraph_events_write_through_a_state_manager() -> None:
    manager, chunks = manager_with_chunks({})

    append_langgraph_event(manager.state, (), "messages", (HumanMessage(content="Hi", id="h1"), {}))
    append_langgraph_event(manager.state, (), "messages", (AIMessageChunk(content="Hel", id="a1"), {}))
    append_langgraph_event(manager.state, (), "messages", (AIMessageChunk(content="lo", id="a1"), {}))
    manager.flush()

    messages = manager.state_data["messages"]
    assert [(m["id"], m["content"]) for m in messages] == [("h1", "Hi"), ("a1", "Hello")]
    assert apply_operations({}, chunks[0].operations) == manager.state_data


def test_a_missing_key_is_a_state_key_error() -> None:
    manager, _ = manager_with_chunks({})
    with pytest.raises(StateKeyError):
        manager.state["nope"] += "x"
