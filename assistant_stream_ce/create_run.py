"""``create_run``, the :class:`Run` it returns, and the controller a run's callback writes through.

A :class:`Run` is consumed with ``async with`` or ``async for``; a response
or a resumable producer streams it through the delivery protocol instead
(:meth:`Run.open_stream`, :meth:`Run.delivered`, :meth:`Run.hang_up`,
:meth:`Run.end`), which lets the run own its outcome: it is told what
reached the reader, and reports once the end did or did not.
"""

from __future__ import annotations

import contextlib
import enum
import functools
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc

from . import _detached, _telemetry
from ._json import copy_json_tree, encoded_size
from ._run import (
    DEFAULT_GRACE_PERIOD,
    CancellationSignal,
    Children,
    OnFinish,
    ReadOnlyCancellationSignal,
    RunCore,
    RunOutcome,
    close_quietly,
    default_error_message,
    positive_seconds,
    seconds_or_zero,
)
from .approval import ToolApproval
from .assistant_stream_chunk import (
    AnnotationsChunk,
    AssistantStreamChunk,
    DataChunk,
    DataPartChunk,
    DocumentSourceChunk,
    ErrorChunk,
    FileChunk,
    MessageMetadataChunk,
    PreliminaryToolResultChunk,
    ProviderMetadata,
    ProviderMetadataChunk,
    ReasoningDeltaChunk,
    ReasoningPartStartChunk,
    SourceChunk,
    StepFinishChunk,
    StepStartChunk,
    TextDeltaChunk,
    ToolApprovalRequestChunk,
    ToolApprovalResponseChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UpdateStateChunk,
    UsageChunk,
    WarningChunk,
)
from .state import StateProxy
from .tool_call_controller import ToolCallController, generate_openai_style_tool_call_id, tool_result_chunk
from .tool_calls import (
    ResultOrder,
    ToolCallBatch,
    ToolCallHandle,
    ToolCallSequencer,
    ToolFunction,
    start_tool_call,
)

__all__ = ["CancellationSignal", "ReadOnlyCancellationSignal", "Run", "RunController", "RunOutcome", "create_run"]

DEFAULT_CANCEL_WINDOW = 0.05
"""Seconds a callback that watches its cancellation has to return on its own (as in 0.0.36)."""


def _check_str(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")


def _check_tokens(**counts: int | None) -> None:
    """Token counts are ints (None where a count is optional and unknown)."""
    for name, value in counts.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TypeError(f"{name} must be int, not {type(value).__name__}")
        if value is not None and value < 0:
            raise ValueError(f"{name} must not be negative, not {value}")


def _check_object(value: object, name: str) -> dict[str, Any]:
    """A private plain copy of a JSON object handed in."""
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict, not {type(value).__name__}")
    copied: dict[str, Any] = copy_json_tree(value, name)
    return copied


class RunController:
    """What a run's callback uses to emit text, tool calls, state and more.

    Emitting methods are synchronous and never block. Values that cannot be
    sent (not JSON) raise TypeError here, before anything is emitted.
    """

    def __init__(self, core: RunCore, parent_id: str | None = None) -> None:
        self._core = core
        self._merger = core.merger
        self._parent_id = parent_id

    @property
    def run_id(self) -> str:
        """A short random id of this run, the one its trace spans carry."""
        return self._core.run_id

    def with_parent_id(self, parent_id: str) -> RunController:
        """A controller of the same run whose parts carry ``parent_id``."""
        return RunController(self._core, parent_id)

    # -- text ----------------------------------------------------------------

    def append_text(self, text_delta: str) -> None:
        """Append assistant text."""
        self._merger.text(text_delta, self._parent_id)

    def append_reasoning(self, reasoning_delta: str) -> None:
        """Append reasoning text."""
        self._merger.text(reasoning_delta, self._parent_id, reasoning=True)

    def add_reasoning_part(self, unstable_summary: str) -> None:
        """Start a new reasoning part carrying ``unstable_summary``; the reasoning appended next fills it."""
        _check_str(unstable_summary, "unstable_summary")
        chunk = ReasoningPartStartChunk(unstable_summary=unstable_summary, parent_id=self._parent_id)
        self._merger.chunk(chunk, encoded_size(chunk, "unstable_summary"))

    # -- tool calls ----------------------------------------------------------

    async def add_tool_call(self, tool_name: str, tool_call_id: str | None = None) -> ToolCallController:
        """Begin a tool call whose arguments and result the caller provides."""
        await anyio.lowlevel.checkpoint()
        tool_call_id = tool_call_id or generate_openai_style_tool_call_id()
        self._merger.begin_tool(tool_call_id, tool_name, self._parent_id)
        return ToolCallController(self._merger, tool_name, tool_call_id)

    def add_tool_result(self, tool_call_id: str, result: Any) -> None:
        """Send the result of a tool call begun earlier in this run."""
        self._merger.result(*tool_result_chunk(tool_call_id, result))

    def start_tool_call(
        self,
        tool_name: str,
        fn: ToolFunction,
        *,
        args: dict[str, Any] | None = None,
        tool_call_id: str | None = None,
        timeout: float | None = None,
        needs_approval: bool = False,
        approval: ToolApproval | None = None,
    ) -> ToolCallHandle:
        """Run ``await fn(tool)`` as a child task of the run; its return value is the result.

        An exception or a timeout becomes an error result for this call only.
        Results of these calls go out in the order the calls were started.
        ``needs_approval=True``: announce the call (``args`` required) and ask
        for approval; ``fn`` does not run in this run. ``approval=`` (from a
        request's ``tool_approvals()``): continue that call under its id, running
        ``fn`` if approved, sending the denial if not.
        """
        core = self._core
        tg = self._running_children("start_tool_call()")
        if core.sequencer is None:
            core.sequencer = ToolCallSequencer(self._merger, "call")
        return start_tool_call(
            core,
            tg,
            core.sequencer,
            self._parent_id,
            tool_name,
            fn,
            args=args,
            tool_call_id=tool_call_id,
            timeout=timeout,
            needs_approval=needs_approval,
            approval=approval,
        )

    def tool_calls(self, order: ResultOrder = "call") -> ToolCallBatch:
        """A batch of parallel tool calls: ``async with controller.tool_calls() as calls``.

        ``order="call"`` sends results in the order the calls were started,
        ``order="completion"`` as they finish.
        """
        return ToolCallBatch(self._core, self._parent_id, order)

    # -- substreams ----------------------------------------------------------

    def add_stream(self, stream: AsyncIterable[AssistantStreamChunk]) -> None:
        """Merge a stream of chunks into the run; it is read only as fast as the client reads."""
        tg = self._running_children("add_stream()")
        tg.start_soon(self._pump, stream)

    async def _pump(self, stream: AsyncIterable[AssistantStreamChunk]) -> None:
        iterator = aiter(stream)
        chunk: AssistantStreamChunk | None = None
        try:
            with self._core.child_scope():
                while True:
                    await self._merger.wait_for_room()
                    try:
                        chunk = await anext(iterator)
                    except StopAsyncIteration:
                        return
                    except Exception as exc:
                        # A stream that raises right after an error chunk (a failing run does) has sent its error.
                        self._core.fail(exc, reported=isinstance(chunk, ErrorChunk))
                        return
                    self._emit(chunk)
        finally:
            await close_quietly(iterator, self._core.grace_period)

    def _emit(self, chunk: AssistantStreamChunk) -> None:
        merger = self._merger
        match chunk:
            case TextDeltaChunk():
                merger.text(chunk.text_delta, chunk.parent_id)
            case ReasoningDeltaChunk():
                merger.text(chunk.reasoning_delta, chunk.parent_id, reasoning=True)
            case ToolCallBeginChunk():
                merger.begin_tool(chunk.tool_call_id, chunk.tool_name, chunk.parent_id)
            case ToolCallDeltaChunk():
                merger.args_delta(chunk.tool_call_id, chunk.args_text_delta)
            case ToolCallArgsFinishChunk():
                merger.finish_args(chunk.tool_call_id)
            case ToolResultChunk():
                merger.result(*tool_result_chunk(chunk.tool_call_id, chunk.result, chunk.artifact, chunk.is_error))
            case ToolApprovalRequestChunk():
                merger.request_approval(chunk)
            case ToolApprovalResponseChunk():
                merger.continue_call(chunk)
            case UpdateStateChunk():
                self._core.state.apply(chunk.operations)
            case PreliminaryToolResultChunk() | DataPartChunk():
                merger.replacing(chunk, encoded_size(chunk, f"a {chunk.type} chunk"))
            case ProviderMetadataChunk():
                merger.provider_metadata(chunk)
            case (
                DataChunk()
                | AnnotationsChunk()
                | ErrorChunk()
                | ReasoningPartStartChunk()
                | SourceChunk()
                | FileChunk()
                | StepStartChunk()
                | StepFinishChunk()
                | MessageMetadataChunk()
                | UsageChunk()
                | DocumentSourceChunk()
                | WarningChunk()
            ):
                merger.chunk(chunk, encoded_size(chunk, f"a {chunk.type} chunk"))
            case _:
                raise TypeError(f"add_stream() got {type(chunk).__name__}, which is not an assistant stream chunk")

    def _running_children(self, what: str) -> Children:
        self._merger._writable(what)
        assert self._core.children is not None
        return self._core.children

    # -- other parts ---------------------------------------------------------

    def add_data(self, data: Any) -> None:
        """Send an application-defined JSON value."""
        self._merger.chunk(DataChunk(data=data), encoded_size(data, "add_data() value"))

    def add_error(self, error: str) -> None:
        """Send an error message (the run goes on)."""
        _check_str(error, "error")
        self._merger.chunk(ErrorChunk(error=error))

    def add_source(self, id: str, url: str, title: str | None = None) -> None:
        """Cite a source."""
        _check_str(id, "id")
        _check_str(url, "url")
        if title is not None:
            _check_str(title, "title")
        self._merger.chunk(SourceChunk(id=id, url=url, title=title, parent_id=self._parent_id))

    def add_file(self, data: str, mime_type: str) -> None:
        """Send a file as base64 ``data``."""
        _check_str(data, "data")
        _check_str(mime_type, "mime_type")
        self._merger.chunk(FileChunk(data=data, mime_type=mime_type, parent_id=self._parent_id), len(data))

    def add_annotations(self, annotations: list[Any]) -> None:
        """Attach message annotations."""
        if not isinstance(annotations, list):
            raise TypeError(f"annotations must be a list, not {type(annotations).__name__}")
        self._merger.chunk(AnnotationsChunk(annotations=annotations), encoded_size(annotations, "annotations"))

    def add_step_start(self, message_id: str) -> None:
        """Start a model generation step."""
        _check_str(message_id, "message_id")
        self._merger.chunk(StepStartChunk(message_id=message_id))

    def add_step_finish(
        self, finish_reason: str, input_tokens: int = 0, output_tokens: int = 0, is_continued: bool = False
    ) -> None:
        """Finish a model generation step, with its token usage."""
        _check_str(finish_reason, "finish_reason")
        _check_tokens(input_tokens=input_tokens, output_tokens=output_tokens)
        self._merger.chunk(StepFinishChunk(finish_reason, input_tokens, output_tokens, bool(is_continued)))

    # -- beyond assistant-stream 0.0.36 ---------------------------------------

    def set_message_metadata(self, metadata: dict[str, Any]) -> None:
        """Set metadata of the assistant message (a JSON object: model name, ids, ...).

        Merged into what was set before: objects key by key, any other value
        replaces (as ``useChat`` merges it).
        """
        metadata = _check_object(metadata, "metadata")
        self._merger.chunk(MessageMetadataChunk(metadata), encoded_size(metadata, "metadata"))

    def add_usage(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        reasoning_tokens: int | None = None,
        cached_input_tokens: int | None = None,
    ) -> None:
        """Record tokens a model call used; the message's usage is the sum of every record and step finish.

        ``reasoning_tokens`` are part of ``output_tokens``, ``cached_input_tokens`` part of ``input_tokens``.
        """
        _check_tokens(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            cached_input_tokens=cached_input_tokens,
        )
        self._merger.chunk(UsageChunk(input_tokens, output_tokens, reasoning_tokens, cached_input_tokens))

    def set_provider_metadata(self, provider_metadata: ProviderMetadata, *, tool_call_id: str | None = None) -> None:
        """Attach provider metadata (``{provider: {...}}``) to a part; a later call replaces it.

        With ``tool_call_id``: that tool call, while its arguments stream. Without:
        the text or reasoning part written just before (RuntimeError if the
        latest write was something else).
        """
        metadata = _check_object(provider_metadata, "provider_metadata")
        if not all(isinstance(value, dict) for value in metadata.values()):
            raise TypeError("provider_metadata maps each provider name to a dict")
        if tool_call_id is not None:
            _check_str(tool_call_id, "tool_call_id")
        self._merger.provider_metadata(ProviderMetadataChunk(metadata, tool_call_id))

    def add_document_source(self, id: str, title: str, media_type: str, filename: str | None = None) -> None:
        """Cite a document (a source without a URL), with its MIME type."""
        for name, value in (("id", id), ("title", title), ("media_type", media_type)):
            _check_str(value, name)
        if filename is not None:
            _check_str(filename, "filename")
        self._merger.chunk(DocumentSourceChunk(id, title, media_type, filename, self._parent_id))

    def add_warning(
        self, error: str, *, severity: Literal["warning", "info"] = "warning", code: str | None = None
    ) -> None:
        """Send an error that does not fail the run: a warning or a notice (``severity="info"``)."""
        _check_str(error, "error")
        if severity not in ("warning", "info"):
            raise ValueError(f"severity must be 'warning' or 'info', not {severity!r}")
        if code is not None:
            _check_str(code, "code")
        self._merger.chunk(WarningChunk(error, severity, code))

    def add_data_part(self, name: str, data: Any, *, id: str | None = None, transient: bool = False) -> None:
        """Send a named data part (``data-<name>`` in the UI message stream).

        A part with the ``id`` of one sent before replaces its data where the
        client can (``useChat``); a ``transient`` part is shown to the client
        (``onData``) but not kept in the message.
        """
        _check_str(name, "name")
        if not name:
            raise ValueError("name must not be empty")
        if id is not None:
            _check_str(id, "id")
        if not isinstance(transient, bool):
            raise TypeError(f"transient must be bool, not {type(transient).__name__}")
        chunk = DataPartChunk(name, data, id, transient, self._parent_id)
        self._merger.replacing(chunk, encoded_size(data, "add_data_part() data"))

    # -- state ---------------------------------------------------------------

    @property
    def state(self) -> Any:
        """The run state: a :class:`StateProxy` over it, or None while it is None."""
        store = self._core.state
        return None if store.root is None else StateProxy(store, [])

    @state.setter
    def state(self, value: Any) -> None:
        self._merger._writable("setting state")
        self._core.state.set([], value)

    def append_state_text(self, path: Sequence[str | int], text_delta: str) -> None:
        """Append text to the string at ``path`` of the state."""
        self._merger._writable("append_state_text()")
        self._core.state.append_text(path, text_delta)

    def flush(self) -> None:
        """Kept for compatibility: state operations are always queued in order as they are made."""

    # -- cancellation --------------------------------------------------------

    # Reading either property tells the run that the callback stops by itself once cancelled:
    # it then gets the run's ``cancel_window`` to return before it is cancelled.

    @property
    def is_cancelled(self) -> bool:
        """True once the consumer went away and the run is being cancelled."""
        core = self._core
        core.watches_cancellation = True
        return core.cancelled

    @property
    def cancelled_event(self) -> ReadOnlyCancellationSignal:
        """A signal to check (``is_set()``) or wait for (``await wait()``) the cancellation."""
        self._core.watches_cancellation = True
        return ReadOnlyCancellationSignal(self._core.cancellation)

    def cleanup(self) -> contextlib.AbstractContextManager[anyio.CancelScope]:
        """Shield cleanup from cancellation, for at most the run's ``grace_period``: ``with controller.cleanup(): ...``.

        The block gets ``grace_period`` from when it is entered under
        cancellation, or from when the run stops if it was entered before;
        then it is cancelled and left quietly (the scope's ``cancelled_caught``
        tells). While the run goes on, it is a plain shield.
        """
        return self._core.cleanup()


def _producer(
    core: RunCore,
    callback: Callable[[RunController], Awaitable[None]],
    host: anyio.abc.TaskGroup | None,
    *,
    shielded: bool,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """What a task runs to produce the run: ``core.produce`` of the callback with its controller.

    No coroutine of its own around ``core.produce``: every resumption of the callback would
    pass through it. ``host``: the task group the run's children join (None: the run opens
    one when it starts its first child). ``shielded`` for the structured forms:
    their producer is shielded from the caller's scopes; when one of them is cancelled, the
    body of the ``async with`` leaves, and ``__aexit__`` cancels the run through
    ``core.cancel()``, so the callback's ``finally`` always sees ``is_cancelled``.
    """
    return functools.partial(core.produce, functools.partial(callback, RunController(core)), host, shielded=shielded)


class _RunPhase(enum.Enum):
    """How far a run's stream is consumed, and in which form."""

    NEW = "new"
    DETACHED = "detached"  # async for: the producer runs in a task the run owns
    STRUCTURED = "structured"  # async with, or a consumer's open_stream: the consumer ends the run
    ENDED = "ended"


# Module constants: on Python 3.11 ``_RunPhase.X`` is a descriptor call, and ``__anext__`` runs per chunk.
_NEW, _DETACHED, _STRUCTURED, _ENDED = _RunPhase.NEW, _RunPhase.DETACHED, _RunPhase.STRUCTURED, _RunPhase.ENDED


class Run:
    """A run's chunk stream; consume it once, either way:

    - ``async with create_run(cb) as chunks: async for chunk in chunks: ...``
      (the run's task group lives in the ``async with``; leaving it cancels
      whatever is still running and waits for it), or
    - ``async for chunk in create_run(cb): ...`` (breaking out, ``aclose()``
      or dropping the iterator cancels the run and runs its cleanup).

    If the callback raises, the stream yields an error chunk and then raises
    that exception.
    """

    def __init__(self, callback: Callable[[RunController], Awaitable[None]], core: RunCore) -> None:
        self._callback = callback
        self._core = core
        self._phase = _NEW
        self._tg: anyio.abc.TaskGroup | None = None
        # Each chunk goes to the consumer as the merger gives it: no step of the run's own (below).
        self._passes_on = False
        self._end = core.stream_end

    @property
    def run_id(self) -> str:
        """A short random id of this run, the one its trace spans carry."""
        return self._core.run_id

    @property
    def state(self) -> Any:
        """A copy of the run's state as it is now (before the run starts: the initial state)."""
        return copy_json_tree(self._core.state.root, "state")

    # -- async with ----------------------------------------------------------

    async def __aenter__(self) -> Run:
        self._claim(_STRUCTURED)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(_producer(self._core, self._callback, self._tg, shielded=True))
        self._passes_on = self._core.outcome.builder is None
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        self._leave()
        self._phase = _ENDED
        self._passes_on = False
        # Exit without the body's exception so that it propagates as itself, not in a group.
        await self._tg.__aexit__(None, None, None)

    # -- async for -----------------------------------------------------------

    def __aiter__(self) -> Run:
        return self

    def _claim(self, phase: _RunPhase) -> None:
        if self._phase is not _NEW:
            raise RuntimeError("a run's stream can be consumed only once")
        self._phase = phase

    def __anext__(self) -> Awaitable[AssistantStreamChunk]:
        if self._passes_on:
            # The merger's own coroutine is the whole step: no frame of the run's in the reader's
            # every sleep and wake-up.
            return self._core.merger.get(self._end)
        return self._next()

    async def _next(self) -> AssistantStreamChunk:
        """A step that does more than take a chunk: it starts or ends the ``async for`` form,
        or records the chunk as delivered (nobody confirms delivery, and ``on_finish`` wants the message)."""
        if self._phase is _NEW:
            self._claim(_DETACHED)
            self._core.cancellation.event()
            self._core.done_event()
            # The producer must not hold the Run: dropping the iterator is what cancels it.
            _detached.spawn(_producer(self._core, self._callback, None, shielded=False))
        elif self._phase is _ENDED:
            raise StopAsyncIteration
        core = self._core
        try:
            chunk = await core.merger.get(self._end)
        except BaseException:  # the end, the run's error, or the consumer's cancellation
            self._abandon()
            raise
        if not core.confirms_delivery and core.outcome.builder is not None:
            core.outcome.delivered(chunk)  # taken is delivered
        return chunk

    def _abandon(self) -> None:
        """The ``async for`` form stopped in ``__anext__`` (cancelled, or it raised): cancel the run.

        Also where it ends (the run has ended then: nothing is left to cancel).
        """
        if self._phase is _DETACHED:
            self._leave()

    def _leave(self) -> None:
        """The consumer is done with the run, whichever way it stopped: what still runs is cancelled.

        Every way a consumer stops (leaving ``async with``, ``aclose()``, an
        abandoned ``async for``, a reader that went away) comes here, and so to
        ``RunCore.cancel()``, the one decision (a dropped run reaches it from ``__del__``).
        """
        if self._phase is _DETACHED:
            self._phase = _ENDED
        self._core.cancel()

    async def aclose(self) -> None:
        """Cancel the run if it is still running, and wait for its cleanup (in either form).

        It returns once the run has ended, however long shields in it last:
        ``controller.cleanup()`` is the shield that the run bounds.
        """
        if self._phase is _NEW:
            self._phase = _ENDED
            return
        self._leave()
        if not self._core.is_done:
            with anyio.CancelScope(shield=True):
                await self._core.done_event().wait()

    # -- delivery: a consumer that forwards the chunks (a response, a resumable producer) ------

    def open_stream(
        self, on_finish: OnFinish | None = None, *, confirmed: bool = True
    ) -> AsyncIterator[AssistantStreamChunk]:
        """The run's chunks for a consumer that says which it delivered and ends with :meth:`end`.

        ``confirmed``: a chunk is part of the run's message once the consumer
        calls :meth:`delivered`, and the outcome is reported by :meth:`end`
        (a response, a resumable producer); False: the run streams as in
        ``async for``. ``on_finish`` gets the run's outcome too.

        The producer runs in a task of its own started on the backend (as in
        ``async for``; an AnyIO task costs a response more than the rest of
        its setup), and the run opens a task group only if it starts a child.
        The chunks end only once the run has; a consumer that stops reading
        before closes them (``aclose()``, which waits for the run's end) or
        calls :meth:`end`.
        """
        if on_finish is not None:
            self._core.add_hook(on_finish, "response")
        if confirmed:
            self._claim(_STRUCTURED)
            self._core.confirms_delivery = self._passes_on = True
            _detached.spawn(_producer(self._core, self._callback, None, shielded=True))
        return self

    def delivered(self, chunk: AssistantStreamChunk) -> None:
        """``chunk``, taken from :meth:`open_stream`, reached the reader."""
        if self._core.confirms_delivery:
            self._core.outcome.delivered(chunk)

    def hang_up(self, why: str) -> None:
        """The reader went away (``why``: ``"disconnect"``, ``"send_timeout"``): the run is cancelled now."""
        _telemetry.add_event(self._core.span, why)
        self._leave()

    async def end(self, delivered: bool, failure: BaseException | None = None) -> BaseException | None:
        """Stop the run if it still runs, wait for its cleanup, and report its outcome once.

        ``delivered``: the stream's end reached the reader; ``failure``: what
        failed the delivery itself (a store). Returns the run's error if it was
        never raised to the consumer (so that the consumer can log it).
        """
        await self.aclose()
        if self._core.confirms_delivery:
            await self._core.end(delivered, failure)
        error = self._core.error
        return error if error is not None and not self._core.error_raised else None

    def __del__(self) -> None:
        core = self._core
        if self._phase is _DETACHED and not core.is_done:
            # Collected in any thread, at any point: the run is cancelled through its loop's queue (the
            # producer has started: it set the loop), also on the loop's own thread. Under asyncio.run,
            # when main() returns right after dropping the run, the cancellation then reaches each task
            # together with the shutdown's own, as one, and shielded cleanup is not cut short.
            # If the loop has ended, nothing is left to cancel.
            assert core.loop is not None
            core.loop.call_soon(core.cancel)


def create_run(
    callback: Callable[[RunController], Awaitable[None]],
    *,
    state: Any | None = None,
    on_finish: OnFinish | None = None,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    error_message: Callable[[BaseException], str] = default_error_message,
    cancel_window: float = DEFAULT_CANCEL_WINDOW,
) -> Run:
    """Describe a run of ``await callback(controller)``; nothing starts until it is consumed.

    ``state`` is the initial state (a JSON tree). ``on_finish`` is called once
    with the :class:`RunOutcome` (also after a disconnect). ``grace_period``
    bounds the run's own cleanup after cancellation, and each
    ``controller.cleanup()`` block. ``error_message`` turns an exception of
    the callback or of a tool call into the text the client sees.
    ``cancel_window``: when the consumer goes away, a callback that has read
    ``is_cancelled`` or ``cancelled_event`` has this many seconds to return on
    its own before it is cancelled (0: at once); any other callback, and every
    tool call and substream, is cancelled at once.
    """
    if not callable(callback):
        raise TypeError(f"callback must be an async function taking the controller, not {callback!r}")
    grace_period = positive_seconds(grace_period, "grace_period")
    cancel_window = seconds_or_zero(cancel_window, "cancel_window")
    return Run(callback, RunCore(state, on_finish, grace_period, error_message, cancel_window))
