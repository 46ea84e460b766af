"""Runs whose chunks the conformance tests put through every wire format.

Each scenario is a real ``create_run`` callback. :func:`capture` runs it and
keeps what the consumer received (the chunks) and what the run says it sent
(``on_finish``: status and :class:`AssistantMessage`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pydantic

from assistant_stream_ce import create_run
from assistant_stream_ce.assistant_stream_chunk import AssistantStreamChunk
from assistant_stream_ce.create_run import RunController, RunOutcome
from assistant_stream_ce.message import AssistantMessage
from assistant_stream_ce.serialization.stream_encoder import FinishStatus
from assistant_stream_ce.tool_calls import ToolCall


@dataclass
class Captured:
    """A run as its consumer saw it."""

    chunks: list[AssistantStreamChunk]
    message: AssistantMessage
    status: FinishStatus


@dataclass
class Scenario:
    name: str
    callback: Callable[[RunController], Awaitable[None]]
    state: Any = None
    #: The consumer leaves after this many chunks (the run is cancelled).
    stop_after: int | None = None
    #: Backends to run on (a volume test gains nothing from running twice).
    backends: tuple[str, ...] = ("asyncio", "trio")


async def capture(scenario: Scenario) -> Captured:
    """Run ``scenario`` to its end (or the consumer's early exit) and keep what was sent."""
    outcomes: list[RunOutcome] = []
    chunks: list[AssistantStreamChunk] = []
    run = create_run(scenario.callback, state=scenario.state, on_finish=outcomes.append)
    try:
        async with run as stream:
            async for chunk in stream:
                chunks.append(chunk)
                if scenario.stop_after is not None and len(chunks) >= scenario.stop_after:
                    break
    except Boom:
        pass
    (outcome,) = outcomes
    return Captured(chunks, outcome.message, outcome.status)


def capture_all(scenarios: list[Scenario]) -> dict[tuple[str, str], Captured]:
    """Every scenario on each of its backends, by ``(backend, name)``."""
    captured = {}
    for backend in ("asyncio", "trio"):
        mine = [scenario for scenario in scenarios if backend in scenario.backends]

        async def run_all(mine: list[Scenario] = mine) -> list[Captured]:
            return [await capture(scenario) for scenario in mine]

        for scenario, result in zip(mine, anyio.run(run_all, backend=backend), strict=True):
            captured[backend, scenario.name] = result
    return captured


class Boom(Exception):
    """What the failing scenario raises."""


# ---- the scenarios -------------------------------------------------------------


async def text_only(c: RunController) -> None:
    for piece in ["Hello", ", ", "world", "!"]:
        c.append_text(piece)
        await anyio.lowlevel.checkpoint()


async def reasoning_then_text(c: RunController) -> None:
    for piece in ["The user says hi. ", "Answer politely."]:
        c.append_reasoning(piece)
        await anyio.lowlevel.checkpoint()
    for piece in ["Hi ", "there."]:
        c.append_text(piece)
        await anyio.lowlevel.checkpoint()
    c.append_reasoning("Second thought.")
    c.append_text("Done.")


async def reasoning_parts(c: RunController) -> None:
    """Reasoning parts begun with a summary: filled by the reasoning after them, or left empty."""
    c.append_reasoning("Reading the question. ")
    c.add_reasoning_part("Planning")
    c.append_reasoning("First step, ")
    c.append_reasoning("second step.")
    await anyio.lowlevel.checkpoint()
    c.add_reasoning_part("Checking")
    c.append_text("The answer.")
    child = c.with_parent_id("parent-1")
    child.add_reasoning_part("Child 😀 summary")
    child.append_reasoning("child thought")
    c.add_reasoning_part("")
    c.append_reasoning("Last thought.")


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def parallel_tools(c: RunController) -> None:
    c.append_text("Looking up five things.")

    async def lookup(tool: ToolCall) -> Any:
        args = {"city": tool.tool_name, "n": len(tool.tool_call_id), "nested": {"list": [1, 2.5, None, True]}}
        for piece in _pieces(json.dumps(args), 7):
            await tool.append_args_text(piece)
        if tool.tool_call_id == "call_3":
            raise RuntimeError("weather service is down")
        return {"temperature": 20 + len(tool.tool_call_id), "unit": "C", "where": tool.tool_name}

    async with c.tool_calls() as calls:
        for i in range(5):
            calls.start(f"city_{i}", lookup, tool_call_id=f"call_{i}")
    c.append_text("All five answered.")


async def result_while_another_call_streams(c: RunController) -> None:
    """A quick tool answers, and text follows, while a slower call is still streaming its arguments."""
    text_sent = anyio.Event()

    async def slow(tool: ToolCall) -> Any:
        await tool.append_args_text('{"q": ')
        await text_sent.wait()
        await tool.append_args_text('"slow"}')
        return "slow result"

    async def quick(tool: ToolCall) -> Any:
        return "quick result"

    async with c.tool_calls(order="completion") as calls:
        calls.start("slow", slow, tool_call_id="call_slow")
        await calls.start("quick", quick, args={"q": "quick"}, tool_call_id="call_quick")
        c.append_text("The quick one answered.")
        text_sent.set()


async def client_side_tool(c: RunController) -> None:
    """A call the client runs: arguments, no result; the run ends waiting for it."""
    c.append_text("Please confirm.")
    tool = await c.add_tool_call("confirm", "call_client")
    tool.append_args_text('{"question": "Proceed?"}')
    tool.close()


async def state_paths(c: RunController) -> None:
    c.state["doc"]["title"] = "Plan"
    c.state["doc"]["body"]["text"] += "First line."
    await anyio.lowlevel.checkpoint()
    c.append_state_text(["doc", "body", "text"], " Second line.")
    c.state["doc"]["tags"] = ["a", "b"]
    c.append_text("Updated the plan.")
    await anyio.lowlevel.checkpoint()
    c.state["doc"]["body"]["meta"] = {"count": 2, "ok": True, "ratio": 0.5, "none": None}
    c.state["counter"] = 3
    c.append_state_text(["doc", "title"], " (final)")


async def state_the_client_holds(c: RunController) -> None:
    """Changes to the state the client already holds: keys it keeps, text appended to its strings."""
    c.append_state_text(["log"], " and more")
    c.state["count"] = 2
    c.append_text("Noted.")


async def sources_files_data_annotations(c: RunController) -> None:
    c.append_text("See the sources.")
    c.add_source("src-1", "https://example.com/a", "Example A")
    c.add_source("src-2", "https://example.com/b?q=1&r=2")
    c.add_file("aGVsbG8gd29ybGQ=", "text/plain")
    c.add_data({"kind": "progress", "value": 0.5})
    c.add_data([1, "two", {"three": 3}])
    c.add_annotations([{"type": "citation", "sourceId": "src-1"}, "plain note"])
    c.append_text(" That is all.")


async def steps(c: RunController) -> None:
    c.add_step_start("step-1")
    c.append_text("Calling a tool.")
    tool = await c.add_tool_call("search", "call_s1")
    tool.append_args_text('{"q": "x"}')
    tool.set_response({"hits": 1})
    c.add_step_finish("tool-calls", input_tokens=5, output_tokens=7, is_continued=False)
    c.add_step_start("step-2")
    c.append_text("Found one hit.")
    c.add_step_finish("stop", input_tokens=11, output_tokens=13)


async def error_mid_run(c: RunController) -> None:
    c.append_text("Starting, ")
    await anyio.lowlevel.checkpoint()
    c.append_text("then")
    raise Boom("the model failed")


async def error_mid_tool_args(c: RunController) -> None:
    c.append_text("Calling.")
    tool = await c.add_tool_call("weather", "call_e")
    tool.append_args_text('{"city": ')
    await anyio.lowlevel.checkpoint()
    raise Boom("the model failed while streaming arguments")


async def error_before_tool_args(c: RunController) -> None:
    """Two calls begun, neither with arguments, when the run fails: one a client would run, one the server runs."""
    await c.add_tool_call("confirm", "call_client_e")
    started = anyio.Event()

    async def lookup(tool: ToolCall) -> Any:
        started.set()
        await anyio.sleep_forever()

    async with c.tool_calls() as calls:
        calls.start("lookup", lookup, tool_call_id="call_server_e")
        await started.wait()
        raise Boom("the model failed before any arguments")


async def cancelled_mid_text(c: RunController) -> None:
    c.append_reasoning("thinking")
    await anyio.lowlevel.checkpoint()
    for i in range(100):
        c.append_text(f"word{i} ")
        await anyio.lowlevel.checkpoint()


async def cancelled_mid_tool_args(c: RunController) -> None:
    c.append_text("Calling.")
    tool = await c.add_tool_call("weather", "call_w")
    try:
        tool.append_args_text('{"city": "Pa')
        await anyio.sleep_forever()  # the consumer leaves here
    finally:
        tool.close()


async def cancelled_before_tool_args(c: RunController) -> None:
    c.append_text("Calling.")
    await c.add_tool_call("confirm", "call_c")
    await anyio.sleep_forever()  # the consumer leaves here


async def many_deltas(c: RunController) -> None:
    for i in range(10_000):
        c.append_text("ab"[i % 2])
        await anyio.lowlevel.checkpoint()


UNICODE_TEXT = (
    "héllo wörld · 日本語 · עברית · 😀👍🏽 · e\u0301 · "
    "lone \ud800 and \udfff and reversed \udc00\ud800 · "
    "controls \x00\x01\x08\x0b\x0c\x1b\x1f\x7f\x80\x9f · "
    'tab\tnewline\ncr\r · separators \u2028 \u2029 · bom \ufeff · max \U0010ffff · quote " backslash \\'
)

#: JSON text (valid) with raw non-ASCII, a raw \u2028, and escaped control characters and surrogates.
UNICODE_ARGS = '{"q": "日本 😀 \u2028 \\u0000\\u001f \\ud800 \\"quoted\\"", "n": 1}'


async def unicode(c: RunController) -> None:
    for piece in _pieces(UNICODE_TEXT, 5):
        c.append_text(piece)
        await anyio.lowlevel.checkpoint()
    c.append_reasoning("réflexion \u2028 😀 \ud83d")
    tool = await c.add_tool_call("echo_\u00e9", "call_\u00fc")
    for piece in _pieces(UNICODE_ARGS, 3):
        tool.append_args_text(piece)
        await anyio.lowlevel.checkpoint()
    tool.set_response({"echo": "日本 😀 \u2028 \x00\x1f", "ok": True})
    c.append_text("end \u2028")


@dataclass
class Forecast:
    """A tool's result as a dataclass."""

    city: str
    temperatures: list[float]


class Reading(pydantic.BaseModel):
    """A tool's result as a pydantic model."""

    sensor: str
    value: float
    forecast: Forecast | None = None


async def values_tools_return(c: RunController) -> None:
    """Lone surrogates in data, annotations and results; results and data that are models or dataclasses."""
    c.add_data({"note": "lone \ud800 and \udfff", "pair": "\ud83d\ude00"})
    c.add_annotations(["lone \udc00", {"k": "\ud83d"}])
    c.add_data(Reading(sensor="s1", value=0.5))

    async def forecast(tool: ToolCall) -> Any:
        return Forecast("Paris \ud800", [1.5, 2.0])

    async def reading(tool: ToolCall) -> Any:
        return Reading(sensor="s2 \udfff", value=1.0, forecast=Forecast("Lyon", []))

    async def text(tool: ToolCall) -> Any:
        return "lone \udc00 result"

    async with c.tool_calls() as calls:
        calls.start("forecast", forecast, args={"city": "Paris"}, tool_call_id="call_forecast")
        calls.start("reading", reading, args={}, tool_call_id="call_reading")
        calls.start("text", text, args={}, tool_call_id="call_text")
    failing = await c.add_tool_call("checked", "call_checked")
    failing.set_response({"error": "bad \ud800 input"}, artifact=dataclasses.replace(Forecast("a", [])), is_error=True)
    c.append_text("Done.")


async def parent_ids(c: RunController) -> None:
    c.append_text("top ")
    child = c.with_parent_id("parent-1")
    child.append_text("child text")
    child.append_reasoning("child reasoning")
    tool = await child.add_tool_call("t", "call_p")
    tool.append_args_text("{}")
    tool.set_response(1)
    child.add_source("s", "https://example.com")
    c.append_text("top again")


SCENARIOS = [
    Scenario("text_only", text_only),
    Scenario("reasoning_then_text", reasoning_then_text),
    Scenario("reasoning_parts", reasoning_parts),
    Scenario("parallel_tools", parallel_tools),
    Scenario("result_while_another_call_streams", result_while_another_call_streams),
    Scenario("client_side_tool", client_side_tool),
    Scenario(
        "state_paths",
        state_paths,
        state={"doc": {"title": "", "body": {"text": ""}, "tags": []}, "counter": 0},
    ),
    Scenario(
        "state_the_client_holds",
        state_the_client_holds,
        state={"log": "started", "kept": {"a": [1, 2]}, "count": 1},
    ),
    Scenario("sources_files_data_annotations", sources_files_data_annotations),
    Scenario("steps", steps),
    Scenario("error_mid_run", error_mid_run),
    Scenario("error_mid_tool_args", error_mid_tool_args),
    Scenario("cancelled_mid_text", cancelled_mid_text, stop_after=6),
    Scenario("cancelled_mid_tool_args", cancelled_mid_tool_args, stop_after=3),
    Scenario("error_before_tool_args", error_before_tool_args),
    Scenario("cancelled_before_tool_args", cancelled_before_tool_args, stop_after=2),
    Scenario("many_deltas", many_deltas, backends=("asyncio",)),
    Scenario("unicode", unicode),
    Scenario("parent_ids", parent_ids),
    Scenario("values_tools_return", values_tools_return),
]


# ---- the newer features (test_conformance_features.py) ---------------------------


async def metadata_and_usage(c: RunController) -> None:
    c.set_message_metadata({"model": "m-1", "trace": {"id": "t1"}})
    c.add_step_start("step-1")
    c.append_text("Counted.")
    c.add_step_finish("stop", input_tokens=2, output_tokens=3)
    c.add_usage(10, 20, reasoning_tokens=5, cached_input_tokens=4)
    c.set_message_metadata({"trace": {"span": "s2"}, "tags": ["a"]})


async def provider_metadata(c: RunController) -> None:
    c.append_reasoning("Thinking ")
    c.append_reasoning("hard.")
    c.set_provider_metadata({"anthropic": {"signature": "sig-1"}})
    c.append_text("Answer ")
    c.set_provider_metadata({"openai": {"itemId": "it-1"}})
    c.append_text("text.")
    c.set_provider_metadata({"openai": {"itemId": "it-2"}})
    tool = await c.add_tool_call("lookup", "call_pm")
    tool.append_args_text('{"q": 1}')
    c.set_provider_metadata({"google": {"thoughtSignature": "ts"}}, tool_call_id="call_pm")
    tool.set_response("found")


async def document_sources(c: RunController) -> None:
    c.append_text("Two sources.")
    c.add_source("u1", "https://example.com/u", "A page")
    c.add_document_source("d1", "Annual report", "application/pdf", "report.pdf")
    c.with_parent_id("parent-1").add_document_source("d2", "Notes", "text/plain")


async def _progress(tool: ToolCall) -> Any:
    for done in (1, 2, 3):
        yield {"done": done, "of": 3}
        await anyio.lowlevel.checkpoint()


async def _fails_midway(tool: ToolCall) -> Any:
    yield {"done": 1}
    await anyio.lowlevel.checkpoint()
    raise RuntimeError("disk full")


async def _times_out_midway(tool: ToolCall) -> Any:
    yield {"done": 1}
    await anyio.sleep_forever()


async def preliminary_results(c: RunController) -> None:
    """Tool functions that are async generators: one finishes, one fails mid-way, one times out mid-way."""
    async with c.tool_calls() as calls:
        calls.start("progress", _progress, args={}, tool_call_id="call_ok")
        calls.start("fails", _fails_midway, args={}, tool_call_id="call_fails")
        calls.start("slow", _times_out_midway, args={}, tool_call_id="call_slow", timeout=0.2)
    c.append_text("Done.")


#: Set once the cancelled generator's own cleanup ran (asserted by the feature tests).
GENERATOR_CLEANUP: list[str] = []


async def preliminary_then_cancelled(c: RunController) -> None:
    async def endless(tool: ToolCall) -> Any:
        try:
            yield {"step": 1}
            await anyio.sleep_forever()
        finally:
            GENERATOR_CLEANUP.append(tool.tool_call_id)

    async with c.tool_calls() as calls:
        calls.start("endless", endless, args={}, tool_call_id="call_endless")


async def warnings(c: RunController) -> None:
    c.append_text("Part one. ")
    c.add_warning("rate limited, retrying", code="rate_limit")
    await anyio.lowlevel.checkpoint()
    c.append_text("Part two. ")
    c.add_warning("used a cached answer", severity="info")
    c.append_text("Part three.")


async def data_parts(c: RunController) -> None:
    c.add_data_part("progress", {"pct": 0}, id="p1")
    c.append_text("Working.")
    c.add_data_part("progress", {"pct": 50}, id="p1")
    c.add_data_part("notice", "saved a draft", transient=True)
    c.append_text(" Still working.")
    c.add_data_part("progress", {"pct": 100}, id="p1")
    c.add_data_part("chart", [1, 2, 3])
    c.append_text(" Done.")


FEATURE_SCENARIOS = [
    Scenario("metadata_and_usage", metadata_and_usage),
    Scenario("provider_metadata", provider_metadata),
    Scenario("document_sources", document_sources),
    Scenario("preliminary_results", preliminary_results),
    Scenario("preliminary_then_cancelled", preliminary_then_cancelled, stop_after=4),
    Scenario("warnings", warnings),
    Scenario("data_parts", data_parts),
]
