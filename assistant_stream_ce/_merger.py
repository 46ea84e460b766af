"""The fan-in merger: the one writer of a run's output.

Everything a run emits (controller calls, substreams, tool tasks) goes through
here, in order. Writes are synchronous and never block; while the consumer
lags, consecutive deltas of the same part and consecutive state operations
coalesce, so the buffer grows with the payload not yet sent, never with the
number of calls. Async producers call :meth:`Merger.wait_for_room` between
writes, which is where backpressure comes from.

It also keeps the per-tool-call invariants: begin, argument deltas,
args-finished, then at most one result, or instead an approval request
(after which the call has nothing more in this run); nothing for a call after
its result; one begin per id. A call continued from an earlier run (its
approval decision) counts as begun, with its arguments finished.
"""

from __future__ import annotations

import enum
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from threading import get_ident
from typing import TYPE_CHECKING, NoReturn, TypeVar

import anyio
import anyio.lowlevel

from . import _detached
from .assistant_stream_chunk import (
    AssistantStreamChunk,
    DataPartChunk,
    ObjectStreamOperation,
    PreliminaryToolResultChunk,
    ProviderMetadataChunk,
    ReasoningDeltaChunk,
    TextDeltaChunk,
    ToolApprovalRequestChunk,
    ToolApprovalResponseChunk,
    ToolCallArgsFinishChunk,
    ToolCallBeginChunk,
    ToolCallDeltaChunk,
    ToolResultChunk,
    UpdateStateChunk,
)

if TYPE_CHECKING:
    from ._detached import EventLoop, Native, Parking

_T = TypeVar("_T")

#: What one buffered chunk counts for, beside the text it carries.
ENTRY_COST = 64
#: Async producers wait while the unsent output costs this much or more.
HIGH_WATER = 64 * 1024
#: After a look-ahead that found nothing, the reader sleeps this many times without one.
LOOK_AHEAD_BACKOFF = 8
#: Unsent text shorter than this takes the next delta by concatenation (cheaper than a run's list
#: and join); longer text keeps its deltas as pieces, so that a long run costs linear time.
CONCAT_BELOW = 256


class _TextRun:
    """Unsent text or reasoning deltas of one part, joined when taken."""

    __slots__ = ("cost", "parent_id", "pieces", "reasoning")

    def __init__(self, reasoning: bool, parent_id: str | None, delta: str) -> None:
        self.reasoning = reasoning
        self.parent_id = parent_id
        self.pieces = [delta]
        self.cost = ENTRY_COST + len(delta)

    def build(self) -> AssistantStreamChunk:
        text = "".join(self.pieces)
        if self.reasoning:
            return ReasoningDeltaChunk(reasoning_delta=text, parent_id=self.parent_id)
        return TextDeltaChunk(text_delta=text, parent_id=self.parent_id)


class _ArgsRun:
    """Unsent argument deltas of one tool call."""

    __slots__ = ("cost", "pieces", "tool_call_id")

    def __init__(self, tool_call_id: str, delta: str) -> None:
        self.tool_call_id = tool_call_id
        self.pieces = [delta]
        self.cost = ENTRY_COST + len(delta)

    def build(self) -> AssistantStreamChunk:
        return ToolCallDeltaChunk(tool_call_id=self.tool_call_id, args_text_delta="".join(self.pieces))


class _StateRun:
    """Unsent state operations; runs of text appended to one path fold together."""

    __slots__ = ("cost", "operations")

    def __init__(self) -> None:
        self.operations: list[ObjectStreamOperation] = []
        self.cost = ENTRY_COST

    def add(self, op: ObjectStreamOperation) -> int:
        ops = self.operations
        if ops and op["type"] == "append-text" and ops[-1]["path"] == op["path"]:
            ops[-1]["value"] += op["value"]  # set+append or append+append on one path
        elif ops and op["type"] == "set" and ops[-1]["path"] == op["path"]:
            ops[-1] = op
        else:
            ops.append(op)
        added = ENTRY_COST // 4 + (len(op["value"]) if op["type"] == "append-text" else 0)
        self.cost += added
        return added

    def build(self) -> AssistantStreamChunk:
        return UpdateStateChunk(operations=self.operations)


class _Plain:
    """A chunk that does not coalesce, with what it counts for."""

    __slots__ = ("chunk", "cost")

    def __init__(self, chunk: AssistantStreamChunk, cost: int) -> None:
        self.chunk = chunk
        self.cost = cost

    def build(self) -> AssistantStreamChunk:
        return self.chunk


_Run = _TextRun | _ArgsRun | _StateRun | _Plain
# A bare str is the commonest entry: one delta of unparented text, taken as it is (no object for it).
_Entry = str | _Run
_TEXT_ENTRIES = (str, _TextRun)


def _supersedes(chunk: PreliminaryToolResultChunk | DataPartChunk, before: AssistantStreamChunk) -> bool:
    """Whether ``chunk`` makes the unsent ``before`` pointless to send."""
    if isinstance(chunk, PreliminaryToolResultChunk):
        return type(before) is PreliminaryToolResultChunk and before.tool_call_id == chunk.tool_call_id
    return (
        isinstance(before, DataPartChunk)
        and chunk.id is not None
        and not chunk.transient
        and not before.transient
        and (before.name, before.id, before.parent_id) == (chunk.name, chunk.id, chunk.parent_id)
    )


class CallPhase(enum.IntEnum):
    """Where a tool call is in its life on the wire."""

    ARGS = 0
    ARGS_FINISHED = 1
    DONE = 2
    AWAITING_APPROVAL = 3  # settled for this run: the decision comes with the next request


class Mode(enum.Enum):
    OPEN = "open"  # writes go out
    SEALED = "sealed"  # the run is failing or the consumer is gone: writes are dropped
    CLOSED = "closed"  # the run has ended: writes are an error


# On Python 3.11 every ``Mode.OPEN`` costs a descriptor call (~0.25 us): the per-write paths use these.
_OPEN, _CLOSED = Mode.OPEN, Mode.CLOSED
_ARGS = CallPhase.ARGS


async def _no_more() -> NoReturn:
    raise StopAsyncIteration


class Merger:
    """Ordered, coalescing output buffer of one run, read by one consumer."""

    def __init__(self) -> None:
        self._queue: deque[_Entry] = deque()
        self._open_args: dict[str, _ArgsRun] = {}
        self.calls: dict[str, CallPhase] = {}
        self.cost = 0
        self.mode = Mode.OPEN
        self._reader: Parking | None = None  # while the reader sleeps: where
        self._room: anyio.Event | None = None
        self._native: Native | None = None  # the reading backend's primitives, once the reader has read
        self._parking: Parking  # made with ``_native``
        self._event_class: Callable[[], anyio.Event] | None = None
        self._skip_look_ahead = 0
        self._loop: EventLoop | None = None
        self._thread = get_ident()
        self._text_last = False  # the latest entry written is text or reasoning

    def bind(self, loop: EventLoop) -> None:
        """Writes from any other thread than ``loop``'s run there (the writer waits for them)."""
        self._loop = loop
        self._thread = loop.thread

    def _hop(self, write: Callable[[], _T]) -> _T:
        """A write from a worker thread: made on the run's loop thread, so that the reader wakes up."""
        if self._loop is None:
            raise RuntimeError("a controller can only be used while its run is running")
        return self._loop.call(write)

    def _new_event(self) -> anyio.Event:
        """A new event of the running backend's class: ``anyio.Event()`` looks the backend up on every call."""
        if self._event_class is None:
            event = anyio.Event()
            self._event_class = type(event)
            return event
        return self._event_class()

    # -- writing -----------------------------------------------------------

    def _writable(self, what: str) -> bool:
        if self.mode is _OPEN:
            return True
        if self.mode is _CLOSED:
            raise RuntimeError(f"{what}: the run has ended; a controller can only be used while its run is running")
        return False

    def _push(self, entry: _Run) -> None:
        self._queue.append(entry)
        self._text_last = type(entry) is _TextRun
        self.cost += entry.cost
        if self._reader is not None:
            self._reader.wake()
            self._reader = None

    def text(self, delta: str, parent_id: str | None, *, reasoning: bool = False) -> None:
        # The hot path checks only this.
        if type(delta) is not str or self.mode is not _OPEN or not delta or get_ident() != self._thread:
            if get_ident() != self._thread:
                return self._hop(functools.partial(self.text, delta, parent_id, reasoning=reasoning))
            what = "append_reasoning()" if reasoning else "append_text()"
            if not isinstance(delta, str):
                raise TypeError(f"{what} takes str, not {type(delta).__name__}")
            if not self._writable(what) or not delta:  # an empty delta carries nothing: it costs nothing
                return
        queue = self._queue
        plain = parent_id is None and not reasoning
        if queue and type(tail := queue[-1]) in _TEXT_ENTRIES:
            # Text not taken yet: this delta may join it (the reader, if asleep, was woken by its first).
            if type(tail) is str and plain:
                if len(tail) < CONCAT_BELOW:
                    queue[-1] = tail + delta
                    self.cost += len(delta)
                    return
                queue[-1] = tail = _TextRun(False, None, tail)
            if type(tail) is _TextRun and tail.reasoning is reasoning and tail.parent_id == parent_id:
                tail.pieces.append(delta)
                size = len(delta)
                tail.cost += size
                self.cost += size
                return
        # What _push() does, inline: this runs once a delta.
        queue.append(delta if plain else _TextRun(reasoning, parent_id, delta))
        self._text_last = True
        self.cost += ENTRY_COST + len(delta)
        if self._reader is not None:
            self._reader.wake()
            self._reader = None

    def state(self, op: ObjectStreamOperation) -> None:
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.state, op))
        if not self._writable("a state write"):
            return
        tail = self._queue[-1] if self._queue else None
        if type(tail) is not _StateRun:
            tail = _StateRun()
            self._push(tail)
        self.cost += tail.add(op)

    def chunk(self, chunk: AssistantStreamChunk, cost: int = ENTRY_COST) -> None:
        """Emit a chunk that does not coalesce (data, sources, errors, steps, ...)."""
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.chunk, chunk, cost))
        if self._writable(f"emitting {chunk.type!r}"):
            self._push(_Plain(chunk, cost))

    def replacing(self, chunk: PreliminaryToolResultChunk | DataPartChunk, cost: int) -> None:
        """A chunk that replaces an unsent one of its kind for the same call or part at the tail.

        A preliminary result supersedes the one before it, and so does a data part with the same
        name and id; a client would show only the latest. Other chunks go out as they are.
        """
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.replacing, chunk, cost))
        if not self._writable(f"emitting {chunk.type!r}"):
            return
        if type(chunk) is PreliminaryToolResultChunk:
            if self._phase(chunk.tool_call_id) is CallPhase.DONE:
                raise RuntimeError(f"tool call {chunk.tool_call_id!r} already has a result")
            self.finish_args(chunk.tool_call_id)
        tail = self._queue[-1] if self._queue else None
        if type(tail) is _Plain and _supersedes(chunk, tail.chunk):
            self.cost += cost - tail.cost
            tail.chunk, tail.cost = chunk, cost
        else:
            self._push(_Plain(chunk, cost))

    def provider_metadata(self, chunk: ProviderMetadataChunk) -> None:
        """Provider metadata of a tool call still streaming its arguments, or of the text just written."""
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.provider_metadata, chunk))
        if not self._writable("set_provider_metadata()"):
            return
        if chunk.tool_call_id is not None:
            if self._phase(chunk.tool_call_id) is not _ARGS:
                raise RuntimeError(f"tool call {chunk.tool_call_id!r}: its arguments are already finished")
            self._push(_Plain(chunk, ENTRY_COST))
        elif self._text_last:
            self._push(_Plain(chunk, ENTRY_COST))
            self._text_last = True  # more metadata for the same part may follow
        else:
            raise RuntimeError("set_provider_metadata(): the latest write was not text or reasoning")

    def begin_tool(self, tool_call_id: str, tool_name: str, parent_id: str | None) -> None:
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.begin_tool, tool_call_id, tool_name, parent_id))
        if not isinstance(tool_call_id, str) or not tool_call_id:
            raise TypeError(f"tool_call_id must be a non-empty str, not {tool_call_id!r}")
        if not isinstance(tool_name, str) or not tool_name:
            raise TypeError(f"tool_name must be a non-empty str, not {tool_name!r}")
        if tool_call_id in self.calls:
            raise ValueError(
                f"duplicate tool_call_id {tool_call_id!r}: a tool call with this id already exists in this run"
            )
        if self._writable("add_tool_call()"):
            self.calls[tool_call_id] = CallPhase.ARGS
            begin = ToolCallBeginChunk(tool_call_id=tool_call_id, tool_name=tool_name, parent_id=parent_id)
            self._push(_Plain(begin, ENTRY_COST))

    def continue_call(self, chunk: ToolApprovalResponseChunk) -> None:
        """A call of an earlier run continues here with its approval decision (it counts as begun)."""
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.continue_call, chunk))
        if chunk.tool_call_id in self.calls:
            raise ValueError(
                f"duplicate tool_call_id {chunk.tool_call_id!r}: a tool call with this id already exists in this run"
            )
        if self._writable("continuing a tool call"):
            self.calls[chunk.tool_call_id] = CallPhase.ARGS_FINISHED
            self._push(_Plain(chunk, ENTRY_COST + len(chunk.args_text)))

    def request_approval(self, chunk: ToolApprovalRequestChunk) -> None:
        """The call waits for a person's decision: it has nothing more in this run."""
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.request_approval, chunk))
        if not self._writable("requesting approval"):
            return
        if self._phase(chunk.tool_call_id) is not CallPhase.ARGS_FINISHED:
            raise RuntimeError(f"tool call {chunk.tool_call_id!r}: approval needs finished arguments and no result")
        self.calls[chunk.tool_call_id] = CallPhase.AWAITING_APPROVAL
        self._push(_Plain(chunk, ENTRY_COST))

    def _phase(self, tool_call_id: str) -> CallPhase:
        try:
            return self.calls[tool_call_id]
        except KeyError:
            raise ValueError(f"unknown tool_call_id {tool_call_id!r}: begin the tool call first") from None

    def args_delta(self, tool_call_id: str, delta: str) -> None:
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.args_delta, tool_call_id, delta))
        if not isinstance(delta, str):
            raise TypeError(f"argument text must be str, not {type(delta).__name__}")
        if not self._writable("append_args_text()"):
            return
        if self._phase(tool_call_id) is not _ARGS:
            raise RuntimeError(f"tool call {tool_call_id!r}: its arguments are already finished")
        if not delta:
            return
        run = self._open_args.get(tool_call_id)
        if run is not None:
            run.pieces.append(delta)
            run.cost += len(delta)
            self.cost += len(delta)
        else:
            run = self._open_args[tool_call_id] = _ArgsRun(tool_call_id, delta)
            self._push(run)

    def finish_args(self, tool_call_id: str) -> None:
        """Close the call's arguments; a no-op when they are closed already."""
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.finish_args, tool_call_id))
        if self._writable("finishing tool arguments") and self._phase(tool_call_id) is CallPhase.ARGS:
            self.calls[tool_call_id] = CallPhase.ARGS_FINISHED
            self._open_args.pop(tool_call_id, None)
            self._push(_Plain(ToolCallArgsFinishChunk(tool_call_id=tool_call_id), ENTRY_COST))

    def result(self, chunk: ToolResultChunk, cost: int) -> None:
        if get_ident() != self._thread:
            return self._hop(functools.partial(self.result, chunk, cost))
        if not self._writable("set_response()"):
            return
        phase = self._phase(chunk.tool_call_id)
        if phase is CallPhase.DONE:
            raise RuntimeError(f"tool call {chunk.tool_call_id!r} already has a result")
        if phase is CallPhase.AWAITING_APPROVAL:
            raise RuntimeError(f"tool call {chunk.tool_call_id!r} waits for approval: it has no result in this run")
        self.finish_args(chunk.tool_call_id)
        self.calls[chunk.tool_call_id] = CallPhase.DONE
        self._push(_Plain(chunk, cost))

    # -- modes -------------------------------------------------------------

    def seal(self) -> None:
        """Drop every later write, keeping what is buffered (the run is failing)."""
        if self.mode is Mode.OPEN:
            self.mode = Mode.SEALED
        self._wake_all()

    def discard(self) -> None:
        """The consumer is gone: drop what is buffered and every later write."""
        self.seal()
        self._queue.clear()
        self._open_args.clear()
        self.cost = 0

    def close(self) -> None:
        """The run has ended: the reader drains what is left, writers get an error."""
        self.mode = Mode.CLOSED
        self._wake_all()

    def _wake_all(self) -> None:
        if self._reader is not None:
            self._reader.wake()
        if self._room is not None:
            self._room.set()
        self._reader = self._room = None

    async def drained(self) -> None:
        """Wait until the consumer has taken everything buffered."""
        while self._queue:
            if self._room is None:
                self._room = self._new_event()
            await self._room.wait()

    # -- reading -----------------------------------------------------------

    async def wait_for_room(self) -> None:
        """Wait while the consumer is behind (for async producers).

        Always a checkpoint, so that a producer whose source never waits still
        lets other tasks run and still sees its cancellation.
        """
        await anyio.lowlevel.checkpoint()
        while self.cost >= HIGH_WATER and self.mode is _OPEN:
            if self._room is None:
                self._room = self._new_event()
            await self._room.wait()

    async def get(self, end: Callable[[], Awaitable[NoReturn]] = _no_more) -> AssistantStreamChunk:
        """Take the next chunk in order; once the run has ended and all is read, ``await end()``,
        which raises (StopAsyncIteration, or what the run's reader must see instead).

        Notices the reader's cancellation even when output is ready: a run that
        always has output must not keep a cancelled consumer reading forever.
        When it is not ready, the wait for it is that checkpoint.
        """
        queue = self._queue
        native = self._native
        if native is None:
            native = self._native = _detached.native()
            self._parking = native.parking()
        if queue:
            await native.checkpoint_if_cancelled()
        elif native.look_ahead and self.mode is _OPEN:
            # Look ahead: let ready tasks run once before sleeping. A producer that yields
            # between writes has usually written again by then, and no wake-up is needed.
            # A paced producer (a model's tokens) has not, so after a look-ahead that found
            # nothing the next few waits go straight to sleep.
            if self._skip_look_ahead:
                self._skip_look_ahead -= 1
            else:
                await native.checkpoint()
                if not queue:
                    self._skip_look_ahead = LOOK_AHEAD_BACKOFF
        while not queue:
            if self.mode is not _OPEN:
                await native.checkpoint_if_cancelled()
                await end()
            self._reader = self._parking
            await self._parking.wait()
        entry = queue.popleft()
        chunk: AssistantStreamChunk
        if isinstance(entry, str):
            self.cost -= ENTRY_COST + len(entry)
            chunk = TextDeltaChunk(text_delta=entry)
        else:
            self.cost -= entry.cost
            if type(entry) is _ArgsRun and self._open_args.get(entry.tool_call_id) is entry:
                del self._open_args[entry.tool_call_id]
            chunk = entry.build()
        if self._room is not None and (self.cost < HIGH_WATER // 2 or not queue):
            self._room.set()
            self._room = None
        return chunk

    def open_calls(self) -> list[str]:
        """Ids of tool calls whose arguments were never finished."""
        return [tool_call_id for tool_call_id, phase in self.calls.items() if phase is CallPhase.ARGS]

    def __len__(self) -> int:
        return len(self._queue)

    def __repr__(self) -> str:
        return f"<Merger {self.mode.value} entries={len(self._queue)} cost={self.cost}>"
