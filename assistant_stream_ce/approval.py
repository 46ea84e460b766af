"""Signed tool-call approvals: a call that waits for a person's decision, verified when it comes back.

Between the request that asks for an approval and the one that carries the
decision the server keeps nothing: the client sends the whole conversation
back. So each approval request carries an HMAC-SHA256 signature over its
approval id, the tool call id, the tool name and the call's arguments (as
canonical JSON), under a server key; a decision whose call does not match its
signature (another id, another tool, altered arguments, a made-up approval) is
refused. The signed payload is the AI SDK's (``toolApprovalSecret``), so a
server using the AI SDK with the same key verifies these signatures too.

The key: :func:`set_approval_key`, else the environment variable
``ASSISTANT_STREAM_CE_APPROVAL_KEY``, else a random key made once per process.
Several workers behind one address must share one key: an approval asked for
by one is verified by whichever receives the decision.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import secrets
from typing import Any, Final

import msgspec
from starlette.exceptions import HTTPException

from .assistant_stream_chunk import ToolApprovalRequestChunk

__all__ = [
    "APPROVAL_KEY_ENV",
    "ToolApproval",
    "ToolApprovalError",
    "approval_token",
    "set_approval_key",
]

APPROVAL_KEY_ENV: Final = "ASSISTANT_STREAM_CE_APPROVAL_KEY"
"""The environment variable the approval key is read from (as UTF-8 text) when none was set."""

_APPROVAL_PREFIX: Final = "approval-"
_PAYLOAD_TAG: Final = "ai-sdk-tool-approval-v1"

_key: bytes | None = None


def set_approval_key(key: str | bytes | None) -> None:
    """Sign and verify approvals with ``key`` (text is UTF-8); ``None`` goes back to the environment or a random key."""
    global _key
    if key is not None and not isinstance(key, (str, bytes)):
        raise TypeError(f"the approval key must be str or bytes, not {type(key).__name__}")
    if key is not None and not key:
        raise ValueError("the approval key must not be empty")
    _key = key.encode() if isinstance(key, str) else key


def _current_key() -> bytes:
    global _key
    if _key is None:
        configured = os.environ.get(APPROVAL_KEY_ENV)
        _key = configured.encode() if configured else secrets.token_bytes(32)
    return _key


class ToolApprovalError(HTTPException, ValueError):
    """An approval that does not verify, or that does not fit the call it is used for (HTTP 403)."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)

    def __str__(self) -> str:
        return self.detail


class ToolApproval(msgspec.Struct, frozen=True, kw_only=True):
    """A person's decision on a tool call that waited for it, as the next request carries it.

    ``args`` are the arguments the call was announced with (and runs with when
    approved); ``reason`` is what the person gave, if anything. Only the request
    structs' ``tool_approvals()`` make these, after checking the signature;
    ``start_tool_call(..., approval=...)`` checks it again.
    """

    tool_call_id: str
    tool_name: str
    args: dict[str, Any]
    approved: bool
    reason: str | None = None
    approval_id: str = ""
    signature: str = ""

    def verify(self) -> None:
        """Raise :class:`ToolApprovalError` unless the signature matches this call."""
        if not self.approval_id or not self.signature:
            raise ToolApprovalError(f"the approval of tool call {self.tool_call_id!r} is not signed")
        expected = sign(self.approval_id, self.tool_call_id, self.tool_name, self.args)
        if not hmac.compare_digest(expected, self.signature):
            raise ToolApprovalError(
                f"the approval of tool call {self.tool_call_id!r} ({self.tool_name}) does not verify: "
                "it was not asked for by this server, or its call was altered"
            )


def approval_id_for(tool_call_id: str) -> str:
    """The approval id of a tool call's approval request."""
    return _APPROVAL_PREFIX + tool_call_id


def tool_call_id_of(approval_id: str) -> str | None:
    """The tool call id inside an approval id, or None if it is not one of ours."""
    return approval_id[len(_APPROVAL_PREFIX) :] if approval_id.startswith(_APPROVAL_PREFIX) else None


def approval_token(approval_id: str, signature: str) -> str:
    """The approval id and signature as one id, for formats with no signature field (``<id>.<signature>``)."""
    return f"{approval_id}.{signature}"


def split_token(token: str) -> tuple[str, str] | None:
    """``(approval id, signature)`` of a token of ours, else None (a base64url signature holds no ``.``)."""
    approval_id, dot, signature = token.rpartition(".")
    if not dot or tool_call_id_of(approval_id) is None or not signature:
        return None
    return approval_id, signature


def approval_request(tool_call_id: str, tool_name: str, args: Any) -> ToolApprovalRequestChunk:
    """The signed approval request of a call with these finished arguments."""
    approval_id = approval_id_for(tool_call_id)
    return ToolApprovalRequestChunk(tool_call_id, approval_id, sign(approval_id, tool_call_id, tool_name, args))


def sign(approval_id: str, tool_call_id: str, tool_name: str, args: Any) -> str:
    """The signature (base64url HMAC-SHA256) of one approval request."""
    digest = _b64url(hashlib.sha256(canonical_json(args).encode("utf-8", "surrogatepass")).digest())
    payload = json.dumps([_PAYLOAD_TAG, approval_id, tool_call_id, tool_name, digest], separators=(",", ":"))
    return _b64url(hmac.new(_current_key(), payload.encode("utf-8", "surrogatepass"), hashlib.sha256).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def canonical_json(value: Any) -> str:
    """``value`` as JavaScript's ``JSON.stringify`` writes it with object keys sorted.

    So the server's arguments and the ones a JavaScript client parsed and sent
    back give the same text: numbers as JavaScript prints them (``1.0`` is
    ``1``), keys in UTF-16 order, lone surrogates escaped.
    """
    if value is None or value is True or value is False:
        return json.dumps(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _js_number(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: str(key).encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(f"{canonical_json(str(key))}:{canonical_json(value[key])}" for key in keys) + "}"
    raise TypeError(f"tool arguments must be JSON values, not {type(value).__name__}")


def _js_number(number: float) -> str:
    """A float as JavaScript's ``Number.prototype.toString`` writes it (shortest round trip)."""
    if not math.isfinite(number):
        return "null"
    if number == 0:
        return "0"
    digits, _, exponent_text = repr(abs(number)).partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    whole, _, fraction = digits.partition(".")
    significant = (whole + fraction).lstrip("0")
    # the decimal point sits after ``point`` significant digits
    point = len(whole) + exponent if whole != "0" else exponent - (len(fraction) - len(fraction.lstrip("0")))
    significant = significant.rstrip("0") or "0"
    sign_text = "-" if number < 0 else ""
    if -6 < point <= 21:
        if point <= 0:
            return f"{sign_text}0.{'0' * -point}{significant}"
        if point >= len(significant):
            return sign_text + significant + "0" * (point - len(significant))
        return f"{sign_text}{significant[:point]}.{significant[point:]}"
    mantissa = significant[0] + ("." + significant[1:] if len(significant) > 1 else "")
    power = point - 1
    return f"{sign_text}{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"
