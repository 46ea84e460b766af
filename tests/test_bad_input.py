"""Bad input fails at the call that got it, and nothing half-written reaches the stream."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    AssistantStreamResponse,
    DataChunk,
    DataStreamEncoder,
    RunController,
    TextDeltaChunk,
    ToolCall,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallController,
    ToolResultChunk,
    UpdateStateChunk,
    create_run,
)
from assistant_stream_ce.resumable import (
    ResumableStreamContext,
    create_in_memory_resumable_stream_store,
    create_resumable_assistant_stream_response,
    create_resumable_stream_context,
)
from assistant_stream_ce.state import apply_operations

pytestmark = pytest.mark.anyio


class NotJson:
    """A value no JSON encoder knows."""


async def _run(callback: Callable[[RunController], Awaitable[None]], state: Any = None) -> list[AssistantStreamChunk]:
    with anyio.fail_after(5):
        async with create_run(callback, state=state) as chunks:
            return [chunk async for chunk in chunks]


STATE_WRITES: dict[str, tuple[Callable[[RunController], None], str]] = {
    "object in a new key": (lambda c: c.state.__setitem__("x", NotJson()), r"at \['x'\] has type NotJson"),
    "object deep in a subtree": (
        lambda c: c.state.__setitem__("x", {"ok": 1, "deep": [1, NotJson()]}),
        r"at \['x', 'deep', '1'\] has type NotJson",
    ),
    "non-str key": (lambda c: c.state.__setitem__("x", {1: "one"}), r"at \['x'\] has a key of type int"),
    "NaN": (lambda c: c.state.__setitem__("x", math.nan), r"at \['x'\] is nan"),
    "replace the root": (lambda c: setattr(c, "state", {"list": [NotJson()]}), r"has type NotJson"),
    "list append": (lambda c: c.state["list"].append(NotJson()), r"has type NotJson"),
    "list +=": (lambda c: c.state["list"].__iadd__([4, NotJson()]), r"has type NotJson"),
    "list extend": (lambda c: c.state["list"].extend([4, NotJson()]), r"has type NotJson"),
    "text += non-str": (lambda c: c.append_state_text(["text"], 5), r"only append str"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("write", STATE_WRITES)
async def test_a_bad_state_write_fails_at_the_call_and_changes_nothing(anyio_backend: str, write: str) -> None:
    bad_write, message = STATE_WRITES[write]

    async def callback(controller: RunController) -> None:
        controller.state["before"] = 1
        with pytest.raises(TypeError, match=message):
            bad_write(controller)
        assert controller.state == {"list": [1, 2, 3], "text": "t", "before": 1}
        controller.state["after"] = 2

    chunks = await _run(callback, state={"list": [1, 2, 3], "text": "t"})

    assert chunks == [
        UpdateStateChunk(
            [{"type": "set", "path": ["before"], "value": 1}, {"type": "set", "path": ["after"], "value": 2}]
        )
    ]


async def test_add_data_rejects_what_is_not_json(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        with pytest.raises(TypeError, match=r"add_data\(\) value is not JSON-serializable.*NotJson"):
            controller.add_data({"fine": 1, "bad": NotJson()})
        controller.add_data({"fine": 1})

    assert await _run(callback) == [DataChunk({"fine": 1})]


def _compat_set_response(tool: ToolCallController, controller: RunController, result: Any, artifact: Any) -> None:
    tool.set_response(result, artifact=artifact)


def _compat_add_tool_result(tool: ToolCallController, controller: RunController, result: Any, artifact: Any) -> None:
    assert artifact is None, "add_tool_result() has no artifact"
    controller.add_tool_result(tool.tool_call_id, result)


RESULT_SETTERS = {"set_response": _compat_set_response, "add_tool_result": _compat_add_tool_result}
BAD_RESULTS = {
    "result": ({"bad": NotJson()}, None, r"the result of tool call 'call_1' is not JSON-serializable.*NotJson"),
    "artifact": ("ok", NotJson(), r"the artifact of tool call 'call_1' is not JSON-serializable.*NotJson"),
}


@pytest.mark.parametrize(
    ("setter", "bad"), [("set_response", "result"), ("set_response", "artifact"), ("add_tool_result", "result")]
)
async def test_a_bad_tool_result_fails_at_the_call_and_sends_nothing(anyio_backend: str, setter: str, bad: str) -> None:
    result, artifact, message = BAD_RESULTS[bad]
    set_result = RESULT_SETTERS[setter]

    async def callback(controller: RunController) -> None:
        tool = await controller.add_tool_call("lookup", "call_1")
        with pytest.raises(TypeError, match=message):
            set_result(tool, controller, result, artifact)
        set_result(tool, controller, "good", None)

    assert await _run(callback) == [
        ToolCallBeginChunk("call_1", "lookup"),
        ToolCallArgsFinishChunk("call_1"),
        ToolResultChunk("call_1", "good"),
    ]


async def test_wrong_types_name_the_argument(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        with pytest.raises(TypeError, match=r"append_text\(\) takes str, not int"):
            controller.append_text(1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="url must be str, not NoneType"):
            controller.add_source("s1", None)  # type: ignore[arg-type]
        tool = await controller.add_tool_call("t", "call_1")
        with pytest.raises(TypeError, match="is_error must be bool"):
            tool.set_response("x", is_error="yes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="duplicate tool_call_id 'call_1'"):
            await controller.add_tool_call("t", "call_1")
        tool.close()
        controller.append_text("still fine")

    chunks = await _run(callback)
    assert chunks == [
        ToolCallBeginChunk("call_1", "t"),
        ToolCallArgsFinishChunk("call_1"),
        TextDeltaChunk("still fine"),
    ]


async def _ended_controller() -> tuple[RunController, ToolCallController]:
    kept: list[tuple[RunController, ToolCallController]] = []

    async def callback(controller: RunController) -> None:
        tool = await controller.add_tool_call("open", "call_open")
        tool.close()
        kept.append((controller, tool))

    await _run(callback, state={"text": "t", "list": []})
    return kept[0]


async def _empty_stream() -> AsyncIterator[AssistantStreamChunk]:
    return
    yield  # pragma: no cover - makes this an async generator


async def _tool_fn(call: object) -> None:
    """A tool that is never started."""


CALLS_AFTER_THE_END: dict[str, Callable[[RunController, ToolCallController], Any]] = {
    "append_text": lambda c, t: c.append_text("x"),
    "append_reasoning": lambda c, t: c.append_reasoning("x"),
    "add_tool_call": lambda c, t: c.add_tool_call("late"),
    "add_tool_result": lambda c, t: c.add_tool_result("call_open", 1),
    "start_tool_call": lambda c, t: c.start_tool_call("late", _tool_fn),
    "add_stream": lambda c, t: c.add_stream(_empty_stream()),
    "add_data": lambda c, t: c.add_data(1),
    "add_error": lambda c, t: c.add_error("x"),
    "add_source": lambda c, t: c.add_source("s", "https://example.com"),
    "add_file": lambda c, t: c.add_file("aGk=", "text/plain"),
    "add_annotations": lambda c, t: c.add_annotations([1]),
    "add_step_start": lambda c, t: c.add_step_start("m"),
    "add_step_finish": lambda c, t: c.add_step_finish("stop"),
    "state =": lambda c, t: setattr(c, "state", {}),
    "state[key] =": lambda c, t: c.state.__setitem__("text", "new"),
    "state[key] +=": lambda c, t: c.state.__setitem__("text", c.state["text"] + "more"),
    "state list append": lambda c, t: c.state["list"].append(1),
    "append_state_text": lambda c, t: c.append_state_text(["text"], "x"),
    "with_parent_id().append_text": lambda c, t: c.with_parent_id("p").append_text("x"),
    "tool.append_args_text": lambda c, t: t.append_args_text("{}"),
    "tool.set_response": lambda c, t: t.set_response(1),
    "tool.close": lambda c, t: t.close(),
}


async def _call(
    call: Callable[[RunController, ToolCallController], Any], controller: RunController, tool: ToolCallController
) -> None:
    result = call(controller, tool)
    if isinstance(result, Awaitable):
        await result


@pytest.mark.parametrize("call", CALLS_AFTER_THE_END)
async def test_any_controller_call_after_the_run_ended_is_a_runtime_error(anyio_backend: str, call: str) -> None:
    controller, tool = await _ended_controller()
    with pytest.raises(RuntimeError, match="the run has ended"):
        await _call(CALLS_AFTER_THE_END[call], controller, tool)
    assert controller.state == {"text": "t", "list": []}, "a refused write leaves the state as it was"


def _nested(depth: int) -> Any:
    """``depth`` objects and lists nested in each other, alternating from an object outside, around a 1."""
    value: Any = 1
    for level in range(depth):
        value = {"k": value} if (depth - level) % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [65, 600, 5000])
async def test_initial_state_nested_deeper_than_the_limit_is_a_value_error(anyio_backend: str, depth: int) -> None:
    async def callback(controller: RunController) -> None:
        """Never runs."""

    with pytest.raises(ValueError, match=r"^initial state at \['k', '0', .*\] nests deeper than 64 levels"):
        create_run(callback, state=_nested(depth))


async def test_state_up_to_the_depth_limit_is_accepted(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        assert controller.state == _nested(64)
        controller.state["k"] = _nested(63)

    chunks = await _run(callback, state=_nested(64))
    assert chunks == [UpdateStateChunk([{"type": "set", "path": ["k"], "value": _nested(63)}])]


async def test_a_state_write_nested_deeper_than_the_limit_fails_and_changes_nothing(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        with pytest.raises(ValueError, match=r"^state value at \['k', 'k', '0', .*\] nests deeper than 64 levels"):
            controller.state["k"] = _nested(64)
        with pytest.raises(ValueError, match="nests deeper than 64 levels"):
            controller.state["k"]["0"] = _nested(999)
        with pytest.raises(ValueError, match="nests deeper than 64 levels"):
            controller.state = [_nested(64)]
        assert controller.state == {"k": [1]}
        controller.state["k"] = _nested(63)

    chunks = await _run(callback, state={"k": [1]})
    assert chunks == [UpdateStateChunk([{"type": "set", "path": ["k"], "value": _nested(63)}])]


def test_applying_operations_checks_the_depth_of_the_result() -> None:
    with pytest.raises(ValueError, match=r"state value at \['a', 'k', .*\] nests deeper than 64 levels"):
        apply_operations({"a": None}, [{"type": "set", "path": ["a"], "value": _nested(64)}])
    assert apply_operations({"a": None}, [{"type": "set", "path": ["a"], "value": _nested(63)}]) == {"a": _nested(63)}


# -- seconds -------------------------------------------------------------------------------------------------------

#: What no option in seconds accepts: a bool is not a duration, NaN is no number, and none is negative.
BAD_SECONDS: dict[str, object] = {"True": True, "nan": math.nan, "-1": -1}


async def _quick(tool: ToolCall) -> None:
    pass


async def _no_events() -> AsyncIterator[Any]:
    return
    yield


def _in_a_run(use: Callable[[RunController, object], Awaitable[object]]) -> Callable[[object], Awaitable[object]]:
    """Make the call inside a run's callback: the run raises what the call raised."""

    async def make(value: object) -> None:
        async def callback(controller: RunController) -> None:
            await use(controller, value)

        await _run(callback)

    return make


async def _start_tool_call(controller: RunController, value: object) -> None:
    controller.start_tool_call("t", _quick, timeout=value)  # type: ignore[arg-type]


async def _start_in_a_batch(controller: RunController, value: object) -> None:
    async with controller.tool_calls() as calls:
        calls.start("t", _quick, timeout=value)  # type: ignore[arg-type]


async def _openai_tool_timeout(controller: RunController, value: object) -> None:
    from assistant_stream_ce.adapters.openai import stream_chat_completion

    await stream_chat_completion(controller, _no_events(), tool_timeout=value)  # type: ignore[arg-type]


async def _anthropic_tool_timeout(controller: RunController, value: object) -> None:
    from assistant_stream_ce.adapters.anthropic import stream_message

    await stream_message(controller, _no_events(), tool_timeout=value)  # type: ignore[arg-type]


async def _nothing(controller: RunController) -> None:
    pass


async def _made(value: object) -> object:
    return value


def _response(option: str) -> Callable[[object], Awaitable[object]]:
    return lambda value: _made(AssistantStreamResponse(create_run(_nothing), DataStreamEncoder(), **{option: value}))


def _resumable_response(option: str) -> Callable[[object], Awaitable[object]]:
    def make(value: object) -> Awaitable[object]:
        context = create_resumable_stream_context(store=create_in_memory_resumable_stream_store())
        return create_resumable_assistant_stream_response(
            context=context, stream_id="s1", callback=_nothing, **{option: value}
        )

    return make


def _resumable_context(value: object) -> Awaitable[object]:
    store = create_in_memory_resumable_stream_store()
    return _made(ResumableStreamContext(store, grace_period=value))  # type: ignore[arg-type]


#: Every option in seconds: (the name its error gives, what makes the call with a value).
SECONDS_OPTIONS: dict[str, tuple[str, Callable[[object], Awaitable[object]]]] = {
    "create_run grace_period": ("grace_period", lambda v: _made(create_run(_nothing, grace_period=v))),  # type: ignore[arg-type]
    "create_run cancel_window": ("cancel_window", lambda v: _made(create_run(_nothing, cancel_window=v))),  # type: ignore[arg-type]
    "start_tool_call timeout": ("timeout", _in_a_run(_start_tool_call)),
    "tool call batch timeout": ("timeout", _in_a_run(_start_in_a_batch)),
    "OpenAI adapter tool_timeout": ("tool_timeout", _in_a_run(_openai_tool_timeout)),
    "Anthropic adapter tool_timeout": ("tool_timeout", _in_a_run(_anthropic_tool_timeout)),
    "response send_timeout": ("send_timeout", _response("send_timeout")),
    "response grace_period": ("grace_period", _response("grace_period")),
    "response heartbeat": ("heartbeat", _response("heartbeat")),
    "resumable response send_timeout": ("send_timeout", _resumable_response("send_timeout")),
    "resumable response heartbeat": ("heartbeat", _resumable_response("heartbeat")),
    "resumable context grace_period": ("grace_period", _resumable_context),
}


# ``heartbeat=True`` means the default interval (as in 0.0.36).
BAD_SECONDS_CASES = [
    (option, bad)
    for option in SECONDS_OPTIONS
    for bad in BAD_SECONDS
    if not (option.endswith("heartbeat") and bad == "True")
]


@pytest.mark.parametrize(("option", "bad"), BAD_SECONDS_CASES)
async def test_every_option_in_seconds_rejects_a_bool_nan_and_a_negative_alike(
    anyio_backend: str, option: str, bad: str
) -> None:
    name, make = SECONDS_OPTIONS[option]
    with anyio.fail_after(5), pytest.raises(ValueError, match=rf"^{name} must be a .*number of seconds"):
        await make(BAD_SECONDS[bad])


@pytest.mark.parametrize("option", SECONDS_OPTIONS)
async def test_every_option_in_seconds_takes_ints_and_floats(anyio_backend: str, option: str) -> None:
    _, make = SECONDS_OPTIONS[option]
    for value in (2, 0.5):
        with anyio.fail_after(5):
            await make(value)
