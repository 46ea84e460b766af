"""The wire formats' own guarantees, on the bytes they write.

Every format: any string survives (non-ASCII, emoji, lone surrogates, control
characters, U+2028); each frame stays one frame; the terminal frames come
exactly once, last, for a completed, failed or cancelled stream, with open
parts closed before them; nothing is written after them. Plus the per-format
decisions documented in docs/streaming-formats.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from assistant_stream_ce import (
    AGUIEncoder,
    AssistantStreamChunk,
    AssistantTransportEncoder,
    DataChunk,
    DataStreamEncoder,
    ErrorChunk,
    OpenAIStreamEncoder,
    ReasoningDeltaChunk,
    ReasoningPartStartChunk,
    RunController,
    StepFinishChunk,
    StepStartChunk,
    StreamEncoder,
    TextDeltaChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UIMessageStreamEncoder,
    UpdateStateChunk,
    create_run,
)
from assistant_stream_ce.serialization._frames import MAX_FRAME_BYTES
from assistant_stream_ce.serialization._tools import UNFINISHED_ARGS_ERROR
from assistant_stream_ce.serialization.stream_encoder import FinishStatus

ENCODERS: dict[str, Callable[[], StreamEncoder]] = {
    "data-stream": DataStreamEncoder,
    "assistant-transport": AssistantTransportEncoder,
    "openai": OpenAIStreamEncoder,
    "ui-message-stream": UIMessageStreamEncoder,
    "ag-ui": AGUIEncoder,
}
STATUSES: list[FinishStatus] = ["completed", "error", "cancelled"]

TRICKY = 'héllo 日本 😀 lone \ud800 and \udfff, ctrl \x00\x01\x1f\x7f\t\r\n, separators \u2028\u2029, quote " \\ end'
TRICKY_ARGS = json.dumps({"q": TRICKY}, ensure_ascii=False)


def frames(fmt: str, body: bytes) -> list[Any]:
    """Parse a body into its frames' values (stdlib JSON: it turns ``\\ud800`` back into a lone surrogate)."""
    text = body.decode("utf-8")  # a lone surrogate never reaches the wire as invalid UTF-8
    if fmt == "data-stream":
        assert text.endswith("\n")
        return [(line.partition(":")[0], json.loads(line.partition(":")[2])) for line in text[:-1].split("\n")]
    assert text.endswith("\n\n")
    parsed: list[Any] = []
    for event in text[:-2].split("\n\n"):
        assert event.startswith("data: "), repr(event)
        assert "\n" not in event, repr(event)
        assert "\r" not in event, repr(event)
        data = event.removeprefix("data: ")
        parsed.append(data if data == "[DONE]" else json.loads(data))
    return parsed


def encode(fmt: str, chunks: Sequence[AssistantStreamChunk], status: FinishStatus = "completed") -> list[Any]:
    writer = ENCODERS[fmt]().open()
    body = b"".join(writer.encode(chunk) for chunk in chunks) + writer.finish(status)
    return frames(fmt, body)


def strings(value: Any) -> list[str]:
    """Every string in a decoded frame (keys excluded)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in strings(item)]
    return []


def is_terminal(fmt: str, frame: Any) -> bool:
    match fmt:
        case "data-stream":
            return bool(frame[0] == "d")
        case "ag-ui":
            return bool(frame["type"] in ("RUN_FINISHED", "RUN_ERROR"))
        case _:
            return bool(frame == "[DONE]")


def frame_type(fmt: str, frame: Any) -> str:
    if fmt == "data-stream":
        return str(frame[0])
    return str(frame) if isinstance(frame, str) else str(frame.get("type", "chunk"))


# -- strings survive ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ENCODERS)
def test_any_string_survives_every_format(fmt: str) -> None:
    chunks: list[AssistantStreamChunk] = [
        StepStartChunk(message_id="s1"),
        ReasoningDeltaChunk(reasoning_delta=TRICKY),
        TextDeltaChunk(text_delta=TRICKY),
        ToolCallBeginChunk(tool_call_id="t1", tool_name="search"),
        ToolCallDeltaChunk(tool_call_id="t1", args_text_delta=TRICKY_ARGS),
        ToolCallArgsFinishChunk(tool_call_id="t1"),
        ToolResultChunk(tool_call_id="t1", result={"answer": TRICKY}),
        UpdateStateChunk(operations=[{"type": "set", "path": [], "value": {"notes": TRICKY}}]),
        DataChunk(data={"kind": "note", "text": TRICKY}),
        ErrorChunk(error=TRICKY),
        StepFinishChunk(finish_reason="stop"),
    ]
    parsed = encode(fmt, chunks)
    found = [s for frame in parsed for s in strings(frame)]

    assert TRICKY in found  # the text (and reasoning, error) deltas
    assert TRICKY_ARGS in found  # the tool call's argument text, unchanged
    carried = {"result": {"answer": TRICKY}, "state": {"notes": TRICKY}, "data": {"kind": "note", "text": TRICKY}}
    for what, value in carried.items():
        assert contains(parsed, value) == (what in CARRIES[fmt]), what


CARRIES = {
    "data-stream": {"result", "state", "data"},
    "assistant-transport": {"result", "state", "data"},
    "openai": set(),
    "ui-message-stream": {"result", "data"},
    "ag-ui": {"result", "state", "data"},
}


def contains(value: Any, target: Any) -> bool:
    """Whether ``target`` is in a decoded frame, as a value or as JSON text (AG-UI's tool results)."""
    if value == target:
        return True
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return bool(json.loads(value) == target)
        except ValueError:
            return False
    if isinstance(value, dict):
        return any(contains(item, target) for item in value.values())
    if isinstance(value, list | tuple):
        return any(contains(item, target) for item in value)
    return False


@pytest.mark.parametrize("fmt", ENCODERS)
def test_output_is_compact_raw_utf8(fmt: str) -> None:
    writer = ENCODERS[fmt]().open()
    body = writer.encode(TextDeltaChunk(text_delta="21°C ☀ 日本 \u2028"))
    assert "21°C ☀ 日本 \u2028".encode() in body
    assert b'": ' not in body
    assert b'", "' not in body


#: A delta whose density changes: plain ASCII, then characters JSON escapes (six bytes each), raw
#: UTF-8, a surrogate pair written as two halves and lone surrogates (their pieces go out ASCII-escaped).
DENSE = "a" * 700_000 + "\x00\x1f" * 150_000 + "日本😀" * 80_000 + "\ud83d\ude00" * 90_000 + "\ud800x" * 60_000


def utf16(text: str) -> bytes:
    """The code units a JavaScript client holds (the JSON parser pairs escaped surrogate halves)."""
    return text.encode("utf-16-le", "surrogatepass")


def deltas(fmt: str, parsed: list[Any]) -> dict[str, str]:
    """Every delta of a body joined per kind (text, reasoning, args), as its client joins them."""
    joined: dict[str, str] = {"text": "", "reasoning": "", "args": ""}
    for frame in parsed:
        kind, value = _delta_of(fmt, frame)
        if kind:
            joined[kind] += value
    return joined


def _delta_of(fmt: str, frame: Any) -> tuple[str, str]:
    if fmt == "data-stream":
        prefix, value = frame
        kind = {"0": "text", "g": "reasoning", "c": "args"}.get(prefix, "")
        return kind, value["argsTextDelta"] if kind == "args" else value if kind else ""
    if not isinstance(frame, dict):
        return "", ""
    if fmt == "openai":
        delta = frame["choices"][0]["delta"] if "choices" in frame else {}
        calls = delta.get("tool_calls") or [{}]
        return (
            ("args", calls[0]["function"]["arguments"]) if "tool_calls" in delta else ("text", delta.get("content", ""))
        )
    kinds = {
        "text-delta": "text",  # assistant transport: path 0 is the text part, path 1 the call
        "reasoning-delta": "reasoning",
        "tool-input-delta": "args",
        "TEXT_MESSAGE_CONTENT": "text",
        "REASONING_MESSAGE_CONTENT": "reasoning",
        "TOOL_CALL_ARGS": "args",
    }
    kind = kinds.get(frame["type"], "")
    if fmt == "assistant-transport" and kind:
        kind = {0: "text", 1: "reasoning", 2: "args"}[frame["path"][0]]
    value = frame.get("delta", frame.get("textDelta", frame.get("inputTextDelta", "")))
    return kind, value


@pytest.mark.parametrize("fmt", ENCODERS)
def test_a_huge_delta_is_split_into_frames_of_at_most_1_mib(fmt: str) -> None:
    writer = ENCODERS[fmt]().open()
    chunks: list[AssistantStreamChunk] = [
        TextDeltaChunk(text_delta=DENSE),
        ReasoningDeltaChunk(reasoning_delta=DENSE[::-1]),
        ToolCallBeginChunk(tool_call_id="t1", tool_name="f"),
        ToolCallDeltaChunk(tool_call_id="t1", args_text_delta=DENSE),
    ]
    pieces = [writer.encode(chunk) for chunk in chunks]
    body = b"".join(pieces) + writer.finish("cancelled")
    separator = b"\n" if fmt == "data-stream" else b"\n\n"
    # The UI message stream's tool-input-available (or -error) repeats the whole input: no split can carry that.
    sizes = [len(frame) + len(separator) for frame in body.split(separator)[:-1] if b'"input":' not in frame]
    assert max(sizes) <= MAX_FRAME_BYTES
    assert len(pieces[0].split(separator)) > 4  # split, not one frame
    joined = deltas(fmt, frames(fmt, body))
    assert utf16(joined["text"]) == utf16(DENSE)
    assert utf16(joined["args"]) == utf16(DENSE)
    assert utf16(joined["reasoning"]) == utf16("" if fmt == "openai" else DENSE[::-1])
    for frame in frames(fmt, body):  # no piece ends between the halves of a pair
        _, value = _delta_of(fmt, frame)
        assert not ("\ud83d" <= value[-1:] <= "\udbff" and not value.endswith("\ud800")), value[-3:]


# -- terminal frames -------------------------------------------------------------------------

OPEN_AT_END: list[AssistantStreamChunk] = [
    StepStartChunk(message_id="s1"),
    TextDeltaChunk(text_delta="partial"),
    ToolCallBeginChunk(tool_call_id="t1", tool_name="search"),
    ToolCallDeltaChunk(tool_call_id="t1", args_text_delta='{"q": "x"}'),
    ToolCallBeginChunk(tool_call_id="t2", tool_name="noop"),
    ReasoningDeltaChunk(reasoning_delta="thinking"),
]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("fmt", ENCODERS)
def test_terminal_frames_once_and_last(fmt: str, status: FinishStatus) -> None:
    writer = ENCODERS[fmt]().open()
    body = b"".join(writer.encode(chunk) for chunk in OPEN_AT_END) + writer.finish(status)

    assert writer.finish(status) == b""
    assert writer.finish("completed") == b""
    assert writer.encode(TextDeltaChunk(text_delta="late")) == b""
    assert writer.encode(ErrorChunk(error="late")) == b""

    parsed = frames(fmt, body)
    terminal = [i for i, frame in enumerate(parsed) if is_terminal(fmt, frame)]
    assert terminal == [len(parsed) - 1]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("fmt", ENCODERS)
def test_an_empty_stream_is_well_formed(fmt: str, status: FinishStatus) -> None:
    writer = ENCODERS[fmt]().open()
    parsed = frames(fmt, writer.finish(status))
    assert is_terminal(fmt, parsed[-1])
    if fmt == "ag-ui":
        assert parsed[0]["type"] == "RUN_STARTED"
    if fmt == "ui-message-stream":
        assert parsed[0]["type"] == "start"


@pytest.mark.parametrize("status", STATUSES)
def test_data_stream_terminal(status: FinishStatus) -> None:
    parsed = encode("data-stream", OPEN_AT_END, status)
    reason = {"completed": "tool-calls", "error": "error", "cancelled": "other"}[status]
    if status == "completed":  # the arguments are complete (a call without any gets {})
        calls = [
            ("c", {"toolCallId": "t1", "argsTextDelta": "", "isFinal": True}),
            ("c", {"toolCallId": "t2", "argsTextDelta": "{}", "isFinal": True}),
        ]
    else:  # they never finished: an error result, so that the client does not run the calls
        calls = [("a", {"toolCallId": call, "result": UNFINISHED_ARGS_ERROR, "isError": True}) for call in ("t1", "t2")]
    tail = [
        *calls,
        *([("3", "An error occurred.")] if status == "error" else []),
        ("e", {"finishReason": reason, "usage": {"inputTokens": 0, "outputTokens": 0}, "isContinued": False}),
        ("d", {"finishReason": reason, "usage": {"inputTokens": 0, "outputTokens": 0}}),
    ]
    assert parsed[-len(tail) :] == tail


def test_data_stream_finish_without_steps_adds_no_step() -> None:
    parsed = encode("data-stream", [TextDeltaChunk(text_delta="hi")])
    assert parsed == [("0", "hi"), ("d", {"finishReason": "stop", "usage": {"inputTokens": 0, "outputTokens": 0}})]


def test_data_stream_args_finish_is_a_final_args_frame() -> None:
    parsed = encode(
        "data-stream",
        [
            ToolCallBeginChunk(tool_call_id="t1", tool_name="a", parent_id="p"),
            ToolCallDeltaChunk(tool_call_id="t1", args_text_delta="{}"),
            ToolCallArgsFinishChunk(tool_call_id="t1"),
            ToolResultChunk(tool_call_id="t1", result=None),
            TextDeltaChunk(text_delta="x", parent_id="p"),
        ],
    )
    assert parsed[:-1] == [
        ("b", {"toolCallId": "t1", "toolName": "a", "parentId": "p"}),
        ("c", {"toolCallId": "t1", "argsTextDelta": "{}"}),
        ("c", {"toolCallId": "t1", "argsTextDelta": "", "isFinal": True}),
        ("a", {"toolCallId": "t1", "result": None}),
        ("aui-text-delta", {"textDelta": "x", "parentId": "p"}),
    ]


@pytest.mark.parametrize("status", STATUSES)
def test_assistant_transport_closes_every_open_part(status: FinishStatus) -> None:
    parsed = encode("assistant-transport", OPEN_AT_END, status)
    started = [frame for frame in parsed if frame != "[DONE]" and frame["type"] == "part-start"]
    finished = [frame["path"] for frame in parsed if frame != "[DONE]" and frame["type"] == "part-finish"]
    assert len(started) == 4
    assert sorted(finished) == [[0], [1], [2], [3]]
    args_finished = [
        frame["path"] for frame in parsed if frame != "[DONE]" and frame["type"] == "tool-call-args-text-finish"
    ]
    if status == "completed":
        assert {"type": "text-delta", "textDelta": "{}", "path": [2]} in parsed  # t2 had no arguments
        assert args_finished == [[1], [2]]
    else:  # the arguments never finished: not announced as complete
        assert {"type": "text-delta", "textDelta": "{}", "path": [2]} not in parsed
        assert args_finished == []
    reason = {"completed": "tool-calls", "error": "error", "cancelled": "other"}[status]
    assert parsed[-2] == {
        "type": "message-finish",
        "finishReason": reason,
        "usage": {"inputTokens": 0, "outputTokens": 0},
    }


def test_assistant_transport_args_finish_comes_before_the_result() -> None:
    parsed = encode(
        "assistant-transport",
        [
            ToolCallBeginChunk(tool_call_id="t1", tool_name="a"),
            ToolCallArgsFinishChunk(tool_call_id="t1"),
            ToolResultChunk(tool_call_id="t1", result=1, is_error=True),
        ],
    )
    assert parsed[:5] == [
        {"type": "part-start", "part": {"type": "tool-call", "toolCallId": "t1", "toolName": "a"}, "path": []},
        {"type": "text-delta", "textDelta": "{}", "path": [0]},
        {"type": "tool-call-args-text-finish", "path": [0]},
        {"type": "result", "result": 1, "isError": True, "path": [0]},
        {"type": "part-finish", "path": [0]},
    ]


@pytest.mark.parametrize("status", STATUSES)
def test_ui_message_stream_ends_open_parts_then_finish_error_or_abort(status: FinishStatus) -> None:
    types = [frame_type("ui-message-stream", f) for f in encode("ui-message-stream", OPEN_AT_END, status)]
    ending = {
        "completed": ["finish"],
        "error": ["error", "finish"],
        "cancelled": ["abort"],
    }[status]
    # Arguments still streaming are complete when the run completed, else they never finished.
    tool_input = "tool-input-available" if status == "completed" else "tool-input-error"
    expected = [
        "reasoning-delta",
        "reasoning-end",
        tool_input,
        tool_input,
        "finish-step",
        *ending,
        "[DONE]",
    ]
    assert types[-len(expected) :] == expected
    assert types.count("start") == 1
    assert types[0] == "start"


def test_ui_message_stream_error_ends_the_open_part_first() -> None:
    parsed = encode("ui-message-stream", [TextDeltaChunk(text_delta="a"), ErrorChunk(error="boom")], "error")
    assert parsed[1:] == [
        {"type": "start-step"},
        {"type": "text-start", "id": "t1"},
        {"type": "text-delta", "id": "t1", "delta": "a"},
        {"type": "text-end", "id": "t1"},
        {"type": "error", "errorText": "boom"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "error"},
        "[DONE]",
    ]


@pytest.mark.parametrize("status", STATUSES)
def test_ag_ui_closes_everything_before_one_run_end(status: FinishStatus) -> None:
    parsed = encode("ag-ui", OPEN_AT_END, status)
    types = [frame["type"] for frame in parsed]
    assert types[0] == "RUN_STARTED"
    reasoning_id = next(frame["messageId"] for frame in parsed if frame["type"] == "REASONING_END")
    calls = {
        "completed": [
            {"type": "TOOL_CALL_END", "toolCallId": "t1"},
            {"type": "TOOL_CALL_ARGS", "toolCallId": "t2", "delta": "{}"},  # a call without arguments gets {}
            {"type": "TOOL_CALL_END", "toolCallId": "t2"},
        ],
        "error": [],  # arguments that never finished: no TOOL_CALL_END before RUN_ERROR
        "cancelled": [  # RUN_FINISHED needs every call ended: as they were
            {"type": "TOOL_CALL_END", "toolCallId": "t1"},
            {"type": "TOOL_CALL_END", "toolCallId": "t2"},
        ],
    }[status]
    assert parsed[-len(calls) - 4 : -1] == [
        {"type": "REASONING_MESSAGE_END", "messageId": reasoning_id},
        {"type": "REASONING_END", "messageId": reasoning_id},
        *calls,
        {"type": "STEP_FINISHED", "stepName": "s1"},
    ]
    assert types.count("TEXT_MESSAGE_START") == types.count("TEXT_MESSAGE_END") == 1
    last = parsed[-1]
    if status == "error":
        assert last == {"type": "RUN_ERROR", "message": "An error occurred."}
    elif status == "cancelled":
        assert last["type"] == "RUN_FINISHED"
        assert last["outcome"] == {"type": "cancelled"}
    else:
        assert last["outcome"] == {"type": "success", "pendingToolCallIds": ["t1", "t2"]}


def test_ag_ui_an_error_chunk_ends_the_run_as_run_error() -> None:
    parsed = encode("ag-ui", [TextDeltaChunk(text_delta="a"), ErrorChunk(error="boom"), TextDeltaChunk(text_delta="b")])
    assert [frame["type"] for frame in parsed].count("RUN_ERROR") == 1
    assert parsed[-1] == {"type": "RUN_ERROR", "message": "boom"}


def test_ag_ui_state_snapshot_then_json_patch() -> None:
    encoder = AGUIEncoder(thread_id="th", run_id="r", state={"a~b": {"c/d": 1}, "list": [1], "notes": "x"})
    writer = encoder.open()
    first = frames("ag-ui", writer.encode(UpdateStateChunk(operations=[{"type": "set", "path": ["n"], "value": 0}])))
    second = frames(
        "ag-ui",
        writer.encode(
            UpdateStateChunk(
                operations=[
                    {"type": "set", "path": ["a~b", "c/d"], "value": 2},
                    {"type": "set", "path": ["new"], "value": {"k": []}},
                    {"type": "set", "path": ["list", "1"], "value": 2},
                    {"type": "set", "path": ["list", "0"], "value": 0},
                    {"type": "append-text", "path": ["notes"], "value": "yz"},
                ]
            )
        ),
    )
    assert first == [
        {"type": "RUN_STARTED", "threadId": "th", "runId": "r"},
        {"type": "STATE_SNAPSHOT", "snapshot": {"a~b": {"c/d": 1}, "list": [1], "notes": "x", "n": 0}},
    ]
    assert second == [
        {
            "type": "STATE_DELTA",
            "delta": [
                {"op": "replace", "path": "/a~0b/c~1d", "value": 2},
                {"op": "add", "path": "/new", "value": {"k": []}},
                {"op": "add", "path": "/list/1", "value": 2},
                {"op": "replace", "path": "/list/0", "value": 0},
                {"op": "replace", "path": "/notes", "value": "xyz"},
            ],
        }
    ]
    assert encoder.state == {"a~b": {"c/d": 1}, "list": [1], "notes": "x"}  # each stream starts from a copy


def _text_parts(fmt: str, parsed: list[Any]) -> list[tuple[str, str]]:
    """The text and reasoning parts in ``parsed``, in order, with their text; a tool call is ``("tool", "")``."""
    parts: list[tuple[str, str]] = []
    for frame in parsed:
        kind = frame_type(fmt, frame)
        if kind in ("text-start", "reasoning-start", "TEXT_MESSAGE_START", "REASONING_MESSAGE_START"):
            parts.append(("text" if kind.lower().startswith("text") else "reasoning", ""))
        elif kind in ("tool-input-start", "TOOL_CALL_START"):
            parts.append(("tool", ""))
        elif kind == "part-start":
            part_kind = frame["part"]["type"]
            parts.append(("tool" if part_kind == "tool-call" else part_kind, ""))
        elif kind in ("text-delta", "reasoning-delta", "TEXT_MESSAGE_CONTENT", "REASONING_MESSAGE_CONTENT"):
            # Assistant transport addresses a part by its index (tool arguments are text deltas too).
            index = frame["path"][0] if fmt == "assistant-transport" else len(parts) - 1
            part_kind, text = parts[index]
            if part_kind != "tool":
                parts[index] = (part_kind, text + frame["delta" if "delta" in frame else "textDelta"])
    return parts


@pytest.mark.parametrize("fmt", ["ui-message-stream", "ag-ui", "assistant-transport"])
def test_text_and_reasoning_parts_break_at_the_same_chunks_in_every_part_format(fmt: str) -> None:
    """A delta of the other kind or another parent, a reasoning part start or a tool call ends the open part."""
    chunks: list[AssistantStreamChunk] = [
        TextDeltaChunk(text_delta="a"),
        TextDeltaChunk(text_delta="b"),
        ReasoningDeltaChunk(reasoning_delta="r"),
        TextDeltaChunk(text_delta="c", parent_id="p1"),
        TextDeltaChunk(text_delta="d", parent_id="p1"),
        TextDeltaChunk(text_delta="e"),
        ToolCallBeginChunk(tool_call_id="t1", tool_name="f"),
        ToolCallDeltaChunk(tool_call_id="t1", args_text_delta="{}"),
        TextDeltaChunk(text_delta="f"),
        ReasoningDeltaChunk(reasoning_delta="g"),
        ReasoningPartStartChunk(unstable_summary="s"),
        ReasoningDeltaChunk(reasoning_delta="h"),
        ReasoningDeltaChunk(reasoning_delta="i"),
        TextDeltaChunk(text_delta="j"),
    ]
    assert _text_parts(fmt, encode(fmt, chunks)) == [
        ("text", "ab"),
        ("reasoning", "r"),
        ("text", "cd"),
        ("text", "e"),
        ("tool", ""),
        ("text", "f"),
        ("reasoning", "g"),
        ("reasoning", "hi"),
        ("text", "j"),
    ]


def test_ag_ui_turns_after_tool_results_are_new_messages() -> None:
    parsed = encode(
        "ag-ui",
        [
            TextDeltaChunk(text_delta="a"),
            ToolCallBeginChunk(tool_call_id="t1", tool_name="f"),
            ToolResultChunk(tool_call_id="t1", result="r"),
            TextDeltaChunk(text_delta="b"),
        ],
    )
    first = next(frame["messageId"] for frame in parsed if frame["type"] == "TEXT_MESSAGE_START")
    starts = [frame for frame in parsed if frame["type"] in ("TEXT_MESSAGE_START", "TOOL_CALL_START")]
    assert starts[1]["parentMessageId"] == first
    assert starts[2]["messageId"] != first
    result = next(frame for frame in parsed if frame["type"] == "TOOL_CALL_RESULT")
    assert result["content"] == "r"
    assert result["role"] == "tool"


# -- OpenAI: the openai package rebuilds the message ---------------------------------------


def test_openai_package_rebuilds_text_and_parallel_tool_calls() -> None:
    chunks: list[AssistantStreamChunk] = [
        TextDeltaChunk(text_delta="Let me "),
        TextDeltaChunk(text_delta=TRICKY),
        ToolCallBeginChunk(tool_call_id="call_a", tool_name="weather"),
        ToolCallBeginChunk(tool_call_id="call_b", tool_name="time"),
        ToolCallDeltaChunk(tool_call_id="call_a", args_text_delta='{"city": '),
        ToolCallDeltaChunk(tool_call_id="call_b", args_text_delta="{}"),
        ToolCallDeltaChunk(tool_call_id="call_a", args_text_delta='"Paris"}'),
        ToolCallBeginChunk(tool_call_id="call_c", tool_name="noargs"),
    ]
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for frame in encode("openai", chunks):
        if frame != "[DONE]":
            state.handle_chunk(ChatCompletionChunk.model_validate(frame))
    choice = state.get_final_completion().choices[0]

    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Let me " + TRICKY
    calls = [(call.id, call.function.name, call.function.arguments) for call in choice.message.tool_calls or []]
    assert calls == [("call_a", "weather", '{"city": "Paris"}'), ("call_b", "time", "{}"), ("call_c", "noargs", "{}")]


def test_openai_finish_reason_stop_once_every_call_has_a_result() -> None:
    parsed = encode(
        "openai",
        [
            ToolCallBeginChunk(tool_call_id="a", tool_name="f"),
            ToolResultChunk(tool_call_id="a", result=1),
            TextDeltaChunk(text_delta="done"),
            ErrorChunk(error="boom"),
        ],
    )
    assert {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}} in parsed
    assert parsed[-2]["choices"][0]["finish_reason"] == "stop"


def test_openai_writer_refuses_a_129th_tool_call_and_ends_with_why() -> None:
    """The check the response turns into a failed run; a sink that only finishes still gets the reason."""
    writer = OpenAIStreamEncoder().open()
    for i in range(128):
        writer.encode(ToolCallBeginChunk(tool_call_id=f"call_{i}", tool_name="f"))
    assert writer.encode(ToolCallBeginChunk(tool_call_id="call_0", tool_name="f")) == b""  # a duplicate, dropped
    with pytest.raises(ValueError, match=r"'call_128' \(f\) would be the 129th .* at most 128 tool calls"):
        writer.encode(ToolCallBeginChunk(tool_call_id="call_128", tool_name="f"))
    *_, error, done = frames("openai", writer.finish("error"))
    assert "at most 128 tool calls" in error["error"]["message"]
    assert done == "[DONE]"


def test_openai_cancelled_stream_ends_with_finish_reason_length() -> None:
    """A cut-off turn: the SDK helpers need a finish_reason; unfinished arguments are not completed."""
    chunks: list[AssistantStreamChunk] = [
        TextDeltaChunk(text_delta="Hi"),
        ToolCallBeginChunk(tool_call_id="a", tool_name="f"),
        ToolCallBeginChunk(tool_call_id="b", tool_name="g"),
        ToolCallDeltaChunk(tool_call_id="b", args_text_delta='{"x": '),
    ]
    *_, last, done = encode("openai", chunks, "cancelled")
    assert last["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert done == "[DONE]"
    arguments = [
        call["function"]["arguments"]
        for frame in encode("openai", chunks, "cancelled")[:-1]
        for call in frame["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert arguments == ["", "", '{"x": ']


# -- encoder metadata ------------------------------------------------------------------------


def test_media_types_headers_and_keepalives() -> None:
    data = DataStreamEncoder()
    assert data.get_media_type() == "text/plain; charset=utf-8"
    assert data.get_headers() == {"x-vercel-ai-data-stream": "v1"}
    assert data.get_keepalive_token() == "\n"
    assert UIMessageStreamEncoder().get_headers() == {"x-vercel-ai-ui-message-stream": "v1"}
    for sse in (AssistantTransportEncoder(), OpenAIStreamEncoder(), UIMessageStreamEncoder(), AGUIEncoder()):
        assert sse.get_media_type() == "text/event-stream"
        assert sse.get_keepalive_token() == ": heartbeat\n\n"


# -- encode_stream ---------------------------------------------------------------------------


async def collect(encoder: StreamEncoder, stream: Any) -> bytes:
    return "".join([frame async for frame in encoder.encode_stream(stream)]).encode()


class Abort(BaseException):
    """An application's own BaseException: neither an Exception nor a cancellation."""


@pytest.mark.anyio
@pytest.mark.parametrize("raised", [RuntimeError, Abort], ids=["exception", "base-exception"])
@pytest.mark.parametrize("fmt", ENCODERS)
async def test_encode_stream_of_a_failing_run_ends_well_formed(
    fmt: str, raised: type[BaseException], anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A BaseException that is not a cancellation is then raised by the stream as itself."""

    async def callback(controller: RunController) -> None:
        controller.append_text("before")
        await anyio.lowlevel.checkpoint()
        raise raised("boom")

    got: list[str] = []

    async def read_all() -> None:
        async for frame in ENCODERS[fmt]().encode_stream(create_run(callback)):
            got.append(frame)

    ends = pytest.raises(Abort) if raised is Abort else contextlib.nullcontext()
    with anyio.fail_after(5), caplog.at_level(logging.ERROR, "assistant_stream_ce"), ends:
        await read_all()
    parsed = frames(fmt, "".join(got).encode())

    found = [s for frame in parsed for s in strings(frame)]
    assert "before" in found
    assert found.count("boom") == 1  # the run's error chunk, not a second error frame
    assert [i for i, frame in enumerate(parsed) if is_terminal(fmt, frame)] == [len(parsed) - 1]
    assert any(record.name == "assistant_stream_ce" and record.exc_info for record in caplog.records)


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ENCODERS)
async def test_encode_stream_sends_the_error_of_a_raw_stream(fmt: str, anyio_backend: str) -> None:
    async def stream() -> AsyncIterator[AssistantStreamChunk]:
        yield TextDeltaChunk(text_delta="a")
        raise ValueError("bad upstream")

    with anyio.fail_after(5):
        parsed = frames(fmt, await collect(ENCODERS[fmt](), stream()))
    assert "bad upstream" in [s for frame in parsed for s in strings(frame)]
    assert is_terminal(fmt, parsed[-1])


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ENCODERS)
async def test_encode_stream_of_a_completed_run(fmt: str, anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        controller.append_text("hi")
        tool = await controller.add_tool_call("f", "call_1")
        tool.append_args_text('{"x": 1}')
        tool.set_response({"ok": True})

    with anyio.fail_after(5):
        parsed = frames(fmt, await collect(ENCODERS[fmt](), create_run(callback)))
    found = [s for frame in parsed for s in strings(frame)]
    assert "hi" in found
    assert '{"x": 1}' in found
    assert [i for i, frame in enumerate(parsed) if is_terminal(fmt, frame)] == [len(parsed) - 1]


@pytest.mark.anyio
async def test_encode_stream_closed_early_cancels_the_run(anyio_backend: str) -> None:
    cleaned_up = anyio.Event()

    async def callback(controller: RunController) -> None:
        try:
            controller.append_text("a")
            await anyio.sleep_forever()
        finally:
            cleaned_up.set()

    with anyio.fail_after(5):
        async with contextlib.aclosing(DataStreamEncoder().encode_stream(create_run(callback))) as frames:
            assert await anext(frames) == '0:"a"\n'
        await cleaned_up.wait()


def test_ui_message_stream_keeps_the_step_while_a_call_streams_its_input() -> None:
    parsed = encode(
        "ui-message-stream",
        [
            ToolCallBeginChunk(tool_call_id="a", tool_name="f"),
            ToolCallBeginChunk(tool_call_id="b", tool_name="g"),
            ToolResultChunk(tool_call_id="a", result=1),
            TextDeltaChunk(text_delta="same step: b still streams"),
            ToolCallDeltaChunk(tool_call_id="b", args_text_delta="{}"),
            ToolCallArgsFinishChunk(tool_call_id="b"),
            ToolResultChunk(tool_call_id="b", result=2),
            ReasoningDeltaChunk(reasoning_delta="next step"),
        ],
    )
    types = [frame_type("ui-message-stream", frame) for frame in parsed]
    assert types.count("start-step") == 2
    assert types.index("tool-input-delta") < types.index("finish-step") < types.index("start-step", 2)


def test_ui_message_stream_error_ends_streaming_tool_inputs_first() -> None:
    parsed = encode(
        "ui-message-stream",
        [
            ToolCallBeginChunk(tool_call_id="a", tool_name="f"),
            ToolCallDeltaChunk(tool_call_id="a", args_text_delta='{"x": 1}'),
            ErrorChunk(error="boom"),
        ],
        "error",
    )
    assert parsed[4:6] == [
        {
            "type": "tool-input-error",
            "toolCallId": "a",
            "toolName": "f",
            "input": {"x": 1},
            "errorText": UNFINISHED_ARGS_ERROR,
        },
        {"type": "error", "errorText": "boom"},
    ]
