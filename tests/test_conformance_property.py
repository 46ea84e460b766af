"""Property: any valid chunk sequence, through every format, shows in the real client what it means.

A valid sequence keeps the tool-call invariants (begin once, argument text,
args-finished, at most one result, nothing after it), appends text only to a
string in the state, and ends as a run ends: completed (open calls get their
arguments closed), with an error chunk (the run failed), or anywhere at all
(the client went away). Its meaning is :class:`MessageBuilder`'s message.
Each example is a batch of sequences, decoded in one node process.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from conformance_helpers import FORMATS, client_view, decode_all, encode, encoder_for, expected_view
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant_stream_ce.assistant_stream_chunk import (
    AnnotationsChunk,
    AssistantStreamChunk,
    DataChunk,
    ErrorChunk,
    FileChunk,
    ObjectStreamOperation,
    ReasoningDeltaChunk,
    SourceChunk,
    StepFinishChunk,
    StepStartChunk,
    TextDeltaChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UpdateStateChunk,
)
from assistant_stream_ce.message import MessageBuilder
from assistant_stream_ce.serialization.stream_encoder import FinishStatus

BATCH = 15

#: Text as users send it: any code point, lone surrogates, controls and line separators included.
texts = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        st.sampled_from(["\x00", "\x1f", "\x7f", "\u2028", "\u2029", '"', "\\", "\n", "😀"]),
    ),
    max_size=12,
)
keys = st.text(st.sampled_from("ab/~é \u2028"), min_size=1, max_size=3)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),  # JavaScript numbers hold integers exactly up to 2**53
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(keys, json_values, max_size=3)
#: Results, data and annotations: any string, lone surrogates included (the state keeps to json_values).
any_values = st.recursive(
    st.one_of(scalars, texts),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
#: Tool arguments are text: they may hold lone surrogates too.
args_objects = st.dictionaries(keys, st.one_of(json_values, texts), max_size=3)


@dataclass
class _Call:
    tool_call_id: str
    pieces: list[str]
    args_finished: bool = False
    has_result: bool = False


@dataclass
class _Run:
    """What the generator has emitted so far (to keep the sequence valid)."""

    chunks: list[AssistantStreamChunk] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)
    state: Any = None
    step_open: bool = False

    def strings(self, node: Any, path: tuple[str, ...] = ()) -> list[list[str]]:
        """Paths of the state that hold a string (where append-text is valid)."""
        if isinstance(node, str):
            return [list(path)]
        if isinstance(node, dict):
            return [found for key, child in node.items() for found in self.strings(child, (*path, key))]
        return []

    def dicts(self, node: Any, path: tuple[str, ...] = ()) -> list[list[str]]:
        if not isinstance(node, dict):
            return []
        return [list(path)] + [found for key, child in node.items() for found in self.dicts(child, (*path, key))]


def _state_operations(draw: st.DrawFn, run: _Run) -> list[ObjectStreamOperation]:
    operations: list[ObjectStreamOperation] = []
    if run.state is None:
        run.state = draw(json_objects)
        operations.append({"type": "set", "path": [], "value": run.state})
    for _ in range(draw(st.integers(1, 3))):
        strings = run.strings(run.state)
        if strings and draw(st.booleans()):
            path = draw(st.sampled_from(strings))
            delta = draw(texts)
            operations.append({"type": "append-text", "path": path, "value": delta})
        else:
            path = [*draw(st.sampled_from(run.dicts(run.state))), draw(keys)]
            value = draw(json_values)
            operations.append({"type": "set", "path": path, "value": value})
        run.state = _apply(run.state, operations[-1])
    return operations


def _apply(state: Any, operation: ObjectStreamOperation) -> Any:
    builder = MessageBuilder(json.loads(json.dumps(state)))
    builder.add(UpdateStateChunk(operations=[operation]))
    return builder.message.state


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[AssistantStreamChunk], FinishStatus]:
    """A valid chunk sequence and how its run ended."""
    run = _Run()
    emit = run.chunks.append
    for _ in range(draw(st.integers(0, 14))):
        streaming = [call for call in run.calls if call.pieces]
        unanswered = [call for call in run.calls if not call.has_result]
        closable = [call for call in unanswered if not call.pieces and not call.args_finished]
        open_args = [call for call in unanswered if not call.args_finished]
        actions = ["text", "reasoning", "tool", "data", "annotations", "source", "file", "state"]
        actions += ["args"] * bool(streaming) + ["args-finish"] * bool(closable) + ["result"] * bool(unanswered)
        actions += ["step"] * (not open_args)  # a step ends after its calls' arguments (data stream clients close them)
        match draw(st.sampled_from(actions)):
            case "text":
                emit(TextDeltaChunk(draw(texts), draw(st.sampled_from([None, None, "parent-1"]))))
            case "reasoning":
                emit(ReasoningDeltaChunk(draw(texts), draw(st.sampled_from([None, None, "parent-1"]))))
            case "tool":
                call_id = f"call_{len(run.calls)}"
                args_text = json.dumps(draw(args_objects), ensure_ascii=draw(st.booleans()))
                cuts = sorted(draw(st.lists(st.integers(0, len(args_text)), max_size=4)))
                bounds = [0, *cuts, len(args_text)]
                pieces = [args_text[a:b] for a, b in itertools.pairwise(bounds)]
                run.calls.append(_Call(call_id, [piece for piece in pieces if piece]))
                emit(ToolCallBeginChunk(call_id, draw(st.sampled_from(["search", "get_weather", "echo_é"]))))
            case "args":
                call = draw(st.sampled_from(streaming))
                emit(ToolCallDeltaChunk(call.tool_call_id, call.pieces.pop(0)))
            case "args-finish":
                call = draw(st.sampled_from(closable))
                call.args_finished = True
                emit(ToolCallArgsFinishChunk(call.tool_call_id))
            case "result":
                call = draw(st.sampled_from(unanswered))
                call.has_result, call.pieces = True, []
                artifact = draw(st.none() | any_values)
                emit(ToolResultChunk(call.tool_call_id, draw(any_values), artifact, draw(st.booleans())))
            case "data":
                emit(DataChunk(draw(any_values)))
            case "annotations":
                emit(AnnotationsChunk(draw(st.lists(any_values, max_size=2))))
            case "source":
                url, title = "https://example.com/" + draw(texts), draw(st.none() | texts)
                emit(SourceChunk(f"src-{len(run.chunks)}", url, title=title))
            case "file":
                data = draw(st.sampled_from(["", "aGVsbG8=", "AAEC/w=="]))
                emit(FileChunk(data, draw(st.sampled_from(["text/plain", "image/png"]))))
            case "state":
                emit(UpdateStateChunk(_state_operations(draw, run)))
            case "step":
                if run.step_open:
                    reason = draw(st.sampled_from(["stop", "tool-calls", "length"]))
                    tokens = draw(st.integers(0, 99)), draw(st.integers(0, 99))
                    emit(StepFinishChunk(reason, *tokens, is_continued=draw(st.booleans())))
                else:
                    emit(StepStartChunk(f"step-{len(run.chunks)}"))
                run.step_open = not run.step_open
    status: FinishStatus = draw(st.sampled_from(["completed", "error", "cancelled"]))
    if status == "error":
        emit(ErrorChunk(draw(texts.filter(bool))))  # an empty error text is sent as a generic message
    elif status == "completed":  # as create_run ends: every call's arguments complete and closed
        for call in run.calls:
            for piece in call.pieces:
                emit(ToolCallDeltaChunk(call.tool_call_id, piece))
            if not call.has_result and not call.args_finished:
                emit(ToolCallArgsFinishChunk(call.tool_call_id))
    return run.chunks, status


Batch = list[tuple[list[AssistantStreamChunk], FinishStatus]]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(runs(), min_size=BATCH, max_size=BATCH))
def test_every_format_shows_what_any_valid_run_sent(batch: Batch) -> None:
    items = [(fmt, encode(encoder_for(fmt), chunks, status), None) for chunks, status in batch for fmt in FORMATS]
    results = iter(decode_all(items))
    for chunks, status in batch:
        builder = MessageBuilder()
        for chunk in chunks:
            builder.add(chunk)
        for fmt in FORMATS:
            decoded = next(results)
            shown = client_view(fmt, decoded)
            assert shown == expected_view(fmt, builder.message, status), (fmt, chunks, status)
