"""The open text or reasoning part of a message, for the SSE writers that frame parts.

The UI message stream, AG-UI and assistant-transport formats send text and
reasoning as parts: a start, deltas, an end. Consecutive deltas of one kind
and parent fill one part; a delta of the other kind or of another parent, a
reasoning part start, or any other part ends the open one first.
:class:`TextParts` keeps that rule; each writer says how a part starts and
ends on its wire, and what a delta's event is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, Literal, TypeVar

from ._frames import SSEFrames

__all__ = ["PartId", "TextKind", "TextParts"]

TextKind = Literal["text", "reasoning"]
PartId = TypeVar("PartId")
"""How a writer addresses a part: an id (UI message stream, AG-UI) or a path (assistant transport)."""


class TextParts(Generic[PartId]):
    """Which text or reasoning part is open, and the frames that open, fill and end one.

    ``start(kind, parent_id, summary)`` writes a new part's opening frames and
    returns its id; ``end(kind, part_id)`` writes its closing frames;
    ``deltas[kind](part_id, piece)`` is the event carrying a piece of a delta.
    All of them write to ``out``, the writer's frames.
    """

    __slots__ = ("_deltas", "_end", "_out", "_start", "open")

    def __init__(
        self,
        out: SSEFrames,
        start: Callable[[TextKind, str | None, str | None], PartId],
        end: Callable[[TextKind, PartId], None],
        deltas: Mapping[TextKind, Callable[[PartId, str], Any]],
    ) -> None:
        self._out = out
        self._start = start
        self._end = end
        self._deltas = deltas
        self.open: tuple[TextKind, str | None, PartId] | None = None
        """The open part: its kind, parent id and id."""

    def delta(self, kind: TextKind, delta: str, parent_id: str | None) -> None:
        """Add ``delta`` to the open part if it is of ``kind`` and ``parent_id``, else to a new one."""
        open_part = self.open
        if open_part is not None and open_part[0] == kind and open_part[1] == parent_id:
            part_id = open_part[2]
        else:
            part_id = self.start(kind, parent_id)
        event = self._deltas[kind]
        self._out.add_delta(delta, lambda piece: event(part_id, piece))

    def start(self, kind: TextKind, parent_id: str | None, summary: str | None = None) -> PartId:
        """End the open part and start a new one (its id): the next deltas of its kind and parent fill it."""
        self.close()
        part_id = self._start(kind, parent_id, summary)
        self.open = (kind, parent_id, part_id)
        return part_id

    def close(self) -> None:
        """End the open part, if there is one."""
        if self.open is not None:
            kind, _, part_id = self.open
            self.open = None
            self._end(kind, part_id)
