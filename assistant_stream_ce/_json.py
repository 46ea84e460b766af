"""JSON as the wire formats write it, and checks that values can go on the wire where they are handed in.

A value that cannot be encoded must fail at the call that received it, with a
message that says what was wrong, before anything reaches the stream.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

_SCALARS = (str, bool, int, type(None))

#: The deepest a state tree may nest objects and lists. The clients and the encoder follow any real
#: state's depth; a deeper tree is an attack or a bug, and would exhaust the stack of the code that walks it.
MAX_DEPTH = 64


def _enc_hook(value: Any) -> Any:
    """What msgspec cannot encode itself: a pydantic model (anything with ``model_dump``) as its fields.

    Tools often return models; msgspec already encodes dataclasses, attrs
    classes, enums, datetimes and UUIDs.
    """
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return model_dump(mode="json")
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


_encode = msgspec.json.Encoder(enc_hook=_enc_hook).encode


def encode_json(value: Any) -> bytes:
    """Compact JSON with raw UTF-8.

    A string holding a lone surrogate has no UTF-8 form; only then is the value
    written with ASCII escapes (``\\ud800``), which JSON parsers turn back into
    the same string.
    """
    try:
        return _encode(value)
    except UnicodeEncodeError:
        builtins = msgspec.to_builtins(value, enc_hook=_enc_hook)
        return json.dumps(builtins, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def encoded_size(value: Any, what: str) -> int:
    """Encode ``value`` as JSON and return its size; TypeError naming ``what`` if it can't be."""
    try:
        return len(encode_json(value))
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None


def copy_json_tree(value: Any, what: str, path: tuple[str, ...] = ()) -> Any:
    """Return a private copy of a JSON-like tree (dict, list, str, number, bool, None).

    State lives both here and on the client, so it must be plain JSON that
    both sides see the same way: no custom objects, no non-string keys, no NaN,
    and objects and lists no more than :data:`MAX_DEPTH` deep counted from the
    state's root (``path`` is where ``value`` goes).
    """
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{what} at {list(path)} is {value!r}, which JSON cannot carry")
        return value
    if isinstance(value, (dict, list, tuple)) and len(path) >= MAX_DEPTH:
        raise ValueError(f"{what} at {list(path)} nests deeper than {MAX_DEPTH} levels of objects and lists")
    if isinstance(value, dict):
        copied = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{what} at {list(path)} has a key of type {type(key).__name__}; state keys must be str"
                )
            copied[key] = copy_json_tree(item, what, (*path, key))
        return copied
    if isinstance(value, (list, tuple)):
        return [copy_json_tree(item, what, (*path, str(i))) for i, item in enumerate(value)]
    raise TypeError(
        f"{what} at {list(path)} has type {type(value).__name__}, which is not JSON "
        "(use dict, list, str, int, float, bool or None)"
    )
