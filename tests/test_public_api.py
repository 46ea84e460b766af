"""Every public name of DESIGN §2 imports from the module path users import it from.

Extend ``PUBLIC_NAMES`` when a module gains public names (the serialization
package adds its encoders and responses). Every public module path and name of
assistant-stream 0.0.36 (tests/data/upstream_public_names.txt, written by
scripts/upstream_public_names.py from its wheel) imports too, but for the few
that name its private state engine.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from pathlib import Path

import msgspec
import pytest

import assistant_stream_ce
from assistant_stream_ce import assistant_stream_chunk

CHUNK_TYPES = {
    "TextDeltaChunk": "text-delta",
    "ReasoningDeltaChunk": "reasoning-delta",
    "ToolCallBeginChunk": "tool-call-begin",
    "ToolCallDeltaChunk": "tool-call-delta",
    "ToolCallArgsFinishChunk": "tool-call-args-text-finish",
    "ToolResultChunk": "tool-result",
    "DataChunk": "data",
    "ErrorChunk": "error",
    "UpdateStateChunk": "update-state",
    "SourceChunk": "source",
    "FileChunk": "file",
    "AnnotationsChunk": "annotations",
    "StepStartChunk": "step-start",
    "StepFinishChunk": "step-finish",
}

PUBLIC_NAMES: list[tuple[str, str]] = [
    *[
        ("assistant_stream_ce", name)
        for name in ("create_run", "RunController", "ToolCallController", "AssistantStreamChunk", *CHUNK_TYPES)
    ],
    ("assistant_stream_ce.create_run", "create_run"),
    ("assistant_stream_ce.create_run", "RunController"),
    *[("assistant_stream_ce.assistant_stream_chunk", name) for name in ("AssistantStreamChunk", *CHUNK_TYPES)],
    ("assistant_stream_ce.assistant_stream_chunk", "ObjectStreamOperation"),
    ("assistant_stream_ce.assistant_stream_chunk", "ObjectStreamSetOperation"),
    ("assistant_stream_ce.assistant_stream_chunk", "ObjectStreamAppendTextOperation"),
    ("assistant_stream_ce.modules.tool_call", "ToolCallController"),
]

UPSTREAM_NAMES = (Path(__file__).parent / "data" / "upstream_public_names.txt").read_text().split()

# 0.0.36's state engine, replaced by this package's (docs/compatibility.md, "State").
NOT_PROVIDED = {
    f"assistant_stream_ce.state:{name}"
    for name in ("AssistantState", "Flusher", "StateDraft", "StateOpHost", "deep_apply", "lookup_state")
}

# Controller methods of 0.0.36 with their parameters (name, kind), DESIGN §2.
_P, _K = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
CONTROLLER_METHODS: dict[str, list[tuple[str, inspect._ParameterKind]]] = {
    "append_text": [("text_delta", _P)],
    "append_reasoning": [("reasoning_delta", _P)],
    "append_state_text": [("path", _P), ("text_delta", _P)],
    "add_tool_call": [("tool_name", _P), ("tool_call_id", _P)],
    "add_tool_result": [("tool_call_id", _P), ("result", _P)],
    "add_stream": [("stream", _P)],
    "add_data": [("data", _P)],
    "add_error": [("error", _P)],
    "add_source": [("id", _P), ("url", _P), ("title", _P)],
    "add_file": [("data", _P), ("mime_type", _P)],
    "add_annotations": [("annotations", _P)],
    "add_step_start": [("message_id", _P)],
    "add_step_finish": [("finish_reason", _P), ("input_tokens", _P), ("output_tokens", _P), ("is_continued", _P)],
    "flush": [],
    "with_parent_id": [("parent_id", _P)],
}
CONTROLLER_PROPERTIES = ["state", "is_cancelled", "cancelled_event"]
TOOL_CONTROLLER_METHODS: dict[str, list[tuple[str, inspect._ParameterKind]]] = {
    "append_args_text": [("args_text_delta", _P)],
    "set_response": [("result", _P), ("artifact", _K), ("is_error", _K)],
    "close": [],
}


@pytest.mark.parametrize(("module", "name"), PUBLIC_NAMES, ids=[f"{m}:{n}" for m, n in PUBLIC_NAMES])
def test_public_name_imports(module: str, name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module} import {name}", namespace)
    assert namespace[name] is getattr(importlib.import_module(module), name)


def test_package_all_resolves() -> None:
    for name in assistant_stream_ce.__all__:
        assert getattr(assistant_stream_ce, name) is not None, name


def test_create_run_module_and_function_coexist() -> None:
    module = importlib.import_module("assistant_stream_ce.create_run")
    assert inspect.ismodule(module)
    assert module.create_run is assistant_stream_ce.create_run
    assert callable(assistant_stream_ce.create_run)


@pytest.mark.parametrize(("name", "tag"), CHUNK_TYPES.items())
def test_chunk_type_tags(name: str, tag: str) -> None:
    cls = getattr(assistant_stream_chunk, name)
    assert cls.type == tag
    assert cls in typing.get_args(assistant_stream_chunk.AssistantStreamChunk)
    assert issubclass(cls, msgspec.Struct)


def test_chunk_encodes_tagged_with_0036_fields() -> None:
    chunk = assistant_stream_ce.ToolResultChunk(tool_call_id="c1", result={"ok": True})
    assert chunk.type == "tool-result"
    assert msgspec.json.decode(msgspec.json.encode(chunk)) == {
        "type": "tool-result",
        "tool_call_id": "c1",
        "result": {"ok": True},
        "artifact": None,
        "is_error": False,
    }


def _parameters(function: object) -> list[tuple[str, inspect._ParameterKind]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind) for p in signature.parameters.values() if p.name != "self"]


@pytest.mark.parametrize(("method", "parameters"), CONTROLLER_METHODS.items())
def test_run_controller_method(method: str, parameters: list[tuple[str, inspect._ParameterKind]]) -> None:
    assert _parameters(getattr(assistant_stream_ce.RunController, method)) == parameters


@pytest.mark.parametrize("name", CONTROLLER_PROPERTIES)
def test_run_controller_property(name: str) -> None:
    assert isinstance(inspect.getattr_static(assistant_stream_ce.RunController, name), property)


@pytest.mark.parametrize(("method", "parameters"), TOOL_CONTROLLER_METHODS.items())
def test_tool_call_controller_method(method: str, parameters: list[tuple[str, inspect._ParameterKind]]) -> None:
    assert _parameters(getattr(assistant_stream_ce.ToolCallController, method)) == parameters


def test_add_tool_call_is_async() -> None:
    assert inspect.iscoroutinefunction(assistant_stream_ce.RunController.add_tool_call)


def test_create_run_signature() -> None:
    parameters = inspect.signature(assistant_stream_ce.create_run).parameters
    assert list(parameters)[:2] == ["callback", "state"]
    assert parameters["state"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["state"].default is None


@pytest.mark.parametrize("entry", [entry for entry in UPSTREAM_NAMES if entry not in NOT_PROVIDED])
def test_upstream_public_name_imports(entry: str) -> None:
    module_path, _, name = entry.partition(":")
    module = importlib.import_module(module_path)
    if name:
        assert hasattr(module, name), f"{module_path} has no {name}"


def test_not_provided_names_are_upstream_names() -> None:
    """The exceptions name real 0.0.36 names (a typo would hide a missing one)."""
    assert set(UPSTREAM_NAMES) >= NOT_PROVIDED


def test_names_of_later_upstream_releases() -> None:
    assert assistant_stream_ce.ToolCallArgsTextFinishChunk is assistant_stream_ce.ToolCallArgsFinishChunk
    assert assistant_stream_chunk.ToolCallArgsTextFinishChunk is assistant_stream_chunk.ToolCallArgsFinishChunk
    assert assistant_stream_ce.ReasoningPartStartChunk is assistant_stream_chunk.ReasoningPartStartChunk
    assert assistant_stream_chunk.ReasoningPartStartChunk().type == "reasoning-part-start"
    assert "ReasoningPartStartChunk" in assistant_stream_ce.__all__
    assert "ReasoningPartStartChunk" in assistant_stream_chunk.__all__
    parameters = inspect.signature(assistant_stream_ce.RunController.add_reasoning_part).parameters
    assert list(parameters) == ["self", "unstable_summary"]


@pytest.mark.anyio
async def test_read_only_cancellation_signal_is_what_cancelled_event_gives() -> None:
    from assistant_stream_ce.create_run import ReadOnlyCancellationSignal

    seen: list[object] = []

    async def callback(controller: assistant_stream_ce.RunController) -> None:
        seen.append(controller.cancelled_event)

    async for _ in assistant_stream_ce.create_run(callback):
        pass
    assert isinstance(seen[0], ReadOnlyCancellationSignal)
    assert not seen[0].is_set()


def test_generate_openai_style_id() -> None:
    from assistant_stream_ce.serialization.openai_stream import generate_openai_style_id

    ids = {generate_openai_style_id() for _ in range(10)}
    assert len(ids) == 10
    for value in ids:
        assert value.startswith("chatcmpl-")
        assert len(value) == len("chatcmpl-") + 24
        assert value.removeprefix("chatcmpl-").isalnum()


@pytest.mark.anyio
async def test_create_tool_call_streams_one_call_until_its_result() -> None:
    from assistant_stream_ce.modules.tool_call import create_tool_call

    stream, tool = await create_tool_call("lookup", "c1", parent_id="p1")
    tool.append_args_text('{"q": 1}')
    tool.set_response({"ok": True})
    chunks = [chunk async for chunk in stream]

    assert [chunk.type for chunk in chunks] == [
        "tool-call-begin",
        "tool-call-delta",
        "tool-call-args-text-finish",
        "tool-result",
    ]
    assert chunks[0] == assistant_stream_ce.ToolCallBeginChunk(tool_call_id="c1", tool_name="lookup", parent_id="p1")
    with pytest.raises(RuntimeError):
        tool.append_args_text("late")


@pytest.mark.anyio
async def test_create_tool_call_stream_ends_on_close_and_feeds_a_run() -> None:
    from assistant_stream_ce.modules.tool_call import create_tool_call

    async def callback(controller: assistant_stream_ce.RunController) -> None:
        stream, tool = await create_tool_call("client_side", "c2")
        controller.add_stream(stream)
        tool.append_args_text("{}")
        tool.close()

    types = [chunk.type async for chunk in assistant_stream_ce.create_run(callback)]
    assert types == ["tool-call-begin", "tool-call-delta", "tool-call-args-text-finish"]


@pytest.mark.anyio
async def test_one_cancellation_signal_for_runs_and_store_readers() -> None:
    """A run's ``cancelled_event`` is the signal a resumable store's ``read`` takes: one name, one type."""
    from assistant_stream_ce import resumable
    from assistant_stream_ce.resumable import types

    assert assistant_stream_ce.CancellationSignal is resumable.CancellationSignal is types.CancellationSignal
    seen: list[object] = []

    async def callback(controller: assistant_stream_ce.RunController) -> None:
        seen.append(controller.cancelled_event)

    async for _ in assistant_stream_ce.create_run(callback):
        pass
    assert isinstance(seen[0], assistant_stream_ce.CancellationSignal)


def test_the_package_never_imports_its_compatibility_modules() -> None:
    """``modules/`` only re-exports 0.0.36's paths: no import in the package points into it."""
    import ast

    package = Path(assistant_stream_ce.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.parent.name == "modules":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                names = [alias.name for alias in node.names]
                if "modules" in target.split(".") or (target.strip(".") == "" and "modules" in names):
                    offenders.append(f"{path.relative_to(package)}: from {target} import {', '.join(names)}")
            elif isinstance(node, ast.Import):
                offenders += [alias.name for alias in node.names if alias.name.startswith(f"{package.name}.modules")]
    assert offenders == []
