"""``StateManager``: a state tree with its operations, outside any run.

For code that drives a state tree by hand, as assistant-stream 0.0.36's
class of the same name allowed (its LangGraph helpers take ``manager.state``).
A run has its own (``controller.state``); this is not needed there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .assistant_stream_chunk import ObjectStreamOperation, UpdateStateChunk
from .state import StateProxy, StateStore

__all__ = ["StateManager"]


def _always_writable(what: str) -> None:
    """A manager's tree, unlike a run's, never closes."""


class StateManager:
    """A JSON state tree whose writes become operations, sent as one ``UpdateStateChunk`` per :meth:`flush`.

    Writes go through :attr:`state` (a :class:`StateProxy`), :meth:`append_text`
    or :meth:`add_operations`; each changes :attr:`state_data` at once. The
    operations wait until :meth:`flush` hands them to ``put_chunk_callback``
    (0.0.36 also flushed them on the event loop's next turn; here, call
    :meth:`flush`).
    """

    def __init__(self, put_chunk_callback: Callable[[UpdateStateChunk], object], state_data: Any = None) -> None:
        self._put_chunk = put_chunk_callback
        self._pending: list[ObjectStreamOperation] = []
        self._store = StateStore(state_data, self._pending.append, _always_writable)

    @property
    def state(self) -> Any:
        """A proxy over the whole tree, or None while the tree is None."""
        return None if self._store.root is None else StateProxy(self._store, [])

    @property
    def state_data(self) -> Any:
        """The tree itself, as it is now."""
        return self._store.root

    def add_operations(self, operations: Sequence[ObjectStreamOperation]) -> None:
        """Apply ``set`` / ``append-text`` operations (as the wire carries them) to the tree."""
        self._store.apply(operations)

    def append_text(self, path: Sequence[str | int], value: str) -> None:
        """Append ``value`` to the string at ``path``."""
        self._store.append_text(path, value)

    def get_value_at_path(self, path: Sequence[str]) -> Any:
        """The value at ``path``; a ``KeyError`` (:class:`StateKeyError`) if there is none."""
        return self._store.get(path)

    def flush(self) -> None:
        """Send the operations made since the last flush, as one chunk (nothing if there are none)."""
        if self._pending:
            operations = self._pending.copy()
            self._pending.clear()
            self._put_chunk(UpdateStateChunk(operations=operations))
