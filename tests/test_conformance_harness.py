"""The node decoder reports what the clients reject, so a clean result means something.

Each body is one of the hand-made cases of reference/js-client-edge-cases.md
(or the like for AG-UI), with what the client does with it.
"""

from __future__ import annotations

import pytest
from conformance_helpers import Decoded, adecode, decode_batch, decode_openai

DS_OK = b'0:"Hi"\nd:{"finishReason":"stop","usage":{"inputTokens":0,"outputTokens":0}}\n'
AT_TEXT = (
    b'data: {"type":"part-start","part":{"type":"text"},"path":[]}\n\n'
    b'data: {"type":"text-delta","textDelta":"Hi","path":[0]}\n\n'
)
UI_START = b'data: {"type":"start"}\n\ndata: {"type":"start-step"}\n\n'
AG_START = b'data: {"type":"RUN_STARTED","threadId":"t","runId":"r"}\n\n'
AG_END = b'data: {"type":"RUN_FINISHED","threadId":"t","runId":"r"}\n\n'
OPENAI_TEXT = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'
)
OPENAI_STOP = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
)

CASES: dict[str, tuple[str, bytes, str]] = {
    # name: (format, body, what the harness must report: "ok", "throws" or "warns")
    "data stream, well formed": ("data-stream", DS_OK, "ok"),
    "data stream, last line without newline": ("data-stream", b'0:"Hi"', "throws"),
    "data stream, result for an unknown call": ("data-stream", b'a:{"toolCallId":"t1","result":1}\n', "throws"),
    "data stream, args after the result": (
        "data-stream",
        b'b:{"toolCallId":"t1","toolName":"x"}\na:{"toolCallId":"t1","result":1}\nc:{"toolCallId":"t1","argsTextDelta":"{}"}\n',
        "warns",
    ),
    "assistant transport, well formed": ("assistant-transport", AT_TEXT + b"data: [DONE]\n\n", "ok"),
    "assistant transport, no [DONE]": ("assistant-transport", AT_TEXT, "throws"),
    "assistant transport, unknown frame": (
        "assistant-transport",
        b'data: {"type":"mystery","path":[]}\n\ndata: [DONE]\n\n',
        "warns",
    ),
    "ui message stream, delta before start": (
        "ui-message-stream",
        UI_START + b'data: {"type":"text-delta","id":"t1","delta":"a"}\n\ndata: [DONE]\n\n',
        "throws",
    ),
    "ui message stream, extra key": (
        "ui-message-stream",
        UI_START + b'data: {"type":"text-start","id":"t1","extra":1}\n\ndata: {"type":"text-end","id":"t1"}\n\n',
        "warns",
    ),
    "ag-ui, content before start": (
        "ag-ui",
        AG_START + b'data: {"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"a"}\n\n' + AG_END,
        "throws",
    ),
    "ag-ui, unknown key": (
        "ag-ui",
        AG_START
        + b'data: {"type":"STEP_STARTED","stepName":"s","bogus":1}\n\n'
        + b'data: {"type":"STEP_FINISHED","stepName":"s"}\n\n'
        + AG_END,
        "warns",
    ),
    "openai npm, well formed": ("openai-npm", OPENAI_TEXT + OPENAI_STOP + b"data: [DONE]\n\n", "ok"),
    "openai npm, no finish_reason": ("openai-npm", OPENAI_TEXT + b"data: [DONE]\n\n", "throws"),
}


def verdict(decoded: Decoded) -> str:
    if decoded.error is not None:
        return "throws"
    return "warns" if decoded.warnings else "ok"


@pytest.fixture(scope="module")
def decoded() -> dict[str, Decoded]:
    results = decode_batch([(fmt, body) for fmt, body, _ in CASES.values()])
    return dict(zip(CASES, results, strict=True))


@pytest.mark.parametrize("case", CASES)
def test_harness_reports_what_the_client_does(case: str, decoded: dict[str, Decoded]) -> None:
    assert verdict(decoded[case]) == CASES[case][2], decoded[case]


def test_a_body_split_anywhere_decodes_the_same() -> None:
    body = (
        'data: {"type":"part-start","part":{"type":"text"},"path":[]}\n\n'
        'data: {"type":"text-delta","textDelta":"日本 😀","path":[0]}\n\n'
        "data: [DONE]\n\n"
    ).encode()
    whole, bytewise = decode_batch([("assistant-transport", body), ("assistant-transport", [bytes([b]) for b in body])])
    assert whole.clean() == bytewise.clean()
    assert whole.clean()["parts"][0]["text"] == "日本 😀"


def test_openai_error_event_is_the_clients_error() -> None:
    body = OPENAI_TEXT + b'data: {"error":{"message":"boom","type":"server_error"}}\n\ndata: [DONE]\n\n'
    expected = {"text": "Hi", "tool_calls": [], "finish_reason": None, "errors": ["boom"]}
    assert decode_openai(body).clean() == expected
    (from_npm,) = decode_batch([("openai-npm", body)])
    assert from_npm.clean() == expected


@pytest.mark.anyio
async def test_adecode_from_async_tests(anyio_backend: str) -> None:
    (decoded,) = await adecode("data-stream", [[DS_OK[:3], DS_OK[3:]]])
    assert decoded.clean()["parts"] == [{"type": "text", "text": "Hi", "parentId": None}]
