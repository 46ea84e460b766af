"""The life of one run: its scope and children, cancellation, errors and outcome.

A run is a scope in its producer's task: the callback runs in it, and its tool
tasks and substreams are its children (:class:`Children`), tasks of the task
group its consumer gives it (``async with``'s) or of one the run opens when
it starts its first child, which the run waits for. It ends in
exactly one outcome (completed, error or cancelled), after which no chunk is
emitted. The run owns that outcome
(:class:`Outcome`: the message as delivered, the ``on_finish`` hooks, one
rule for the status in :func:`finish_status`): it reports from its shielded,
time-limited ``finally``, or, when its consumer says what it delivered (a
response, a resumable producer), once that consumer has told it whether the
stream's end reached the reader.

When the consumer goes away (every way a consumer stops ends in
:meth:`RunCore.cancel`, the one decision), the children are cancelled at
once. So is the callback, unless it has looked at the cancellation (``is_cancelled``,
``cancelled_event``): then, as in assistant-stream 0.0.36, it gets
``cancel_window`` seconds to return on its own (and save what it has) before
its scope's deadline cancels it.

What every layer shares about a run is here too: the cancellation signal
(the :class:`CancellationSignal` protocol, the settable :class:`Flag` and a
run's read-only view), the status a run finishes with, the text an error
becomes, the options in seconds (their one check and the default grace
period), and how an iterator a run or a response reads is closed.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import math
import secrets
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol, TypeGuard, runtime_checkable

import anyio
import anyio.abc

from . import _detached, _telemetry
from ._detached import EventLoop
from ._json import copy_json_tree
from ._merger import Merger, Mode
from .assistant_stream_chunk import AssistantStreamChunk, ErrorChunk
from .message import AssistantMessage, MessageBuilder
from .state import StateStore

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .tool_calls import ToolCallSequencer

logger = logging.getLogger("assistant_stream_ce")

DEFAULT_GRACE_PERIOD = 5.0
"""Seconds that shielded cleanup may take once cancelled: a run's, a response's, a stream's ``aclose()``."""


def positive_seconds(value: object, name: str) -> float:
    """``value`` as a positive, finite number of seconds, else a ValueError naming ``name``.

    The one check of every option in seconds: ints and floats pass; a bool
    (not a duration), NaN, infinity, 0 and less do not.
    """
    if _finite_number(value) and value > 0:
        return float(value)
    raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


def seconds_or_zero(value: object, name: str) -> float:
    """As :func:`positive_seconds`, but 0 passes too (for an option where 0 means "at once")."""
    if _finite_number(value) and value >= 0:
        return float(value)
    raise ValueError(f"{name} must be a number of seconds, 0 or more, not {value!r}")


def _finite_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


FinishStatus = Literal["completed", "error", "cancelled"]
"""How a run, and the stream that carries it, ended."""


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, and the message as the consumer received it."""

    status: FinishStatus
    message: AssistantMessage
    error: BaseException | None = None


OnFinish = Callable[[RunOutcome], Awaitable[None] | None]


def finish_status(error: BaseException | None, cancelled: bool) -> FinishStatus:
    """The one rule for how a stream ended: an error wins; else it completed unless it was cut short."""
    return "error" if error is not None else "cancelled" if cancelled else "completed"


async def call_on_finish(on_finish: OnFinish, outcome: RunOutcome, owner: str) -> None:
    """Give ``on_finish`` the outcome, awaiting it if it is async; a hook that raises is logged, not raised.

    ``owner`` (a run, a response, a resumable run) names whose hook it was in the log.
    """
    try:
        result = on_finish(outcome)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("assistant_stream_ce %s: on_finish raised", owner)


class Outcome:
    """What one stream's owner (a run, or the plain stream a response sends) reports: the one place
    that keeps the message as delivered and gives the ``on_finish`` hooks the outcome, once.

    A message is kept only once a hook wants it: a stream without hooks costs nothing per chunk.
    """

    __slots__ = ("_hooks", "_reported", "builder")

    def __init__(self) -> None:
        self.builder: MessageBuilder | None = None
        self._hooks: list[tuple[OnFinish, str]] = []
        self._reported = False

    def add_hook(self, on_finish: OnFinish, owner: str, initial_state: Any = None) -> None:
        """Give ``on_finish`` the outcome too (``owner`` names it in the log).

        ``initial_state``: what the message's state starts from, a copy (the first hook's counts).
        """
        if self.builder is None:
            self.builder = MessageBuilder(initial_state)
        self._hooks.append((on_finish, owner))

    def delivered(self, chunk: AssistantStreamChunk) -> None:
        """``chunk`` reached the reader: it is part of the message."""
        if self.builder is not None and not self._reported:
            self.builder.add(chunk)

    async def report(self, error: BaseException | None, cancelled: bool, grace_period: float) -> None:
        """Call each hook once with the outcome, shielded, all of them within ``grace_period``."""
        if self._reported:
            return
        self._reported = True
        if self.builder is None:
            return
        outcome = RunOutcome(finish_status(error, cancelled), self.builder.message, error)
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + grace_period
            for on_finish, owner in self._hooks:
                await call_on_finish(on_finish, outcome, owner)


class DanglingToolCallWarning(RuntimeWarning):
    """A tool call's arguments were still open when its run ended."""


@runtime_checkable
class CancellationSignal(Protocol):
    """A cancellation to check (``is_set()``) or wait for (``await wait()``).

    What ``controller.cancelled_event`` gives, and what a resumable store's ``read`` is stopped with.
    """

    def is_set(self) -> bool: ...

    async def wait(self) -> bool: ...


class Flag:
    """A boolean that tasks can wait for; as a run's or a reader's cancellation, a :class:`CancellationSignal`.

    The event behind ``wait()`` is made only when someone needs it.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    def event(self) -> anyio.Event:
        """The event ``wait()`` waits on, made now if it was not (already set if the flag is)."""
        if self._event is None:
            self._event = anyio.Event()
            if self._set:
                self._event.set()
        return self._event

    async def wait(self) -> bool:
        await self.event().wait()
        return True


class ReadOnlyCancellationSignal:
    """A run's cancellation, read-only (``controller.cancelled_event``; assistant-stream 0.0.36's name)."""

    __slots__ = ("_flag",)

    def __init__(self, flag: Flag) -> None:
        self._flag = flag

    def is_set(self) -> bool:
        return self._flag.is_set()

    async def wait(self) -> bool:
        return await self._flag.wait()


async def close_quietly(iterator: object, grace_period: float) -> None:
    """``await iterator.aclose()`` if it has one, shielded and bounded by ``grace_period``."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with anyio.move_on_after(grace_period, shield=True):
            await aclose()


#: Turns an exception into the text a client reads: one hook for every error path (run, tool, response, store).
ErrorMessage = Callable[[BaseException], str]


def default_error_message(exc: BaseException) -> str:
    """The text a client sees for an error: the message of the exception that matters, never a traceback.

    The one rule for every error path: a run's, a tool call's, a response's, a resumable stream's.
    """
    exc = unwrap(exc)
    return str(exc) or type(exc).__name__


def unwrap(exc: BaseException) -> BaseException:
    """The exception that matters inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def beyond_cancellation(exc: BaseException) -> BaseException | None:
    """``exc`` without the backend's cancellation in it; None if it held nothing else."""
    cancelled = anyio.get_cancelled_exc_class()
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(cancelled)[1]
    return None if isinstance(exc, cancelled) else exc


class _Failing:
    """A block of a run's whose exception fails the run instead of propagating; cancellation propagates.

    A context manager rather than a coroutine around the block: the callback's every
    resumption would pass through that coroutine.
    """

    __slots__ = ("_core",)

    def __init__(self, core: RunCore) -> None:
        self._core = core

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if isinstance(exc, Exception):
            self._core.fail(exc)
            return True
        if exc is None or (beyond := beyond_cancellation(exc)) is None:
            return False
        self._core.fail(unwrap(beyond))  # SystemExit, KeyboardInterrupt, an application's own: the consumer raises it
        return True


def error_text(error_message: ErrorMessage, exc: BaseException) -> str:
    """What ``error_message`` makes of ``exc`` (unwrapped); the default text if the hook fails.

    An error must reach the client even when the hook that words it is broken.
    """
    exc = unwrap(exc)
    try:
        text: object = error_message(exc)
        if not isinstance(text, str):
            raise TypeError(f"error_message must return str, not {type(text).__name__}")
    except Exception:
        logger.exception("assistant_stream_ce: the error_message hook failed; the default text is sent instead")
        return default_error_message(exc)
    return text


class TaskStarter(Protocol):
    """What starts a run's children: a task group, or the run's :class:`Children`."""

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: object = None) -> object: ...


class Children:
    """A run's tool tasks and substreams: tasks of a task group, counted.

    The task group is the one its consumer gave it (``async with``'s), or one
    the run opens in a task of its own when it starts its first child (most
    runs start none, and a request pays for no task group then). Each child is
    shielded as the run's scope is (``cancel()`` and ``fail()`` stop them
    through their :meth:`RunCore.child_scope`) and counted, so that the run
    ends only once they have.
    """

    __slots__ = ("_core", "_holder", "_host", "_left", "_none_left", "_queued", "_release", "_shielded")

    def __init__(self, core: RunCore, host: anyio.abc.TaskGroup | None, shielded: bool) -> None:
        self._core = core
        self._host = host
        self._shielded = shielded
        self._left = 0
        self._none_left: anyio.Event | None = None
        # The run's own task group, when it opens one: the task that holds it open, the children
        # started before it was open, and what lets it close once they all have ended.
        self._holder: _detached.Companion | None = None
        self._queued: list[tuple[contextvars.Context, Callable[[], Coroutine[Any, Any, None]], object]] = []
        self._release: anyio.Event | None = None

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: object = None) -> None:
        """Start ``func(*args)`` as a child of the run; what it raises fails the run."""
        self._left += 1
        child = functools.partial(self._child, functools.partial(func, *args))
        if self._host is not None:
            self._host.start_soon(child, name=name)
            return
        # Started once the group is open, with the context vars it would have had if started now.
        self._queued.append((contextvars.copy_context(), child, name))
        if self._holder is None:
            self._release = anyio.Event()
            self._holder = _detached.Companion(self._hold)

    async def _hold(self) -> None:
        """The run's own task group, open until :meth:`ended` lets it close."""
        assert self._release is not None
        async with anyio.create_task_group() as tg:
            for context, child, name in self._queued:
                context.run(functools.partial(tg.start_soon, child, name=name))
            self._queued.clear()
            self._host = tg
            await self._release.wait()

    async def _child(self, child: Callable[[], Awaitable[None]]) -> None:
        try:
            with anyio.CancelScope(shield=self._shielded):
                await self._core.guard(child)
        finally:
            self._left -= 1
            if not self._left and self._none_left is not None:
                self._none_left.set()

    async def ended(self) -> None:
        """Wait until every child has ended (shielded as they are), then close the run's own group."""
        if not self._left and self._holder is None:
            return  # no scope to enter: most runs start no child
        try:
            with anyio.CancelScope(shield=self._shielded):
                while self._left:
                    self._none_left = anyio.Event()
                    await self._none_left.wait()
        finally:
            if self._holder is not None:
                assert self._release is not None
                self._release.set()
                await self._holder.join()  # shielded: the group waits for any child still ending


class RunCore:
    """State shared by a run's controller(s), its producer and its consumer."""

    def __init__(
        self,
        state: Any,
        on_finish: OnFinish | None,
        grace_period: float,
        error_message: Callable[[BaseException], str],
        cancel_window: float,
    ) -> None:
        self.merger = Merger()
        self.state = StateStore(state, self.merger.state, self.merger._writable)
        self.grace_period = grace_period
        self.error_message = error_message
        self.cancel_window = cancel_window
        # Set when the controller's cancellation is read: the callback may stop on its own.
        self.watches_cancellation = False
        self._in_callback = False
        # Scopes of running tool calls and substreams; dicts used as sets, since an empty dict is
        # not tracked by the garbage collector and an empty set is (most runs start no child).
        self._child_scopes: dict[anyio.CancelScope, None] = {}
        self.outcome = Outcome()
        if on_finish is not None:
            self.add_hook(on_finish, "run")
        self.loop: EventLoop | None = None  # the loop the run runs on, once it has started
        self.scope: anyio.CancelScope | None = None
        self.children: Children | None = None  # while the run runs
        self.sequencer: ToolCallSequencer | None = None
        self.error: BaseException | None = None
        self.error_raised = False  # the consumer has raised ``error``
        # A consumer that forwards chunks (a response, a resumable producer) says which it delivered,
        # and when the stream's end was delivered: the run reports its outcome then, not when it ends.
        self.confirms_delivery = False
        self.cancellation = Flag()
        self.finishing = False
        self._done = Flag()
        self._cleanups: dict[anyio.CancelScope, None] = {}  # cleanup() blocks waiting for the run to stop
        self._run_id: str | None = None
        self.span: Span | None = None  # the run's span while it runs, when tracing is on

    @property
    def run_id(self) -> str:
        """A short random id of the run, made when first asked for (for logs and traces)."""
        if self._run_id is None:
            self._run_id = secrets.token_hex(8)
        return self._run_id

    @property
    def status(self) -> FinishStatus:
        """How the run ended (meaningful once it has)."""
        return finish_status(self.error, self.cancelled)

    def add_hook(self, on_finish: OnFinish, owner: str) -> None:
        """Give ``on_finish`` the run's outcome too; before the run starts."""
        # The message folds what was sent onto its own copy of the state: the live state runs ahead of the wire.
        self.outcome.add_hook(on_finish, owner, copy_json_tree(self.state.root, "state"))

    @property
    def cancelled(self) -> bool:
        return self.cancellation.is_set()

    @property
    def is_done(self) -> bool:
        return self._done.is_set()

    def done_event(self) -> anyio.Event:
        return self._done.event()

    async def stream_end(self) -> NoReturn:
        """What the consumer gets after the last chunk, once the run has ended: its error (the first
        time it asks), else StopAsyncIteration."""
        await self.done_event().wait()
        if self.error is not None and not self.error_raised:
            self.error_raised = True
            raise self.error
        raise StopAsyncIteration

    async def end(self, delivered: bool, failure: BaseException | None) -> None:
        """A consumer that confirms delivery is done: report the outcome (once), after the run has ended.

        ``delivered``: the stream's end reached the reader (else the run counts as cancelled);
        ``failure``: what failed the delivery itself (a store), which fails the outcome unless the run failed.
        """
        await self.outcome.report(self.error or failure, self.cancelled or not delivered, self.grace_period)

    def cancel(self) -> None:
        """The consumer went away: stop the run and drop its pending output.

        Tool calls and substreams stop at once. The callback too, unless it
        watches the cancellation: then its scope gets a deadline
        ``cancel_window`` from now, which cancels it if it has not returned.
        """
        if self.finishing or self.cancelled:
            return
        self.cancellation.set()
        self.merger.discard()
        for scope in self._child_scopes:
            scope.cancel()
        if self.scope is not None:
            if self.watches_cancellation and self._in_callback and self.cancel_window > 0:
                assert self.loop is not None  # set before the scope
                self.scope.deadline = min(self.scope.deadline, self.loop.time() + self.cancel_window)
            else:
                self.scope.cancel()
        self._bound_cleanups()

    @contextlib.contextmanager
    def child_scope(self) -> Iterator[None]:
        """A scope for one tool call or substream, which ``cancel()`` cancels at once."""
        with anyio.CancelScope() as scope:
            if self.cancelled or self.error is not None:  # a child that starts once the run has stopped
                scope.cancel()
            self._child_scopes[scope] = None
            try:
                yield
            finally:
                self._child_scopes.pop(scope, None)

    def fail(self, exc: BaseException, *, reported: bool = False) -> None:
        """A child raised: emit the error (unless ``reported``: it is out already), end the run's other work."""
        if self.error is not None or self.cancelled:
            logger.warning("assistant_stream_ce run: a further error after the run ended", exc_info=exc)
            return
        self.error = exc
        if self.merger.mode is Mode.OPEN and not reported:
            self.merger.chunk(ErrorChunk(error=error_text(self.error_message, exc)))
        self.merger.seal()
        for scope in self._child_scopes:
            scope.cancel()
        if self.scope is not None:
            self.scope.cancel()
        self._bound_cleanups()

    @contextlib.contextmanager
    def cleanup(self) -> Iterator[anyio.CancelScope]:
        """A shield for cleanup that lasts at most ``grace_period`` once the code in it is being cancelled.

        Entered under cancellation, the block has ``grace_period`` from then;
        entered earlier, from the moment the run stops. Then it is cancelled
        and left quietly, like ``move_on_after``.
        """
        scope = anyio.CancelScope(shield=True)
        if anyio.current_effective_deadline() == -math.inf:  # an enclosing scope is cancelled
            scope.deadline = anyio.current_time() + self.grace_period
        else:
            self._cleanups[scope] = None
        try:
            with scope:
                yield scope
        finally:
            self._cleanups.pop(scope, None)

    def _bound_cleanups(self) -> None:
        """The run is stopping: the cleanup blocks open now get ``grace_period`` from now."""
        if self._cleanups:
            deadline = anyio.current_time() + self.grace_period
            for scope in self._cleanups:
                scope.deadline = min(scope.deadline, deadline)
            self._cleanups.clear()

    async def guard(self, child: Callable[[], Awaitable[None]]) -> None:
        """Run one child of the run; an exception fails the run instead of the task group."""
        with _Failing(self):
            await child()

    async def produce(
        self, callback: Callable[[], Awaitable[None]], host: anyio.abc.TaskGroup | None, *, shielded: bool = False
    ) -> None:
        """The producer: runs the callback in the run's scope, then waits for its children, then ends the run.

        ``host``: the task group the children join (``async with``'s); None: the run opens one
        when it starts its first child.
        ``shielded``: only ``cancel()`` stops it, not the scopes it runs in.
        With tracing on, all of it is the run's span, which tells how the run ended.
        No coroutine between the task and the callback: every resumption of the callback
        would pass through it.
        """
        self.loop = EventLoop()
        self.merger.bind(self.loop)
        children = self.children = Children(self, host, shielded)
        with _telemetry.span(_telemetry.RUN_SPAN, lambda: {_telemetry.RUN_ID: self.run_id}) as self.span:
            try:
                with anyio.CancelScope(shield=shielded) as self.scope:
                    if self.cancelled:
                        self.scope.cancel()
                    self._in_callback = True
                    try:
                        with _Failing(self):
                            await callback()
                    finally:
                        self._in_callback = False
                        await children.ended()
                if not self.cancelled:  # else the callback returned in its window, and nothing more goes out
                    if self.error is None:
                        self._finish_dangling_calls()
                    self.merger.close()
                    # Outside the run's scope: cancel() ends this wait by discarding what is left.
                    await self.merger.drained()
            except BaseException as exc:
                if (beyond := beyond_cancellation(exc)) is None:
                    self.cancel()  # an enclosing scope was cancelled: same as the consumer leaving
                    raise
                # Anything else: a BaseException that is not cancellation (SystemExit, KeyboardInterrupt, an
                # application's own) from the callback or a child, or a defect of the run machinery: the run
                # fails with it, and the consumer raises it. The producer itself never raises it: in the
                # ``async for`` form nobody would receive it (trio: TrioInternalError; asyncio: an
                # unretrieved task exception).
                self.fail(unwrap(beyond))
            finally:
                self.children = None  # no cycle left behind for the collector
                self.finishing = True
                self.merger.close()
                try:
                    if not self.confirms_delivery:  # else the consumer's ``end()`` reports, once the end was delivered
                        await self.outcome.report(self.error, self.cancelled, self.grace_period)
                finally:
                    self._done.set()
                    _telemetry.ended(self.span, self.status, self.error and unwrap(self.error))

    def _finish_dangling_calls(self) -> None:
        for tool_call_id in self.merger.open_calls():
            self.merger.finish_args(tool_call_id)
            warnings.warn(
                f"tool call {tool_call_id!r} was still open when its run ended; its arguments "
                "were closed for it (call close() or set_response() on every tool call)",
                DanglingToolCallWarning,
                stacklevel=1,
            )
