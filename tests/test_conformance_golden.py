"""The reference scenario (tests/golden: assistant-stream 0.0.36's bytes, and the ``ai`` package's).

The reference bytes, and ours for the same chunks, decode in the real clients
to what the reference chunks mean, with no warning. (test_golden.py compares
the frames themselves.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conformance_helpers import client_view, decode_batch, encode, encoder_for, expected_view

from assistant_stream_ce.assistant_stream_chunk import AssistantStreamChunk
from assistant_stream_ce.message import AssistantMessage, MessageBuilder

GOLDEN = Path(__file__).parent / "golden"
VARIANTS = {"ok": "", "error": "-error"}
FORMATS = ("data-stream", "assistant-transport", "ui-message-stream")


def reference_chunks(variant: str) -> list[AssistantStreamChunk]:
    raw = json.loads((GOLDEN / f"reference-chunks{VARIANTS[variant]}.json").read_text(encoding="utf-8"))
    return msgspec.convert(raw, list[AssistantStreamChunk])


def reference_bytes(fmt: str, variant: str) -> bytes:
    return (GOLDEN / f"{fmt}{VARIANTS[variant]}.txt").read_bytes()


def reference_message(variant: str) -> tuple[AssistantMessage, str]:
    builder = MessageBuilder()
    for chunk in reference_chunks(variant):
        builder.add(chunk)
    return builder.message, "error" if variant == "error" else "completed"


def ours(fmt: str, variant: str) -> bytes:
    status = "error" if variant == "error" else "completed"
    return b"".join(encode(encoder_for(fmt), reference_chunks(variant), status))


@pytest.fixture(scope="module")
def decoded() -> dict[tuple[str, str, str], Any]:
    keys = [(source, fmt, variant) for source in ("reference", "ours") for fmt in FORMATS for variant in VARIANTS]
    bodies = [
        (fmt, reference_bytes(fmt, variant) if source == "reference" else ours(fmt, variant))
        for source, fmt, variant in keys
    ]
    return dict(zip(keys, decode_batch(bodies), strict=True))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source", ["reference", "ours"])
def test_client_shows_the_reference_message(
    source: str, fmt: str, variant: str, decoded: dict[tuple[str, str, str], Any]
) -> None:
    expected = expected_view(fmt, *reference_message(variant))
    if source == "reference" and fmt != "ui-message-stream" and variant == "ok":
        expected["status"] = "completed/unknown"  # 0.0.36 sends no finish frame (a gap we fix)
    assert client_view(fmt, decoded[source, fmt, variant]) == expected
