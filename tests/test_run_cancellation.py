"""Every way a consumer can go away cancels the run: the callback and its child tasks.

Each case runs a callback with an ``add_stream`` reader and a structured
tool task, all blocked forever. Once the consumer has read the callback's
text, it goes away; then every ``finally`` has run and seen
``is_cancelled`` and ``cancelled_event`` set, and ``on_finish`` got
"cancelled" with the text the consumer received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    Run,
    RunController,
    RunOutcome,
    TextDeltaChunk,
    ToolCall,
    create_run,
)

pytestmark = pytest.mark.anyio

TASKS = ("callback", "stream reader", "tool")


@dataclass
class Scenario:
    """A run whose tasks block until cancelled, and what they saw on the way out."""

    started: dict[str, anyio.Event] = field(default_factory=lambda: {name: anyio.Event() for name in TASKS})
    finished: dict[str, anyio.Event] = field(default_factory=lambda: {name: anyio.Event() for name in TASKS})
    seen: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    outcomes: list[RunOutcome] = field(default_factory=list)
    outcome_reported: anyio.Event = field(default_factory=anyio.Event)
    controller: RunController | None = None

    def run(self) -> Run:
        return create_run(self._callback, on_finish=self._on_finish)

    async def _block(self, name: str, controller: RunController) -> None:
        self.started[name].set()
        try:
            await anyio.sleep_forever()
        finally:
            self.seen[name] = (controller.is_cancelled, controller.cancelled_event.is_set())
            self.finished[name].set()

    async def _callback(self, controller: RunController) -> None:
        self.controller = controller

        async def source() -> AsyncIterator[AssistantStreamChunk]:
            await self._block("stream reader", controller)
            yield TextDeltaChunk("never")

        async def tool(call: ToolCall) -> str:
            await self._block("tool", controller)
            return "never"

        controller.add_stream(source())
        controller.start_tool_call("slow", tool, args={}, tool_call_id="call_1")
        await self.started["stream reader"].wait()
        await self.started["tool"].wait()
        controller.append_text("partial")
        await self._block("callback", controller)

    def _on_finish(self, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)
        self.outcome_reported.set()

    async def check_cancelled(self) -> None:
        with anyio.fail_after(5):
            for event in self.finished.values():
                await event.wait()
            await self.outcome_reported.wait()
            assert self.controller is not None
            assert await self.controller.cancelled_event.wait()
        assert self.seen == {name: (True, True) for name in TASKS}
        assert self.controller.is_cancelled
        [outcome] = self.outcomes
        assert outcome.status == "cancelled"
        assert outcome.error is None
        assert outcome.message.text == "partial"
        [call] = outcome.message.tool_calls
        assert (call.tool_call_id, call.args_finished, call.has_result) == ("call_1", True, False)


def _is_text(chunk: AssistantStreamChunk) -> bool:
    return isinstance(chunk, TextDeltaChunk)


async def _break_out_of_async_for(scenario: Scenario) -> None:
    # No name holds the run: breaking out drops the iterator, and that cancels it.
    async for chunk in scenario.run():
        if _is_text(chunk):
            break


async def _aclose(scenario: Scenario) -> None:
    run = scenario.run()
    async for chunk in run:
        if _is_text(chunk):
            break
    await run.aclose()
    assert scenario.outcomes, "aclose() returns once the run's cleanup is done"


async def _drop_iterator(scenario: Scenario) -> None:
    run = scenario.run()
    while not _is_text(await run.__anext__()):
        pass
    del run


async def _break_out_of_async_with(scenario: Scenario) -> None:
    async with scenario.run() as chunks:
        async for chunk in chunks:
            if _is_text(chunk):
                break
    assert scenario.outcomes, "leaving the block waits for the run's cleanup"


async def _raise_out_of_async_with(scenario: Scenario) -> None:
    error = LookupError("consumer failed")

    async def read_then_fail() -> None:
        async with scenario.run() as chunks:
            async for chunk in chunks:
                if _is_text(chunk):
                    raise error

    with pytest.raises(LookupError) as raised:
        await read_then_fail()
    assert raised.value is error, "the body's exception comes out as itself, not in a group"


async def _outer_cancel_scope_structured(scenario: Scenario) -> None:
    with anyio.CancelScope() as scope:
        async with scenario.run() as chunks:
            async for chunk in chunks:
                if _is_text(chunk):
                    scope.cancel()
    assert scope.cancelled_caught


async def _outer_cancel_scope_compatible(scenario: Scenario) -> None:
    with anyio.CancelScope() as scope:
        async for chunk in scenario.run():
            if _is_text(chunk):
                scope.cancel()
    assert scope.cancelled_caught


async def _outer_deadline_structured(scenario: Scenario) -> None:
    async def read_until_deadline() -> None:
        async with scenario.run() as chunks:
            async for chunk in chunks:
                if _is_text(chunk):
                    scope.deadline = anyio.current_time()

    with anyio.move_on_after(60) as scope:
        await read_until_deadline()
    assert scope.cancelled_caught


WAYS_TO_LEAVE: dict[str, Callable[[Scenario], Awaitable[None]]] = {
    "break out of async for": _break_out_of_async_for,
    "aclose": _aclose,
    "drop the iterator": _drop_iterator,
    "break out of async with": _break_out_of_async_with,
    "raise out of async with": _raise_out_of_async_with,
    "outer cancel scope, async with": _outer_cancel_scope_structured,
    "outer cancel scope, async for": _outer_cancel_scope_compatible,
    "outer deadline, async with": _outer_deadline_structured,
}


@pytest.mark.parametrize("way", WAYS_TO_LEAVE)
async def test_leaving_cancels_the_callback_and_its_children(anyio_backend: str, way: str) -> None:
    scenario = Scenario()
    with anyio.fail_after(5):
        await WAYS_TO_LEAVE[way](scenario)
    await scenario.check_cancelled()


async def test_a_run_entered_in_a_cancelled_scope_ends_cancelled(anyio_backend: str) -> None:
    outcomes: list[RunOutcome] = []
    seen: list[bool] = []

    async def callback(controller: RunController) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            seen.append(controller.is_cancelled)

    with anyio.fail_after(5), anyio.CancelScope() as scope:
        scope.cancel()
        async with create_run(callback, on_finish=outcomes.append) as chunks:
            async for chunk in chunks:
                raise AssertionError(f"unexpected {chunk}")
    assert scope.cancelled_caught
    assert seen in ([], [True])
    assert [outcome.status for outcome in outcomes] == ["cancelled"]


async def test_aclose_before_iterating_does_nothing_and_the_run_cannot_be_consumed(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        raise AssertionError("never started")

    run = create_run(callback)
    await run.aclose()
    assert [chunk async for chunk in run] == []
    with pytest.raises(RuntimeError, match="only once"):
        async with run:
            pass


async def test_the_callback_can_wait_for_cancellation_in_a_child_task(anyio_backend: str) -> None:
    """``await controller.cancelled_event.wait()`` in a task outside the run wakes up on cancellation."""
    noticed = anyio.Event()
    ready = anyio.Event()

    async def callback(controller: RunController) -> None:
        async def watch() -> None:
            await controller.cancelled_event.wait()
            noticed.set()

        outside.start_soon(watch)
        controller.append_text("go")
        ready.set()
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as outside:
            async with create_run(callback) as chunks:
                await chunks.__anext__()
                await ready.wait()
            await noticed.wait()


@pytest.mark.parametrize("form", ["async with", "async for"])
async def test_an_outer_deadline_stops_a_consumer_that_never_waits(anyio_backend: str, form: str) -> None:
    """Output is always ready here, so only reading the next chunk can notice the deadline."""

    async def callback(controller: RunController) -> None:
        while True:
            controller.append_text("x")
            controller.add_data(1)
            await anyio.lowlevel.checkpoint()

    received = 0
    with anyio.fail_after(5), anyio.CancelScope() as scope:
        if form == "async with":
            async with create_run(callback) as chunks:
                async for _ in chunks:
                    received += 1
                    if received == 100:
                        scope.cancel()
        else:
            async for _ in create_run(callback):
                received += 1
                if received == 100:
                    scope.cancel()
    assert scope.cancelled_caught


async def test_on_finish_state_is_the_state_the_consumer_received() -> None:
    """A state write that was never sent is not in the partial message."""
    outcomes: list[RunOutcome] = []
    write_made = anyio.Event()

    async def run(controller: RunController) -> None:
        controller.state["x"] = 1
        write_made.set()
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with create_run(run, state={"x": 0}, on_finish=outcomes.append):
            await write_made.wait()  # leave without reading anything
    assert [outcome.status for outcome in outcomes] == ["cancelled"]
    assert outcomes[0].message.state == {"x": 0}


def sleeper(cleanup: list[str], started: anyio.Event) -> Callable[[RunController], Awaitable[None]]:
    """A run that waits forever, and whose ``finally`` needs a (shielded) checkpoint to finish."""

    async def run(controller: RunController) -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()
            cleanup.append(f"finally, cancelled={controller.is_cancelled}")

    return run


async def test_aclose_after_a_cancelled_read_waits_for_cleanup() -> None:
    """A read cut short by the caller's own scope, then ``aclose()``: cleanup is done when it returns."""
    cleanup: list[str] = []
    started = anyio.Event()
    stream = create_run(sleeper(cleanup, started))
    reading = anyio.CancelScope()

    async def read() -> None:
        with reading:
            await anext(stream)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await started.wait()
            reading.cancel()
        await stream.aclose()
    assert cleanup == ["finally, cancelled=True"]


async def test_aclose_inside_async_with_cancels_and_waits_for_cleanup() -> None:
    cleanup: list[str] = []
    started = anyio.Event()
    with anyio.fail_after(5):
        async with create_run(sleeper(cleanup, started)) as chunks:
            await started.wait()
            await chunks.aclose()
            assert cleanup == ["finally, cancelled=True"]
            assert [chunk async for chunk in chunks] == []
