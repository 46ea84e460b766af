"""Run state: a JSON tree kept on the server and mirrored on the client.

Writes through :class:`StateProxy` change the local tree at once and become
``set`` / ``append-text`` operations, which the run emits as ``update-state``
chunks. Applying those operations to the initial state on the client gives the
server's state; an ``append-text`` is only ever emitted for a path that holds a
string, because the clients reject it anywhere else.

Every reader of operations (the store behind a run's or a ``StateManager``'s
state, :func:`apply_operations`, the message a run builds, the AG-UI
encoder's JSON Patches) applies them through :func:`apply_operation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._json import copy_json_tree
from .assistant_stream_chunk import ObjectStreamOperation

__all__ = ["StateKeyError", "StateOperation", "StateProxy", "apply_operations"]

StateOperation = ObjectStreamOperation
"""One state operation (``set`` or ``append-text``), under assistant-stream 0.0.36's name."""

_PRIMITIVES = (str, int, float, bool, type(None))


class StateKeyError(KeyError):
    """A state path that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0])


def _child(container: Any, key: str, path: Sequence[str]) -> Any:
    if isinstance(container, dict):
        if key in container:
            return container[key]
    elif isinstance(container, list) and key.isdigit() and int(key) < len(container):
        return container[int(key)]
    raise StateKeyError(f"state has no {key!r} at path {list(path)}")


def _item(container: Any, key: str) -> Any:
    """The item at ``key`` (a checked path segment) of a dict or list, or None if there is none (yet)."""
    if isinstance(container, list):
        index = int(key)
        return container[index] if index < len(container) else None
    return container.get(key)


def _lookup(root: Any, path: Sequence[str]) -> Any:
    value = root
    for depth, key in enumerate(path):
        value = _child(value, key, path[: depth + 1])
    return value


def _put(parent: Any, path: Sequence[str], value: Any) -> bool:
    """Store ``value`` at the last key of ``path`` in ``parent`` (its container); True if it replaced an item.

    A dict takes any key; a list takes an index up to its length, which appends.
    """
    key = path[-1]
    if isinstance(parent, dict):
        replaced = key in parent
        parent[key] = value
        return replaced
    if isinstance(parent, list) and key.isdigit() and int(key) <= len(parent):
        if int(key) == len(parent):
            parent.append(value)
            return False
        parent[int(key)] = value
        return True
    raise StateKeyError(
        f"cannot set {key!r} at path {list(path)}: the parent is "
        f"{type(parent).__name__}" + (f" of length {len(parent)}" if isinstance(parent, list) else "")
    )


def checked_operation(kind: str, path: Sequence[str | int], value: Any) -> ObjectStreamOperation:
    """An operation ready for :func:`apply_operation`: a known type, str keys, and a private copy of a value to set.

    Raises before anything changes: ``ValueError`` for an unknown type,
    ``TypeError`` for a value that is not JSON or text to append that is not a str.
    """
    keys = [str(key) for key in path]
    if kind == "set":
        return {"type": "set", "path": keys, "value": copy_json_tree(value, "state value", tuple(keys))}
    if kind == "append-text":
        if not isinstance(value, str):
            raise TypeError(f"can only append str to state text, not {type(value).__name__}")
        return {"type": "append-text", "path": keys, "value": value}
    raise ValueError(f"unknown state operation type {kind!r}")


def apply_operation(root: Any, operation: ObjectStreamOperation) -> tuple[Any, Any, bool]:
    """Apply one operation from :func:`checked_operation` to ``root`` itself: the one reader of state operations.

    Returns the root afterwards (a new one when the path is empty), what the
    path holds now, and whether it held a value before (a JSON Patch
    ``replace`` rather than an ``add``). A missing key or index on the way is
    a :class:`StateKeyError`, and so is a key that its parent cannot take;
    ``append-text`` to anything but a string is a ``TypeError`` (the clients
    throw on both). Nothing changes when it raises.
    """
    path = operation["path"]
    value = operation["value"]
    if operation["type"] == "append-text":
        current = _lookup(root, path)
        if not isinstance(current, str):
            raise TypeError(f"cannot append text at path {list(path)}: it holds {type(current).__name__}, not str")
        value = current + value
    if not path:
        return value, value, True
    return root, value, _put(_lookup(root, path[:-1]), path, value)


def apply_operations(state: Any, operations: Sequence[ObjectStreamOperation]) -> Any:
    """Apply wire operations to a copy of ``state`` and return the new state.

    This is what a client does with ``update-state`` chunks.
    """
    return fold_operations(copy_json_tree(state, "state"), operations)


def fold_operations(root: Any, operations: Sequence[ObjectStreamOperation]) -> Any:
    """Apply wire operations to ``root`` itself and return the new root (a ``set`` of ``[]`` replaces it).

    For a tree that only the caller holds: an update then costs what it changes,
    not a copy of the whole state. The values are copied, as a chunk may be read twice.
    """
    for op in operations:
        root = apply_operation(root, checked_operation(op["type"], op["path"], op.get("value")))[0]
    return root


class StateStore:
    """The authoritative tree; every change is reported to ``emit`` as one operation.

    ``check(what)`` runs before a write changes anything; it raises once the
    run has ended, so a refused write leaves the tree as it was.
    """

    def __init__(
        self, initial: Any, emit: Callable[[ObjectStreamOperation], None], check: Callable[[str], object]
    ) -> None:
        self.root = copy_json_tree(initial, "initial state")
        self._emit = emit
        self._check = check

    def get(self, path: Sequence[str]) -> Any:
        return _lookup(self.root, path)

    def set(self, path: Sequence[str | int], value: Any) -> None:
        self._write("set", path, value)

    def append_text(self, path: Sequence[str | int], delta: str) -> None:
        self._write("append-text", path, delta)

    def extend_text(self, container: Any, path: list[str], value: str, start: int) -> None:
        """Store ``value``, which extends the string at ``path`` from ``start`` on, in ``container`` (its parent).

        The same write as ``append_text(path, value[start:])`` without walking the path again:
        ``state[...][key] += text`` already looked it up.
        """
        self._check("a state write")
        _put(container, path, value)
        if start < len(value):
            self._emit({"type": "append-text", "path": path, "value": value[start:]})

    def apply(self, operations: Sequence[ObjectStreamOperation]) -> None:
        """Apply operations that arrived as an ``update-state`` chunk from a substream."""
        for op in operations:
            self._write(op["type"], op["path"], op.get("value"))

    def _write(self, kind: str, path: Sequence[str | int], value: Any) -> None:
        """Apply one operation and report it; a ``set`` of a proxy stores the proxy's value."""
        if kind == "set" and isinstance(value, StateProxy):
            if value._store is self and value._path == [str(key) for key in path]:
                return  # `proxy[k] += [...]` writes the same proxy back: nothing changed
            value = value._value()
        operation = checked_operation(kind, path, value)
        self._check("a state write")
        self.root = apply_operation(self.root, operation)[0]
        if operation["type"] == "set":
            self._emit(
                {"type": "set", "path": operation["path"], "value": copy_json_tree(operation["value"], "state value")}
            )
        elif operation["value"]:
            self._emit(operation)


class StateProxy:
    """A live view of one path of the run state, with dict- and list-style access.

    Reading an item gives plain values for str, numbers, bool and None, and a
    proxy for dicts and lists. Assigning a string that extends the current
    non-empty string sends only the added text (``append-text``); other writes
    send a ``set``. ``+=`` works on strings and lists.
    """

    __slots__ = ("_path", "_store")

    def __init__(self, store: StateStore, path: list[str]) -> None:
        self._store = store
        self._path = path

    def _value(self) -> Any:
        return self._store.get(self._path)

    def _key(self, value: Any, key: str | int, *, for_write: bool) -> str:
        """``key`` as the path segment of an item of ``value`` (this path's container, looked up once by the caller)."""
        if isinstance(value, list):
            if isinstance(key, str):
                if not key.lstrip("-").isdigit():
                    raise StateKeyError(f"list at path {self._path} needs an int index, not {key!r}")
                key = int(key)
            if key < 0:
                key += len(value)
            limit = len(value) + 1 if for_write else len(value)
            if not 0 <= key < limit:
                raise StateKeyError(f"index {key} is out of range for the list at path {self._path}")
            return str(key)
        if isinstance(value, dict):
            if not for_write and str(key) not in value:
                raise StateKeyError(
                    f"state has no key {str(key)!r} at path {[*self._path, str(key)]}; "
                    "assign it before reading it or using +="
                )
            return str(key)
        raise TypeError(f"state at path {self._path} is {type(value).__name__}, not a dict or list")

    def __getitem__(self, key: str | int) -> Any:
        container = self._value()
        segment = self._key(container, key, for_write=False)
        value = _item(container, segment)
        if isinstance(value, _PRIMITIVES):
            return value
        return StateProxy(self._store, [*self._path, segment])

    def __setitem__(self, key: str | int, value: Any) -> None:
        container = self._value()
        segment = self._key(container, key, for_write=True)
        path = [*self._path, segment]
        if isinstance(value, str):
            current = _item(container, segment)
            # Only a longer string extends: writing the same text again is a `set`, as in 0.0.36.
            if isinstance(current, str) and current and len(value) > len(current) and value.startswith(current):
                self._store.extend_text(container, path, value, len(current))
                return
        self._store.set(path, value)

    def __iadd__(self, other: Any) -> StateProxy:
        value = self._value()
        if isinstance(value, str):
            self._store.append_text(self._path, other)
        elif isinstance(value, list):
            self.extend(other)
        else:
            raise TypeError(f"+= is not supported on {type(value).__name__} state at path {self._path}")
        return self

    def append(self, item: Any) -> None:
        """Append ``item`` to the list at this path."""
        value = self._value()
        if not isinstance(value, list):
            raise TypeError(f"append() needs a list at path {self._path}, not {type(value).__name__}")
        self._store.set([*self._path, str(len(value))], item)

    def extend(self, items: Any) -> None:
        """Append every item of ``items`` to the list at this path."""
        if isinstance(items, StateProxy):
            items = items._value()
        # Check every item first, so that a bad one leaves the list (and the stream) untouched.
        for item in copy_json_tree(list(items), "state value", tuple(self._path)):
            self.append(item)

    def clear(self) -> None:
        """Empty the dict or list at this path."""
        value = self._value()
        if not isinstance(value, (dict, list)):
            raise TypeError(f"clear() needs a dict or list at path {self._path}")
        self._store.set(self._path, type(value)())

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get``."""
        try:
            return self[key]
        except StateKeyError:
            return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Like ``dict.setdefault``."""
        if key not in self._value():
            self[key] = default
        return self[key]

    def keys(self) -> Any:
        return self._value().keys()

    def values(self) -> Any:
        return self._value().values()

    def items(self) -> Any:
        return self._value().items()

    def __len__(self) -> int:
        return len(self._value())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._value())

    def __contains__(self, item: object) -> bool:
        return item in self._value()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StateProxy):
            other = other._value()
        return bool(self._value() == other)

    def __bool__(self) -> bool:
        return bool(self._value())

    def __repr__(self) -> str:
        return repr(self._value())

    __hash__ = None  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:
        # Read-only methods of the underlying value (str.upper, list.index, ...).
        return getattr(self._value(), name)
