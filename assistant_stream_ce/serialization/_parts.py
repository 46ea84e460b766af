"""The open text or reasoning part of a message, for the SSE writers that frame parts.

The UI message stream, AG-UI and assistant-transport formats send text and
reasoning as parts: a start, deltas, an end. Consecutive deltas of one kind
and parent fill one part; a delta of the other kind or of another parent, a
reasoning part start, or any other part ends the open one first.
:class:`TextParts` keeps that rule; each writer says how a part starts and
ends on its wire, and what event carries a piece of its deltas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from ._frames import SSEFrames

__all__ = ["OpenPart", "PartId", "TextKind", "TextParts"]

TextKind = Literal["text", "reasoning"]
PartId = TypeVar("PartId")
"""How a writer addresses a part: an id (UI message stream, AG-UI) or a path (assistant transport)."""


class OpenPart(NamedTuple, Generic[PartId]):
    """The part that deltas of its kind and parent go to."""

    kind: TextKind
    parent_id: str | None
    id: PartId
    event: Callable[[str], Any]
    """The event carrying a piece of a delta."""


class TextParts(Generic[PartId]):
    """Which text or reasoning part is open, and the frames that open, fill and end one.

    ``start(kind, parent_id, summary)`` writes a new part's opening frames to
    ``out`` and returns its id; ``event(kind, part_id)`` is the function from a
    piece of a delta to the event carrying it (made once per part, as deltas
    are many); ``end(kind, part_id)`` writes the part's closing frames.
    """

    __slots__ = ("_end", "_event", "_out", "_start", "open")

    def __init__(
        self,
        out: SSEFrames,
        start: Callable[[TextKind, str | None, str | None], PartId],
        event: Callable[[TextKind, PartId], Callable[[str], Any]],
        end: Callable[[TextKind, PartId], None],
    ) -> None:
        self._out = out
        self._start = start
        self._event = event
        self._end = end
        self.open: OpenPart[PartId] | None = None

    def delta(self, kind: TextKind, delta: str, parent_id: str | None) -> None:
        """Add ``delta`` to the open part if it is of ``kind`` and ``parent_id``, else to a new one."""
        part = self.open
        if part is None or part.kind != kind or part.parent_id != parent_id:
            part = self.start(kind, parent_id)
        self._out.add_delta(delta, part.event)

    def start(self, kind: TextKind, parent_id: str | None, summary: str | None = None) -> OpenPart[PartId]:
        """End the open part and start a new one: the next deltas of its kind and parent fill it."""
        self.close()
        part_id = self._start(kind, parent_id, summary)
        self.open = OpenPart(kind, parent_id, part_id, self._event(kind, part_id))
        return self.open

    def close(self) -> None:
        """End the open part, if there is one."""
        part = self.open
        if part is not None:
            self.open = None
            self._end(part.kind, part.id)
