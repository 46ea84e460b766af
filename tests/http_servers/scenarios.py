"""The runs the test servers stream, and what the server observed about them.

Every run records, under its run id, which ``finally`` blocks ran and what
``on_finish`` saw; ``LIVE`` counts the run tasks (callbacks, tool functions,
substreams) that have started and not yet finished. The tests read both
through the apps' ``/events/{run}`` endpoint.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel
import msgspec

from assistant_stream_ce import RunController, RunOutcome, TextDeltaChunk, ToolCall

EVENTS: dict[str, list[dict[str, Any]]] = {}
LIVE = 0

Callback = Callable[[RunController], Awaitable[None]]

#: What the "full" scenario says, for the tests to compare with.
FULL_TOOLS = [("lookup", {"city": f"city-{i}", "n": i}, {"city": f"city-{i}", "temperature": 20 + i}) for i in range(3)]
FULL_STATE = {"tasks": [{"title": "look up", "done": True}], "status": "done"}
FLOOD_PIECE = "x" * 65536


def full_text(user_text: str) -> str:
    return f"You said: {user_text}. Looking it up. Done: 3 answers."


def record(run: str, kind: str, **fields: Any) -> None:
    EVENTS.setdefault(run, []).append({"kind": kind, **fields})


@contextmanager
def tracked(run: str, name: str) -> Iterator[None]:
    """Count a run task as live while it runs, and record that its ``finally`` ran."""
    global LIVE
    LIVE += 1
    record(run, "start", name=name)
    try:
        yield
    finally:
        LIVE -= 1
        record(run, "finally", name=name)


def on_finish(run: str) -> Callable[[RunOutcome], None]:
    def report(outcome: RunOutcome) -> None:
        message = outcome.message
        record(
            run,
            "on_finish",
            status=outcome.status,
            text=message.text,
            error=None if outcome.error is None else str(outcome.error),
            tool_calls=[
                {
                    "id": t.tool_call_id,
                    "args_text": t.args_text,
                    "args_finished": t.args_finished,
                    "has_result": t.has_result,
                }
                for t in message.tool_calls
            ],
            live=LIVE,
        )

    return report


def full(run: str, user_text: str) -> Callback:
    """Reasoning, text, three parallel tool calls with streamed arguments, state and a source."""

    async def lookup(tool: ToolCall) -> Any:
        with tracked(run, f"tool {tool.tool_call_id}"):
            i = int(tool.tool_call_id.rsplit("-", 1)[1])
            _, args, result = FULL_TOOLS[i]
            text = json.dumps(args)
            for start in range(0, len(text), 6):
                await tool.append_args_text(text[start : start + 6])
            await anyio.sleep(0.01 * (3 - i))
            return result

    async def callback(controller: RunController) -> None:
        with tracked(run, "callback"):
            controller.state = {"tasks": [], "status": "thinking"}
            controller.append_reasoning("The user wants three lookups.")
            controller.append_text(f"You said: {user_text}. ")
            await anyio.lowlevel.checkpoint()
            controller.append_text("Looking it up.")
            controller.state["tasks"].append({"title": "look up", "done": False})
            async with controller.tool_calls() as calls:
                for i, (name, _, _) in enumerate(FULL_TOOLS):
                    calls.start(name, lookup, tool_call_id=f"call-{i}")
            controller.state["tasks"][0]["done"] = True
            controller.state["status"] = "done"
            controller.add_source("src-1", "https://example.com/weather", "Weather")
            controller.append_text(" Done: 3 answers.")

    return callback


def endless(run: str, user_text: str) -> Callback:
    """Text forever, with two tool calls whose arguments never finish: the client has to leave."""

    async def slow_tool(tool: ToolCall) -> Any:
        with tracked(run, f"tool {tool.tool_call_id}"):
            await tool.append_args_text('{"query": "')
            while True:
                await tool.append_args_text("a")
                await anyio.sleep(0.005)

    async def callback(controller: RunController) -> None:
        with tracked(run, "callback"):
            controller.append_text("Searching. ")
            await anyio.sleep(0.005)
            controller.start_tool_call("search", slow_tool, tool_call_id="call-a")
            controller.start_tool_call("search", slow_tool, tool_call_id="call-b")
            for i in range(1_000_000):
                controller.append_text(f"{i} ")
                await anyio.sleep(0.002)

    return callback


def saving(run: str, user_text: str) -> Callback:
    """Written for 0.0.36: stream until ``is_cancelled``, then save the answer so far (``saved``).

    A tool call streams its arguments meanwhile; the callback waits for the
    tool's end before it saves, so it saves only if the tool was cancelled at
    once while the callback itself still ran. The loop, which reads
    ``is_cancelled``, starts once the tool runs: every frame after the first
    few comes after that read.
    """
    tool_started = anyio.Event()
    tool_done = anyio.Event()

    async def slow_tool(tool: ToolCall) -> Any:
        tool_started.set()
        try:
            with tracked(run, f"tool {tool.tool_call_id}"):
                await tool.append_args_text('{"query": "')
                while True:
                    await tool.append_args_text("a")
                    await anyio.sleep(0.005)
        finally:
            tool_done.set()

    async def callback(controller: RunController) -> None:
        with tracked(run, "callback"):
            answer = "Searching. "
            controller.append_text(answer)
            controller.start_tool_call("search", slow_tool, tool_call_id="call-a")
            await tool_started.wait()
            for i in range(1_000_000):
                if controller.is_cancelled:
                    break
                controller.append_text(f"{i} ")
                answer += f"{i} "
                await anyio.sleep(0.002)
            await tool_done.wait()
            await anyio.lowlevel.checkpoint()  # as a write to a database would
            record(run, "saved", text=answer)

    return callback


def flood(run: str, user_text: str) -> Callback:
    """64 KiB text chunks as fast as the client takes them, through a backpressured substream."""
    produced = 0

    async def pieces() -> AsyncIterator[TextDeltaChunk]:
        nonlocal produced
        with tracked(run, "flood source"):
            while True:
                produced += len(FLOOD_PIECE)
                yield TextDeltaChunk(FLOOD_PIECE)

    async def callback(controller: RunController) -> None:
        with tracked(run, "callback"):
            try:
                controller.add_stream(pieces())
                await anyio.sleep_forever()
            finally:
                record(run, "produced", bytes=produced)

    return callback


def idle(run: str, user_text: str, gap: float) -> Callback:
    """Text, a silent gap of ``gap`` seconds, more text."""

    async def callback(controller: RunController) -> None:
        with tracked(run, "callback"):
            controller.append_text("before the gap. ")
            await anyio.sleep(gap)
            controller.append_text("after the gap.")

    return callback


def failing(run: str, user_text: str) -> Callback:
    async def callback(controller: RunController) -> None:
        with tracked(run, "callback"):
            controller.append_text("Starting. ")
            await anyio.sleep(0.001)
            raise RuntimeError("the model is unavailable")

    return callback


def make(scenario: str, run: str, user_text: str, gap: float) -> Callback:
    if scenario == "idle":
        return idle(run, user_text, gap)
    makers = {"full": full, "endless": endless, "saving": saving, "flood": flood, "failing": failing}
    return makers[scenario](run, user_text)


def events_body(run: str) -> bytes:
    return msgspec.json.encode({"events": EVENTS.get(run, []), "live": LIVE})
