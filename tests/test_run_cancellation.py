"""Every way a consumer can go away cancels the run: the callback and its child tasks.

Each case runs a callback with an ``add_stream`` reader and a structured
tool task, all blocked forever. Once the consumer has read the callback's
text, it goes away; then every ``finally`` has run and seen
``is_cancelled`` and ``cancelled_event`` set, and ``on_finish`` got
"cancelled" with the text the consumer received.
"""

from __future__ import annotations

import inspect
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


# -- the compatibility window: a callback that looks at the cancellation may finish on its own ----------------


#: The window of these tests: long, so that a slow machine cannot make it end before the callback
#: returns, and longer than any test may take, so that a run that waited for it trips fail_after.
#: (The default of 50 ms is 0.0.36's, whose own test suite runs against this package.)
LONG_WINDOW = 3600.0

LOOKS: dict[str, Callable[[RunController], bool]] = {
    "is_cancelled": lambda controller: controller.is_cancelled,
    "cancelled_event.is_set()": lambda controller: controller.cancelled_event.is_set(),
}


@dataclass
class Saver:
    """A callback written for 0.0.36: it streams until it sees the cancellation, then saves what it has."""

    looks: Callable[[RunController], bool]
    log: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    outcomes: list[RunOutcome] = field(default_factory=list)
    reported: anyio.Event = field(default_factory=anyio.Event)
    controller: RunController | None = None

    def run(self, cancel_window: float = LONG_WINDOW) -> Run:
        return create_run(self.callback, on_finish=self.on_finish, cancel_window=cancel_window)

    async def callback(self, controller: RunController) -> None:
        self.controller = controller
        answer = ""
        try:
            while not self.looks(controller):
                answer += "word "
                controller.append_text("word ")
                await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()  # saving may await
            controller.append_text("after")  # discarded: the consumer is gone
            self.saved.append(answer)
            self.log.append("saved")
        finally:
            self.log.append("finally")

    def on_finish(self, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)
        self.log.append("on_finish")
        self.reported.set()

    def check_saved(self, received: str) -> None:
        """The callback saved its answer, which begins with what the consumer received; then on_finish ran."""
        assert self.log == ["saved", "finally", "on_finish"]
        [answer] = self.saved
        assert received
        assert answer.startswith(received)
        [outcome] = self.outcomes
        assert (outcome.status, outcome.error) == ("cancelled", None)
        assert outcome.message.text == received
        assert self.controller is not None
        assert self.controller.is_cancelled


async def _read_some(chunks: Run) -> str:
    """Read until the callback has written twice, so that it has run a while."""
    received = ""
    async for chunk in chunks:
        assert isinstance(chunk, TextDeltaChunk)
        received += chunk.text_delta
        if received.count("word") >= 2:
            return received
    raise AssertionError("the run ended")


@pytest.mark.parametrize("look", LOOKS)
async def test_a_callback_that_checks_saves_its_partial_answer_on_aclose(anyio_backend: str, look: str) -> None:
    saver = Saver(LOOKS[look])
    run = saver.run()
    with anyio.fail_after(5):
        received = await _read_some(run)
        await run.aclose()
    saver.check_saved(received)


@pytest.mark.parametrize("look", LOOKS)
async def test_a_callback_that_checks_saves_its_partial_answer_on_leaving_async_with(
    anyio_backend: str, look: str
) -> None:
    saver = Saver(LOOKS[look])
    run = saver.run()
    with anyio.fail_after(5):
        async with run as chunks:
            received = await _read_some(chunks)
    saver.check_saved(received)


async def test_a_callback_that_checks_saves_its_partial_answer_when_the_iterator_is_dropped(
    anyio_backend: str,
) -> None:
    """The run is cancelled from the loop's own queue (where the collector's cancellation goes): same window."""
    saver = Saver(LOOKS["is_cancelled"])
    with anyio.fail_after(5):
        run = saver.run()
        received = await _read_some(run)
        del run
        await saver.reported.wait()
    saver.check_saved(received)


@pytest.mark.parametrize("runner", ["asyncio.run", "trio.run"])
def test_a_run_dropped_under_a_plain_runner_gives_the_window_too(runner: str) -> None:
    """No AnyIO runner around the program: the cancellation still finds the loop's clock."""
    saver = Saver(LOOKS["is_cancelled"])

    async def main() -> str:
        with anyio.fail_after(5):
            run = saver.run()
            received = await _read_some(run)
            del run
            await saver.reported.wait()
        return received

    if runner == "asyncio.run":
        import asyncio

        received = asyncio.run(main())
    else:
        import trio

        received = trio.run(main)
    saver.check_saved(received)


async def test_a_callback_that_waits_for_the_cancellation_saves_after_it(anyio_backend: str, form: str) -> None:
    """``await controller.cancelled_event.wait()`` returns when the consumer leaves, and the callback goes on."""
    log: list[str] = []

    async def callback(controller: RunController) -> None:
        controller.append_text("partial")
        assert await controller.cancelled_event.wait()
        await anyio.lowlevel.checkpoint()  # saving may await
        log.append(f"saved, cancelled={controller.is_cancelled}")

    run = create_run(
        callback, cancel_window=LONG_WINDOW, on_finish=lambda outcome: log.append(f"on_finish {outcome.status}")
    )
    with anyio.fail_after(5):
        if form == "structured":
            async with run as chunks:
                assert await anext(chunks) == TextDeltaChunk("partial")
        else:
            assert await anext(run) == TextDeltaChunk("partial")
            await run.aclose()
    assert log == ["saved, cancelled=True", "on_finish cancelled"]


def test_the_default_window_is_that_of_0_0_36() -> None:
    assert inspect.signature(create_run).parameters["cancel_window"].default == 0.05


async def test_a_callback_that_looked_but_does_not_return_is_cancelled_when_its_window_ends(
    anyio_backend: str, form: str
) -> None:
    log: list[str] = []

    async def callback(controller: RunController) -> None:
        assert not controller.is_cancelled
        controller.append_text("partial")
        try:
            await anyio.sleep_forever()
        finally:
            log.append(f"finally, cancelled={controller.is_cancelled}")

    run = create_run(callback, on_finish=lambda outcome: log.append(f"on_finish {outcome.status}"))
    with anyio.fail_after(5):
        if form == "structured":
            async with run as chunks:
                await anext(chunks)
        else:
            await anext(run)
            await run.aclose()
    assert log == ["finally, cancelled=True", "on_finish cancelled"]


async def test_a_callback_that_never_looks_is_cancelled_at_once(anyio_backend: str, form: str) -> None:
    """Its ``finally`` has run when ``aclose()`` returns, and the run did not sit out any window."""
    log: list[str] = []

    async def callback(controller: RunController) -> None:
        controller.append_text("partial")
        try:
            await anyio.sleep_forever()
        finally:
            log.append("finally")

    run = create_run(
        callback, cancel_window=LONG_WINDOW, on_finish=lambda outcome: log.append(f"on_finish {outcome.status}")
    )
    with anyio.fail_after(5):
        if form == "structured":
            async with run as chunks:
                await anext(chunks)
                await chunks.aclose()
                assert log == ["finally", "on_finish cancelled"]
        else:
            await anext(run)
            await run.aclose()
    assert log == ["finally", "on_finish cancelled"]


@pytest.mark.parametrize("child", ["tool", "batch tool", "substream"])
async def test_children_are_cancelled_at_once_while_the_callback_has_its_window(
    anyio_backend: str, form: str, child: str
) -> None:
    """The callback waits for its child's ``finally`` after the cancellation: only an immediate cancel ends it."""
    log: list[str] = []
    child_started = anyio.Event()
    child_done = anyio.Event()

    async def block(call: ToolCall | None = None) -> None:
        child_started.set()
        try:
            await anyio.sleep_forever()
        finally:
            log.append("child finally")
            child_done.set()

    async def source() -> AsyncIterator[AssistantStreamChunk]:
        await block()
        yield TextDeltaChunk("never")

    async def save_after_the_child(controller: RunController) -> None:
        await child_started.wait()
        controller.append_text("partial")
        await controller.cancelled_event.wait()
        await child_done.wait()
        log.append("saved")

    async def callback(controller: RunController) -> None:
        if child == "tool":
            controller.start_tool_call("slow", block, args={})
        elif child == "substream":
            controller.add_stream(source())
        else:
            async with controller.tool_calls() as calls:
                calls.start("slow", block, args={})
                await save_after_the_child(controller)
            return
        await save_after_the_child(controller)

    run = create_run(callback, cancel_window=LONG_WINDOW, on_finish=lambda o: log.append(f"on_finish {o.status}"))
    with anyio.fail_after(5):
        if form == "structured":
            async with run as chunks:
                async for chunk in chunks:
                    if chunk == TextDeltaChunk("partial"):
                        break
        else:
            async for chunk in run:
                if chunk == TextDeltaChunk("partial"):
                    break
            await run.aclose()
    assert log == ["child finally", "saved", "on_finish cancelled"]


async def test_a_zero_window_cancels_a_callback_that_checks_at_once(anyio_backend: str, form: str) -> None:
    saver = Saver(LOOKS["is_cancelled"])
    run = saver.run(cancel_window=0)
    with anyio.fail_after(5):
        if form == "structured":
            async with run as chunks:
                received = await _read_some(chunks)
        else:
            received = await _read_some(run)
            await run.aclose()
    assert saver.saved == []
    assert saver.log == ["finally", "on_finish"]
    [outcome] = saver.outcomes
    assert (outcome.status, outcome.message.text) == ("cancelled", received)


@pytest.mark.parametrize("window", [-1, float("nan"), float("inf"), "0.05", True])
def test_the_window_must_be_a_finite_number_of_seconds(window: object) -> None:
    async def callback(controller: RunController) -> None: ...

    with pytest.raises((ValueError, TypeError), match="cancel_window"):
        create_run(callback, cancel_window=window)  # type: ignore[arg-type]
