"""Run state: the emitted operations rebuild the server's state, for any sequence of writes."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import jsonpatch  # type: ignore[import-untyped]  # RFC 6902, installed with langchain-core
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant_stream_ce import (
    RunController,
    StateKeyError,
    StateProxy,
    UpdateStateChunk,
    create_run,
)
from assistant_stream_ce.assistant_stream_chunk import ObjectStreamOperation
from assistant_stream_ce.serialization._json_patch import StatePatcher
from assistant_stream_ce.state import apply_operations
from assistant_stream_ce.state_manager import StateManager

pytestmark = pytest.mark.anyio

KEYS = st.sampled_from(["a", "b", "c", "msg"])
TEXT = st.text(alphabet="xyzé\n", max_size=4)
LEAVES = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], Any]]:
    """Every (path, value) in the tree, the root included."""
    found = [(path, value)]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _proxy(controller: RunController, path: tuple[str | int, ...]) -> Any:
    node = controller.state
    for key in path:
        node = node[key]
    return node


def _at(model: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        model = model[key]
    return model


@dataclass
class Write:
    kind: str
    path: tuple[str | int, ...]
    value: Any = None


def _draw_write(model: dict[str, Any], draw: st.DrawFn) -> tuple[Write, dict[str, Any]]:
    """Draw one write that is valid for ``model``; return it with the model after it."""
    nodes = _paths(model)
    dicts = [path for path, value in nodes if isinstance(value, dict)]
    strings = [(path, value) for path, value in nodes if path and isinstance(value, str)]
    lists = [(path, value) for path, value in nodes if path and isinstance(value, list)]
    kinds = ["set key", "replace root"]
    kinds += ["append to list", "+= list", "set list item"] if lists else []
    kinds += ["+= text", "extend text by assignment", "append_state_text"] if strings else []
    kind = draw(st.sampled_from(kinds))

    if kind == "replace root":
        value = draw(st.dictionaries(KEYS, JSON, max_size=3))
        return Write(kind, (), value), copy.deepcopy(value)
    if kind == "set key":
        path = (*draw(st.sampled_from(dicts)), draw(KEYS))
        value = draw(JSON)
        _at(model, path[:-1])[path[-1]] = copy.deepcopy(value)
        return Write(kind, path, value), model
    if kind in ("set list item", "append to list", "+= list"):
        path, node = draw(st.sampled_from(lists))
        if kind == "set list item":
            index, value = draw(st.integers(0, len(node))), draw(JSON)  # len(node) appends
            node[index : index + 1] = [copy.deepcopy(value)]
            return Write(kind, (*path, index), value), model
        value = draw(st.lists(JSON, max_size=3)) if kind == "+= list" else draw(JSON)
        node += copy.deepcopy(value) if kind == "+= list" else [copy.deepcopy(value)]
        return Write(kind, path, value), model
    path, node = draw(st.sampled_from(strings))
    delta = draw(TEXT)
    _at(model, path[:-1])[path[-1]] = node + delta
    return Write(kind, path, delta), model


def _write(controller: RunController, write: Write) -> None:
    """Make ``write`` through the controller, the way user code would."""
    kind, path, value = write.kind, write.path, write.value
    if kind == "replace root":
        controller.state = value
    elif kind == "append to list":
        _proxy(controller, path).append(value)
    elif kind == "append_state_text":
        controller.append_state_text(list(path), value)
    else:
        parent, key = _proxy(controller, path[:-1]), path[-1]
        if kind in ("set key", "set list item"):
            parent[key] = value
        elif kind in ("+= list", "+= text"):
            parent[key] += value
        else:
            assert kind == "extend text by assignment"
            parent[key] = parent[key] + value


def _apply_checking_appends(state: Any, operations: list[ObjectStreamOperation]) -> Any:
    """Apply operations one by one, checking that each append-text targets a string that exists."""
    for op in operations:
        if op["type"] == "append-text":
            node = state
            for key in op["path"]:
                assert (isinstance(node, dict) and key in node) or (isinstance(node, list) and int(key) < len(node)), (
                    f"append-text to a missing path {op['path']}"
                )
                node = node[int(key)] if isinstance(node, list) else node[key]
            assert isinstance(node, str), f"append-text to {type(node).__name__} at {op['path']}"
        state = apply_operations(state, [op])
    return state


@st.composite
def write_sequences(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[Write, bool, dict[str, Any]]]]:
    """An initial state and writes valid for it: (write, checkpoint after it, the state after it)."""
    initial = draw(st.dictionaries(KEYS, JSON, max_size=3))
    writes = []
    model = copy.deepcopy(initial)
    for _ in range(draw(st.integers(1, 25))):
        write, model = _draw_write(model, draw)
        writes.append((write, draw(st.booleans()), copy.deepcopy(model)))
    return initial, writes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=write_sequences())
async def test_emitted_operations_rebuild_the_final_state(
    anyio_backend: str, case: tuple[dict[str, Any], list[tuple[Write, bool, dict[str, Any]]]]
) -> None:
    initial, writes = case
    final: list[Any] = []

    async def callback(controller: RunController) -> None:
        for write, checkpoint, expected in writes:
            _write(controller, write)
            assert dict(controller.state.items()) == expected
            if checkpoint:
                await anyio.lowlevel.checkpoint()
        final.append(copy.deepcopy(dict(controller.state.items())))

    operations: list[ObjectStreamOperation] = []
    with anyio.fail_after(5):
        async with create_run(callback, state=copy.deepcopy(initial)) as chunks:
            async for chunk in chunks:
                assert isinstance(chunk, UpdateStateChunk)
                operations += chunk.operations

    assert _apply_checking_appends(copy.deepcopy(initial), operations) == final[0]


async def test_plus_equals_on_a_missing_key_is_a_clear_error(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        with pytest.raises(StateKeyError, match=r"no key 'missing' at path \['missing'\]"):
            controller.state["missing"] += "text"
        with pytest.raises(StateKeyError, match=r"no key 'gone' at path \['nested', 'gone'\]"):
            controller.state["nested"]["gone"] += "text"
        with pytest.raises(StateKeyError, match="out of range"):
            controller.state["items"][3] += "text"
        with pytest.raises(StateKeyError):
            controller.append_state_text(["missing"], "text")
        controller.state["present"] += "!"

    with anyio.fail_after(5):
        async with create_run(callback, state={"nested": {}, "items": [], "present": "yes"}) as chunks:
            received = [chunk async for chunk in chunks]

    assert received == [UpdateStateChunk([{"type": "append-text", "path": ["present"], "value": "!"}])]


async def test_state_reads_give_values_and_proxies(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        state = controller.state
        assert isinstance(state, StateProxy)
        assert state["n"] == 1
        assert isinstance(state["tree"], StateProxy)
        assert state["tree"] == {"list": [1, 2]}
        assert list(state["tree"]["list"]) == [1, 2]
        assert state.get("absent", "default") == "default"
        assert "tree" in state
        assert len(state["tree"]["list"]) == 2
        assert state["tree"]["list"][-1] == 2

    with anyio.fail_after(5):
        async with create_run(callback, state={"n": 1, "tree": {"list": [1, 2]}}) as chunks:
            assert [chunk async for chunk in chunks] == []


async def test_state_is_none_until_set(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        assert controller.state is None
        controller.state = {"a": 1}
        assert controller.state == {"a": 1}

    with anyio.fail_after(5):
        async with create_run(callback) as chunks:
            assert [chunk async for chunk in chunks] == [
                UpdateStateChunk([{"type": "set", "path": [], "value": {"a": 1}}])
            ]


async def test_the_initial_state_is_copied(anyio_backend: str) -> None:
    initial = {"list": [1]}

    async def callback(controller: RunController) -> None:
        controller.state["list"].append(2)

    with anyio.fail_after(5):
        async with create_run(callback, state=initial) as chunks:
            [chunk async for chunk in chunks]
    assert initial == {"list": [1]}


# -- one interpreter: the client's fold, a state manager and the AG-UI patches agree ------------------

_MISSING_AND_ODD_PATHS: list[tuple[Any, list[ObjectStreamOperation]]] = [
    ({"a": {}}, [{"type": "set", "path": ["a", "b"], "value": {"c": [1]}}]),
    ({"a": {}}, [{"type": "set", "path": ["x", "y"], "value": 1}]),  # a missing parent
    ({"l": [1]}, [{"type": "set", "path": ["l", "1"], "value": 2}]),  # the index just past the end appends
    ({"l": [1]}, [{"type": "set", "path": ["l", "3"], "value": 2}]),
    ({"l": [1]}, [{"type": "set", "path": ["l", "-1"], "value": 2}]),
    ({"l": ["a"]}, [{"type": "append-text", "path": ["l", "-1"], "value": "b"}]),
    ({"l": [1]}, [{"type": "set", "path": ["l", "x"], "value": 2}]),
    ({"l": [[1], "s"]}, [{"type": "set", "path": ["l", "0", "0"], "value": 2}]),
    ({"a": "s"}, [{"type": "set", "path": ["a", "b"], "value": 1}]),  # a key of a string
    ({"a": 5}, [{"type": "set", "path": ["a", "0"], "value": 1}]),
    ({"a": 1}, [{"type": "append-text", "path": ["a"], "value": "x"}]),  # append to a non-string
    ({"a": None}, [{"type": "append-text", "path": ["a"], "value": "x"}]),
    ({"a": 1}, [{"type": "append-text", "path": ["b"], "value": "x"}]),  # append to a missing key
    ({"a": "s"}, [{"type": "append-text", "path": ["a"], "value": 3}]),  # append a non-string
    ({"a": "s"}, [{"type": "append-text", "path": ["a"], "value": ""}]),
    ({"a": "s"}, [{"type": "delete", "path": ["a"], "value": None}]),  # type: ignore[typeddict-item]
    ({"a": "s"}, [{"type": "set", "path": ["b"], "value": {1: 2}}]),  # not JSON
    ({"a": "s"}, [{"type": "set", "path": [], "value": ["new root"]}]),
    ("ab", [{"type": "append-text", "path": [], "value": "c"}]),
    (
        {"msgs": []},
        [
            {"type": "set", "path": ["msgs", "0"], "value": {"text": ""}},
            {"type": "append-text", "path": ["msgs", "0", "text"], "value": "he"},
            {"type": "append-text", "path": ["msgs", "0", "text"], "value": "llo"},
            {"type": "set", "path": ["msgs", "1"], "value": {"text": "x"}},
            {"type": "set", "path": ["msgs", "0", "text"], "value": "bye"},
        ],
    ),
]


def _outcome(apply: Any) -> Any:
    """What applying gave: the state, or the exception's type and message."""
    try:
        return apply()
    except Exception as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize(("initial", "operations"), _MISSING_AND_ODD_PATHS)
def test_every_reader_of_state_operations_agrees(initial: Any, operations: list[ObjectStreamOperation]) -> None:
    """``apply_operations``, ``StateManager.add_operations`` and the AG-UI patcher: the same state or the same error.

    The AG-UI encoder's patches, applied (RFC 6902) to what the client had, give that state too.
    """

    def managed() -> Any:
        manager = StateManager(lambda chunk: None, copy.deepcopy(initial))
        manager.add_operations(operations)
        return manager.state_data

    def patched() -> Any:
        patcher = StatePatcher(copy.deepcopy(initial))
        assert patcher.apply([]) is None  # the first batch is the snapshot
        patch = patcher.apply(operations)
        if patch is not None:
            client = jsonpatch.apply_patch(initial, [msgspec.to_builtins(op) for op in patch])
            assert client == patcher.state
        return patcher.state

    folded = _outcome(lambda: apply_operations(initial, operations))
    assert _outcome(managed) == folded
    assert _outcome(patched) == folded
