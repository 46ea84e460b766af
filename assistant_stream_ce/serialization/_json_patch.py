"""State operations as RFC 6902 JSON Patch, against a mirror of the client's state.

The operations are applied by :func:`..state.apply_operation`, as everywhere
else; this module only says what each one did in JSON Patch terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from ..assistant_stream_chunk import ObjectStreamOperation
from ..state import apply_operation, checked_operation

__all__ = ["PatchOperation", "StatePatcher", "json_pointer"]


class PatchOperation(msgspec.Struct):
    op: Literal["add", "replace"]
    path: str
    value: Any


def json_pointer(path: Sequence[str]) -> str:
    """An RFC 6901 pointer: ``~`` is written ``~0`` and ``/`` is written ``~1``."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)


class StatePatcher:
    """Keeps the state as the client has it and says how each batch of operations changes it."""

    def __init__(self, state: Any) -> None:
        self.state: Any = {} if state is None else state
        self._synced = False

    def apply(self, operations: Sequence[ObjectStreamOperation]) -> list[PatchOperation] | None:
        """Apply a batch; ``None`` when the client needs the whole state instead of a patch.

        That is the first batch (the client may not have the state the run
        started from) and any batch that replaces the whole state.
        """
        snapshot = not self._synced
        patch: list[PatchOperation] = []
        for operation in operations:
            checked = checked_operation(operation["type"], operation["path"], operation.get("value"))
            self.state, value, replaced = apply_operation(self.state, checked)
            path = checked["path"]
            if not path:
                snapshot = True
            else:
                patch.append(PatchOperation("replace" if replaced else "add", json_pointer(path), value))
        self._synced = True
        return None if snapshot else patch
