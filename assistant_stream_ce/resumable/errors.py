"""Errors and input checks of resumable streams."""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["DEFAULT_TTL_MS", "ResumableStreamError", "ResumableStreamErrorCode", "parse_cursor", "validate_stream_id"]

#: ``lost``: the store lost frames of the stream, or its producer's lease lapsed
#: (the producer died); readers end with this error instead of a gap.
ResumableStreamErrorCode = Literal[
    "missing", "exists", "finalized", "invalid-id", "invalid-cursor", "failed", "unavailable", "lost"
]

#: How long a stream's frames are kept after its last write.
DEFAULT_TTL_MS = 24 * 60 * 60 * 1000

_STREAM_ID = re.compile(r"[A-Za-z0-9_.:-]{1,256}")
_CURSOR = re.compile(r"[0-9]{0,19}")


class ResumableStreamError(RuntimeError):
    """A resumable-stream operation failed; ``code`` says why.

    A RuntimeError, as the stores of assistant-stream 0.0.36 raise for a
    missing, finished or full stream, so code catching either works.
    """

    def __init__(self, code: ResumableStreamErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def validate_stream_id(stream_id: str) -> None:
    """Reject ids that are not 1-256 characters of ``A-Z a-z 0-9 _ . : -``.

    Ids from clients go into store keys: nothing else may reach them.
    """
    if not isinstance(stream_id, str) or not _STREAM_ID.fullmatch(stream_id):
        raise ResumableStreamError("invalid-id", f"invalid stream id {str(stream_id)[:64]!r}")


def parse_cursor(cursor: str | None) -> int:
    """A cursor is the number of frames already received ("" or None: none)."""
    if cursor is None or cursor == "":
        return 0
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        raise ResumableStreamError("invalid-cursor", f"invalid cursor {str(cursor)[:32]!r}: expected a frame count")
    return int(cursor)
