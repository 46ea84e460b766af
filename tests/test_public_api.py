"""Every public name of DESIGN §2 imports from the module path users import it from.

Extend ``PUBLIC_NAMES`` when a module gains public names (the serialization
package adds its encoders and responses).
"""

from __future__ import annotations

import importlib
import inspect
import typing

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
