"""State operations as RFC 6902 JSON Patch, against a mirror of the client's state."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from ..assistant_stream_chunk import ObjectStreamOperation

__all__ = ["PatchOperation", "StatePatcher", "json_pointer"]


class PatchOperation(msgspec.Struct):
    op: Literal["add", "replace"]
    path: str
    value: Any


def json_pointer(path: Sequence[str]) -> str:
    """An RFC 6901 pointer: ``~`` is written ``~0`` and ``/`` is written ``~1``."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)


def _container(root: Any, path: Sequence[str]) -> Any:
    node = root
    for key in path:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


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
            path = operation["path"]
            if operation["type"] == "set":
                value = copy.deepcopy(operation["value"])
            else:
                current = _container(self.state, path)
                if not isinstance(current, str):
                    raise TypeError(f"append-text at {list(path)}: it holds {type(current).__name__}, not str")
                value = current + operation["value"]
            if not path:
                self.state, snapshot = value, True
                continue
            parent, key = _container(self.state, path[:-1]), path[-1]
            if isinstance(parent, dict):
                exists = key in parent
                parent[key] = value
            elif isinstance(parent, list) and key.isdigit() and int(key) <= len(parent):
                exists = int(key) < len(parent)
                if exists:
                    parent[int(key)] = value
                else:
                    parent.append(value)
            else:
                raise TypeError(f"no place for {key!r} at {list(path)} in {type(parent).__name__}")
            patch.append(PatchOperation("replace" if exists else "add", json_pointer(path), value))
        self._synced = True
        return None if snapshot else patch
