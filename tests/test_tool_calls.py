"""Parallel tool calls: wire invariants, result order, errors, timeouts, mixing with the compatible form.

The chunk list a run yields is what every wire format encodes, so the
per-call invariants are checked on it: begin, argument delta(s),
args-finished, exactly one result, nothing after it.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    DanglingToolCallWarning,
    ErrorChunk,
    RunController,
    RunOutcome,
    TextDeltaChunk,
    ToolCall,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolCallHandle,
    ToolResultChunk,
    create_run,
)
from assistant_stream_ce.message import MessageBuilder
from assistant_stream_ce.serialization import DataStreamResponse

if TYPE_CHECKING:
    from conftest import Consume

pytestmark = pytest.mark.anyio

Callback = Callable[[RunController], Awaitable[None]]


@dataclass
class WireCall:
    """One tool call as the chunks show it."""

    tool_name: str
    phase: str = "args"  # args -> finished -> result
    deltas: int = 0
    args_text: str = ""
    result: ToolResultChunk | None = None

    @property
    def args(self) -> Any:
        return json.loads(self.args_text)


@dataclass
class Wire:
    chunks: list[AssistantStreamChunk]
    calls: dict[str, WireCall] = field(default_factory=dict)  # in begin order
    result_order: list[str] = field(default_factory=list)


def check_wire(chunks: list[AssistantStreamChunk]) -> Wire:
    """Assert the per-call invariants over ``chunks`` and return what each call got."""
    wire = Wire(chunks)
    for chunk in chunks:
        match chunk:
            case ToolCallBeginChunk():
                assert chunk.tool_call_id not in wire.calls, f"second begin for {chunk.tool_call_id}"
                wire.calls[chunk.tool_call_id] = WireCall(chunk.tool_name)
            case ToolCallDeltaChunk():
                call = wire.calls[chunk.tool_call_id]
                assert call.phase == "args", f"argument delta for {chunk.tool_call_id} after {call.phase}"
                call.deltas += 1
                call.args_text += chunk.args_text_delta
            case ToolCallArgsFinishChunk():
                call = wire.calls[chunk.tool_call_id]
                assert call.phase == "args", f"args-finished for {chunk.tool_call_id} after {call.phase}"
                call.phase = "finished"
            case ToolResultChunk():
                call = wire.calls[chunk.tool_call_id]
                assert call.phase == "finished", f"result for {chunk.tool_call_id} in phase {call.phase}"
                call.phase = "result"
                call.result = chunk
                wire.result_order.append(chunk.tool_call_id)
    return wire


async def collect(callback: Callback, **kwargs: Any) -> list[AssistantStreamChunk]:
    with anyio.fail_after(10):
        async with create_run(callback, **kwargs) as run:
            return [chunk async for chunk in run]


def texts(chunks: list[AssistantStreamChunk]) -> list[str]:
    return [chunk.text_delta for chunk in chunks if isinstance(chunk, TextDeltaChunk)]


# -- 1. many calls in parallel --------------------------------------------------------------------------


@dataclass
class Plan:
    """What one randomized tool call does: given or streamed arguments, and its delays."""

    tool_call_id: str
    args: dict[str, Any]
    given: bool
    delays: list[float]

    def pieces(self) -> list[str]:
        text = json.dumps(self.args)
        cuts = sorted({0, len(text), *(len(text) * k // len(self.delays) for k in range(len(self.delays)))})
        return [text[a:b] for a, b in itertools.pairwise(cuts)]


def make_plans(seed: int, count: int = 50) -> list[Plan]:
    rng = random.Random(seed)
    return [
        Plan(
            tool_call_id=f"call-{i}",
            args={"n": i, "word": "x" * rng.randrange(1, 40)},
            given=rng.random() < 0.3,
            delays=[rng.random() * 0.003 for _ in range(rng.randrange(1, 5))],
        )
        for i in range(count)
    ]


def echo_tool(plans: dict[str, Plan]) -> Any:
    async def echo(tool: ToolCall) -> dict[str, Any]:
        plan = plans[tool.tool_call_id]
        if plan.given:
            assert tool.args == plan.args
            await anyio.sleep(sum(plan.delays))
        else:
            for piece, delay in zip(plan.pieces(), plan.delays, strict=False):
                await anyio.sleep(delay)
                await tool.append_args_text(piece)
        return {"echo": plan.tool_call_id}

    return echo


def start_args(plan: Plan) -> dict[str, Any]:
    return {"args": plan.args if plan.given else None, "tool_call_id": plan.tool_call_id}


def check_all_calls(wire: Wire, plans: list[Plan]) -> None:
    """Every planned call is on the wire once, complete, with exact arguments and its own result."""
    assert list(wire.calls) == [plan.tool_call_id for plan in plans]  # begins in call order
    assert sorted(wire.result_order) == sorted(plan.tool_call_id for plan in plans)  # none lost or repeated
    for plan in plans:
        call = wire.calls[plan.tool_call_id]
        assert call.phase == "result"
        assert call.deltas >= 1
        assert call.args == plan.args
        assert call.result is not None
        assert call.result.result == {"echo": plan.tool_call_id}
        assert call.result.is_error is False


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("api", ["batch", "start_tool_call"])
async def test_fifty_parallel_calls_keep_invariants_and_call_order(
    anyio_backend: str, consume: Consume, seed: int, api: str
) -> None:
    plans = make_plans(seed)
    echo = echo_tool({plan.tool_call_id: plan for plan in plans})
    results: list[ToolResultChunk] = []

    async def callback(controller: RunController) -> None:
        if api == "batch":
            async with controller.tool_calls() as calls:
                handles = [calls.start("echo", echo, **start_args(plan)) for plan in plans]
                controller.append_text("started")
        else:
            handles = [controller.start_tool_call("echo", echo, **start_args(plan)) for plan in plans]
            controller.append_text("started")
        results.extend([await handle for handle in handles])

    chunks = await consume(create_run(callback))
    wire = check_wire(chunks)
    check_all_calls(wire, plans)
    assert wire.result_order == [plan.tool_call_id for plan in plans]
    # Text written while the calls run goes out at once, before any result.
    first_result = next(i for i, chunk in enumerate(chunks) if isinstance(chunk, ToolResultChunk))
    assert chunks.index(TextDeltaChunk("started")) < first_result
    # `await handle` gives the very result chunk that went on the wire.
    assert results == [wire.calls[plan.tool_call_id].result for plan in plans]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
async def test_fifty_parallel_calls_in_completion_order(anyio_backend: str, seed: int) -> None:
    plans = make_plans(seed)
    by_id = {plan.tool_call_id: plan for plan in plans}
    echo = echo_tool(by_id)
    release = {plan.tool_call_id: anyio.Event() for plan in plans}
    finish_order = [plan.tool_call_id for plan in plans]
    random.Random(seed).shuffle(finish_order)

    async def gated(tool: ToolCall) -> dict[str, Any]:
        # The arguments stream with random delays, then the call waits for its turn to finish.
        result: dict[str, Any] = await echo(tool)
        await release[tool.tool_call_id].wait()
        return result

    async def callback(controller: RunController) -> None:
        async with controller.tool_calls(order="completion") as calls:
            handles = {plan.tool_call_id: calls.start("echo", gated, **start_args(plan)) for plan in plans}
            for tool_call_id in finish_order:
                release[tool_call_id].set()
                await handles[tool_call_id]

    wire = check_wire(await collect(callback))
    check_all_calls(wire, plans)
    assert wire.result_order == finish_order


async def test_later_calls_stream_while_an_earlier_result_is_pending(anyio_backend: str) -> None:
    release = anyio.Event()

    async def slow(tool: ToolCall) -> str:
        await release.wait()
        return "slow"

    async def fast(tool: ToolCall) -> str:
        await tool.append_args_text('{"city": ')
        await tool.append_args_text('"Paris"}')
        return "fast"

    async def callback(controller: RunController) -> None:
        async with controller.tool_calls() as calls:
            calls.start("slow", slow, args={}, tool_call_id="a")
            calls.start("fast", fast, tool_call_id="b")
            controller.append_text("waiting")

    seen: list[AssistantStreamChunk] = []
    with anyio.fail_after(10):
        async with create_run(callback) as run:
            async for chunk in run:
                seen.append(chunk)
                if chunk == ToolCallArgsFinishChunk("b"):
                    # b is done and its arguments are out, but its result waits for a's.
                    assert not any(isinstance(c, ToolResultChunk) for c in seen)
                    assert TextDeltaChunk("waiting") in seen
                    release.set()
    wire = check_wire(seen)
    assert wire.result_order == ["a", "b"]
    assert wire.calls["b"].args == {"city": "Paris"}


# -- 2. errors and timeouts -------------------------------------------------------------------------------


class Unserializable:
    pass


@pytest.mark.parametrize("api", ["batch", "start_tool_call"])
async def test_raising_and_timing_out_tools_give_error_results(anyio_backend: str, consume: Consume, api: str) -> None:
    outcomes: list[RunOutcome] = []
    sibling_done = anyio.Event()

    async def boom(tool: ToolCall) -> None:
        raise LookupError("no such city: Atlantis")

    async def hang(tool: ToolCall) -> None:
        await anyio.sleep_forever()

    async def sibling(tool: ToolCall) -> dict[str, Any]:
        await anyio.sleep(0.01)
        sibling_done.set()
        return {"temp": 21}

    async def bad_result(tool: ToolCall) -> Unserializable:
        return Unserializable()

    calls: list[tuple[str, Any, float | None]] = [
        ("boom", boom, None),
        ("hang", hang, 0.05),
        ("sibling", sibling, None),
        ("bad_result", bad_result, None),
    ]

    async def callback(controller: RunController) -> None:
        if api == "batch":
            async with controller.tool_calls() as batch:
                for name, fn, timeout in calls:
                    batch.start(name, fn, args={"for": name}, tool_call_id=name, timeout=timeout)
        else:
            for name, fn, timeout in calls:
                controller.start_tool_call(name, fn, args={"for": name}, tool_call_id=name, timeout=timeout)
        controller.append_text("carried on")

    chunks = await consume(create_run(callback, on_finish=outcomes.append))
    wire = check_wire(chunks)
    results = {tool_call_id: call.result for tool_call_id, call in wire.calls.items()}
    assert all(call.phase == "result" for call in wire.calls.values())
    assert results["boom"] == ToolResultChunk("boom", "no such city: Atlantis", is_error=True)
    assert results["hang"] is not None
    assert results["hang"].is_error
    assert "timed out" in results["hang"].result
    assert results["sibling"] == ToolResultChunk("sibling", {"temp": 21})
    assert sibling_done.is_set()
    assert results["bad_result"] is not None
    assert results["bad_result"].is_error
    assert "not JSON-serializable" in results["bad_result"].result
    assert "Unserializable" in results["bad_result"].result
    assert wire.result_order == [name for name, _, _ in calls]
    # The run itself is fine: no error chunk, the text after the calls, a completed outcome.
    assert not any(isinstance(chunk, ErrorChunk) for chunk in chunks)
    assert "carried on" in "".join(texts(chunks))
    assert [outcome.status for outcome in outcomes] == ["completed"]


async def test_batch_body_raising_cancels_its_calls_and_propagates_itself(anyio_backend: str) -> None:
    cleaned_up: list[str] = []
    quick_finished = anyio.Event()

    async def waits(tool: ToolCall) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cleaned_up.append(tool.tool_call_id)

    async def quick(tool: ToolCall) -> str:
        await tool.append_args_text("{}")
        return "quick"

    async def callback(controller: RunController) -> None:
        handles: list[ToolCallHandle] = []

        async def batch() -> None:
            async with controller.tool_calls() as calls:
                calls.start("waits", waits, args={}, tool_call_id="w")
                handles.append(calls.start("quick", quick, tool_call_id="q"))
                await quick_finished.wait()  # "q" is done; its result waits for "w"
                raise KeyError("missing")

        with pytest.raises(KeyError, match="missing") as raised:
            await batch()
        assert type(raised.value) is KeyError  # the body's own exception, not a group
        assert (await handles[0]).result == "quick"  # released once "w" got its error result
        controller.append_text("recovered")

    chunks: list[AssistantStreamChunk] = []
    with anyio.fail_after(10):
        async with create_run(callback) as run:
            async for chunk in run:
                chunks.append(chunk)
                if chunk == ToolCallArgsFinishChunk("q"):  # sent as soon as "q" returned
                    quick_finished.set()
    wire = check_wire(chunks)
    assert cleaned_up == ["w"]
    waits_result = wire.calls["w"].result
    assert waits_result is not None
    assert waits_result.is_error
    assert "cancelled" in waits_result.result
    assert wire.result_order == ["w", "q"]
    assert texts(chunks) == ["recovered"]


async def test_unhandled_batch_error_closes_its_calls_then_fails_the_run(anyio_backend: str) -> None:
    async def never(tool: ToolCall) -> None:
        await anyio.sleep_forever()

    async def callback(controller: RunController) -> None:
        async with controller.tool_calls() as calls:
            calls.start("never", never, tool_call_id="n")
            await anyio.lowlevel.checkpoint()
            raise RuntimeError("model went away")

    seen: list[AssistantStreamChunk] = []

    async def read_all() -> None:
        async with create_run(callback) as run:
            async for chunk in run:
                seen.append(chunk)

    with anyio.fail_after(10), pytest.raises(RuntimeError, match="model went away"):
        await read_all()
    # The cancelled call is closed on the wire (an error result) before the run's error.
    cancelled = ToolResultChunk("n", "tool 'never' was cancelled", is_error=True)
    assert seen[-2:] == [cancelled, ErrorChunk("model went away")]
    check_wire(seen)


async def test_handles_batches_and_arguments_misuse(anyio_backend: str) -> None:
    async def uses_given_args_as_stream(tool: ToolCall) -> None:
        await tool.append_args_text("{}")

    async def callback(controller: RunController) -> None:
        batch = controller.tool_calls()
        async with batch as calls:
            handle = calls.start("t", uses_given_args_as_stream, args={"a": 1}, tool_call_id="x")
        with pytest.raises(RuntimeError):
            batch.start("t", uses_given_args_as_stream, tool_call_id="late")
        with pytest.raises(RuntimeError):
            async with batch:
                pass
        with pytest.raises(ValueError, match="order"):
            controller.tool_calls(order="random")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="JSON"):
            controller.start_tool_call("t", uses_given_args_as_stream, args={"a": Unserializable()})
        with pytest.raises(ValueError, match="timeout"):
            controller.start_tool_call("t", uses_given_args_as_stream, timeout=-1)
        result = await handle
        assert isinstance(result, ToolResultChunk)
        assert result.is_error
        assert "args" in result.result

    wire = check_wire(await collect(callback))
    assert list(wire.calls) == ["x"]  # nothing of the misused calls reached the wire


# -- 5. the compatible form mixed in, duplicates ---------------------------------------------------------


async def test_compatible_and_structured_calls_mix_and_duplicates_fail_at_the_call_site(
    anyio_backend: str, consume: Consume
) -> None:
    runs: list[str] = []

    async def echo(tool: ToolCall) -> Any:
        runs.append(tool.tool_call_id)
        return tool.args

    async def callback(controller: RunController) -> None:
        compat = await controller.add_tool_call("lookup", "compat")
        compat.append_args_text('{"q": ')
        structured = controller.start_tool_call("echo", echo, args={"x": 1}, tool_call_id="structured")
        with pytest.raises(ValueError, match="duplicate"):
            await controller.add_tool_call("lookup", "structured")
        with pytest.raises(ValueError, match="duplicate"):
            controller.start_tool_call("echo", echo, args={"x": 2}, tool_call_id="compat")
        async with controller.tool_calls() as calls:
            calls.start("echo", echo, args={"x": 3}, tool_call_id="batched")
            for duplicate in ("batched", "compat", "structured"):
                with pytest.raises(ValueError, match="duplicate"):
                    calls.start("echo", echo, args={"x": 4}, tool_call_id=duplicate)
            compat.append_args_text('"weather"}')
        compat.set_response("sunny")
        client_side = await controller.add_tool_call("ask_user", "client-side")
        client_side.append_args_text("{}")
        client_side.close()
        assert (await structured).result == {"x": 1}

    chunks = await consume(create_run(callback))
    wire = check_wire(chunks)
    assert list(wire.calls) == ["compat", "structured", "batched", "client-side"]
    assert sum(isinstance(chunk, ToolCallBeginChunk) for chunk in chunks) == 4
    assert sorted(runs) == ["batched", "structured"]  # a rejected duplicate never ran
    assert wire.calls["compat"].args == {"q": "weather"}
    assert wire.calls["compat"].result == ToolResultChunk("compat", "sunny")
    assert wire.calls["batched"].result == ToolResultChunk("batched", {"x": 3})
    assert wire.calls["client-side"].phase == "finished"  # closed without a result, as the caller asked
    message = MessageBuilder()
    for chunk in chunks:
        message.add(chunk)
    assert [part.args for part in message.message.tool_calls] == [{"q": "weather"}, {"x": 1}, {"x": 3}, {}]


async def test_result_after_result_is_refused(anyio_backend: str) -> None:
    async def echo(tool: ToolCall) -> str:
        return "done"

    async def callback(controller: RunController) -> None:
        handle = controller.start_tool_call("echo", echo, args={}, tool_call_id="s")
        await handle
        with pytest.raises(RuntimeError, match="already has a result"):
            controller.add_tool_result("s", "second")
        compat = await controller.add_tool_call("lookup", "c")
        compat.set_response(1)
        with pytest.raises(RuntimeError, match="already has a result"):
            compat.set_response(2)

    wire = check_wire(await collect(callback))
    assert wire.result_order == ["s", "c"]


async def test_a_call_can_start_more_calls_of_its_batch(anyio_backend: str) -> None:
    async def leaf(tool: ToolCall) -> str:
        return f"leaf {tool.args['n']}"

    async def callback(controller: RunController) -> None:
        scoped = controller.with_parent_id("step-1")
        async with scoped.tool_calls() as calls:

            async def fan_out(tool: ToolCall) -> str:
                for n in range(3):
                    calls.start("leaf", leaf, args={"n": n}, tool_call_id=f"leaf-{n}")
                return "fanned out"

            calls.start("fan_out", fan_out, args={}, tool_call_id="root")
        # The batch waited for the calls its calls started.
        controller.append_text("after")

    chunks = await collect(callback)
    wire = check_wire(chunks)
    assert wire.result_order == ["root", "leaf-0", "leaf-1", "leaf-2"]
    assert all(call.phase == "result" for call in wire.calls.values())
    begins = [chunk for chunk in chunks if isinstance(chunk, ToolCallBeginChunk)]
    assert {chunk.parent_id for chunk in begins} == {"step-1"}
    assert texts(chunks) == ["after"]
    last_result = max(i for i, chunk in enumerate(chunks) if isinstance(chunk, ToolResultChunk))
    assert chunks.index(TextDeltaChunk("after")) > last_result


async def test_a_compatible_call_left_open_is_closed_and_warned_about(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        tool = await controller.add_tool_call("lookup", "open")
        tool.append_args_text('{"q": 1}')

    with pytest.warns(DanglingToolCallWarning, match="open"):
        chunks = await collect(callback)
    wire = check_wire(chunks)
    assert wire.calls["open"].phase == "finished"
    assert chunks[-1] == ToolCallArgsFinishChunk("open")


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID")


@pytest.mark.parametrize("through", ["async with", "async for", "response"])
async def test_each_tool_sees_the_context_vars_of_the_moment_it_was_started(anyio_backend: str, through: str) -> None:
    # Started back to back, before the run has any task group for them: each still gets the values
    # its start saw, as a task started in a task group does.
    seen: dict[str, str] = {}

    async def lookup(tool: ToolCall) -> str:
        await anyio.lowlevel.checkpoint()
        seen[tool.tool_call_id] = REQUEST_ID.get()
        return "found"

    async def callback(controller: RunController) -> None:
        for n in range(3):
            REQUEST_ID.set(f"request-{n}")
            controller.start_tool_call("lookup", lookup, args={}, tool_call_id=f"call-{n}")

    run = create_run(callback)
    with anyio.fail_after(5):
        if through == "async with":
            async with run as chunks:
                results = [chunk async for chunk in chunks if isinstance(chunk, ToolResultChunk)]
        elif through == "async for":
            results = [chunk async for chunk in run if isinstance(chunk, ToolResultChunk)]
        else:
            body: list[bytes] = []

            async def receive() -> dict[str, Any]:
                await anyio.sleep_forever()
                raise AssertionError("unreachable")

            async def send(message: dict[str, Any]) -> None:
                body.append(message.get("body", b""))

            await DataStreamResponse(run)({"type": "http", "asgi": {"version": "3.0"}}, receive, send)
            results = [line for line in b"".join(body).decode().splitlines() if line.startswith("a:")]
    assert len(results) == 3
    assert seen == {f"call-{n}": f"request-{n}" for n in range(3)}
