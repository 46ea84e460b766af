"""The newer features, decoded by each real client that has a place for them.

Each scenario of ``FEATURE_SCENARIOS`` runs for real on asyncio and on trio;
its chunks go through every encoder, every body is decoded by its client
(which must neither throw nor warn), and what the client made of the feature
(``Decoded.features``, beside its message) is compared field by field with
what the run sent: its own :class:`AssistantMessage` and its chunks.
"""

from __future__ import annotations

from typing import Any

import pytest
from conformance_helpers import FORMATS, Decoded, decode_all, encode, encoder_for, js_value
from conformance_scenarios import FEATURE_SCENARIOS, GENERATOR_CLEANUP, Captured, capture_all

from assistant_stream_ce import DataPartChunk, PreliminaryToolResultChunk
from assistant_stream_ce.message import AssistantMessage, ReasoningPart, RunWarning, SourcePart, TextPart, ToolCallPart
from assistant_stream_ce.serialization.openai_stream import OpenAIStreamEncoder
from assistant_stream_ce.serialization.stream_encoder import StreamEncoder

AUI = ("data-stream", "assistant-transport")


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, str], Captured]:
    GENERATOR_CLEANUP.clear()
    return capture_all(FEATURE_SCENARIOS)


def _encoder(fmt: str) -> StreamEncoder:
    # The OpenAI usage chunk goes out when the request asked for it.
    return OpenAIStreamEncoder(include_usage=True) if fmt.startswith("openai") else encoder_for(fmt)


@pytest.fixture(scope="module")
def decoded(runs: dict[tuple[str, str], Captured]) -> dict[tuple[str, str, str], Decoded]:
    keys = [(backend, name, fmt) for (backend, name) in runs for fmt in FORMATS]
    items = [(fmt, encode(_encoder(fmt), runs[b, n].chunks, runs[b, n].status), None) for b, n, fmt in keys]
    return dict(zip(keys, decode_all(items), strict=True))


CASES = [(backend, scenario.name) for scenario in FEATURE_SCENARIOS for backend in scenario.backends]
IDS = ["-".join(case) for case in CASES]


def shown(decoded: dict[tuple[str, str, str], Decoded], backend: str, name: str, fmt: str) -> dict[str, Any]:
    """The client's feature view, after asserting it neither threw nor warned."""
    result = decoded[backend, name, fmt]
    result.clean()
    assert result.features is not None, fmt
    return result.features


def test_every_client_reads_every_feature_scenario(decoded: dict[tuple[str, str, str], Decoded]) -> None:
    for key, result in decoded.items():
        assert result.error is None, (key, result.error)
        assert result.warnings == [], (key, result.warnings)


# -- message metadata and usage ---------------------------------------------------------


def _usage_camel(message: AssistantMessage) -> dict[str, Any]:
    usage = message.usage
    values = {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
        "reasoningTokens": usage.reasoning_tokens,
        "cachedInputTokens": usage.cached_input_tokens,
    }
    return {k: v for k, v in values.items() if v is not None}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_metadata_and_usage(
    backend: str, runs: dict[tuple[str, str], Captured], decoded: dict[tuple[str, str, str], Decoded]
) -> None:
    message = runs[backend, "metadata_and_usage"].message
    assert message.metadata == {"model": "m-1", "trace": {"id": "t1", "span": "s2"}, "tags": ["a"]}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 23)  # the step's and add_usage's
    totals = {"inputTokens": 12, "outputTokens": 23}
    for fmt in AUI:
        features = shown(decoded, backend, "metadata_and_usage", fmt)
        assert features["finishUsage"] == totals, fmt
        assert features["tokenCount"] == message.usage.output_tokens, fmt
    ui = shown(decoded, backend, "metadata_and_usage", "ui-message-stream")
    assert ui["metadata"] == {**message.metadata, "usage": _usage_camel(message)}
    agui = shown(decoded, backend, "metadata_and_usage", "ag-ui")
    assert agui["terminalUsage"] == [_usage_camel(message)]
    assert agui["terminalMetadata"] == message.metadata
    openai_usage = {
        "prompt_tokens": 12,
        "completion_tokens": 23,
        "total_tokens": 35,
        "completion_tokens_details": {"reasoning_tokens": 5},
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    for fmt in ("openai", "openai-npm"):
        assert shown(decoded, backend, "metadata_and_usage", fmt)["usage"] == openai_usage, fmt


# -- provider metadata ------------------------------------------------------------------


def _text_parts(message: AssistantMessage) -> list[dict[str, Any]]:
    return [
        {"type": "text" if isinstance(part, TextPart) else "reasoning", "text": part.text}
        | {"providerMetadata": part.provider_metadata}
        for part in message.parts
        if isinstance(part, TextPart | ReasoningPart)
    ]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_provider_metadata(
    backend: str, runs: dict[tuple[str, str], Captured], decoded: dict[tuple[str, str, str], Decoded]
) -> None:
    message = runs[backend, "provider_metadata"].message
    expected = _text_parts(message)
    assert [part["providerMetadata"] for part in expected] == [
        {"anthropic": {"signature": "sig-1"}},
        {"openai": {"itemId": "it-2"}},  # a later call replaces the part's metadata
    ]
    (call,) = message.tool_calls
    assert call.provider_metadata == {"google": {"thoughtSignature": "ts"}}

    transport = shown(decoded, backend, "provider_metadata", "assistant-transport")
    assert [part for part in transport["parts"] if part["type"] != "tool-call"] == expected
    ui = shown(decoded, backend, "provider_metadata", "ui-message-stream")
    assert [part for part in ui["parts"] if part["type"] in ("text", "reasoning")] == expected
    (ui_call,) = [part for part in ui["parts"] if part["type"] == "tool-call"]
    assert ui_call["callProviderMetadata"] == call.provider_metadata
    # The data stream has no place for it: the text is all there, without metadata.
    data_stream = shown(decoded, backend, "provider_metadata", "data-stream")
    texts = [part for part in data_stream["parts"] if part["type"] != "tool-call"]
    assert texts == [{**part, "providerMetadata": None} for part in expected]


# -- document sources -------------------------------------------------------------------


def _sources(message: AssistantMessage) -> list[SourcePart]:
    return [part for part in message.parts if isinstance(part, SourcePart)]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_document_sources(
    backend: str, runs: dict[tuple[str, str], Captured], decoded: dict[tuple[str, str, str], Decoded]
) -> None:
    sources = _sources(runs[backend, "document_sources"].message)
    documents = [source for source in sources if source.source_type == "document"]
    assert [(d.id, d.filename, d.parent_id) for d in documents] == [
        ("d1", "report.pdf", None),
        ("d2", None, "parent-1"),
    ]

    def aui(source: SourcePart) -> dict[str, Any]:
        fields: dict[str, Any] = {"type": "source", "sourceType": source.source_type, "id": source.id}
        if source.source_type == "url":
            fields |= {"url": source.url, "title": source.title}
        else:
            fields |= {"title": source.title, "mediaType": source.media_type}
            fields |= {"filename": source.filename} if source.filename else {}
        return fields | ({"parentId": source.parent_id} if source.parent_id else {})

    for fmt in AUI:
        parts = shown(decoded, backend, "document_sources", fmt)["parts"]
        assert [part for part in parts if part["type"] == "source"] == [aui(source) for source in sources], fmt
    ui = shown(decoded, backend, "document_sources", "ui-message-stream")
    assert [part for part in ui["parts"] if part["type"] == "source-document"] == [
        {
            "type": "source-document",
            "sourceId": d.id,
            "mediaType": d.media_type,
            "title": d.title,
            "filename": d.filename,
        }
        for d in documents
    ]
    agui = decoded[backend, "document_sources", "ag-ui"].clean()
    assert [event["value"] for event in agui["custom"] if event["value"].get("sourceType") == "document"] == [
        {"sourceType": "document", "id": d.id, "title": d.title, "mediaType": d.media_type}
        | ({"filename": d.filename} if d.filename else {})
        for d in documents
    ]


# -- preliminary tool results -----------------------------------------------------------


def _preliminary(message: AssistantMessage) -> dict[str, list[Any]]:
    return {call.tool_call_id: call.preliminary_results for call in message.tool_calls if call.preliminary_results}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_preliminary_results(
    backend: str, runs: dict[tuple[str, str], Captured], decoded: dict[tuple[str, str, str], Decoded]
) -> None:
    captured = runs[backend, "preliminary_results"]
    message = captured.message
    calls = {call.tool_call_id: call for call in message.tool_calls}
    sent = [chunk for chunk in captured.chunks if isinstance(chunk, PreliminaryToolResultChunk)]
    assert {chunk.tool_call_id for chunk in sent} == {"call_ok", "call_fails", "call_slow"}
    assert calls["call_ok"].result == calls["call_ok"].preliminary_results[-1] == {"done": 3, "of": 3}
    assert (calls["call_fails"].is_error, calls["call_fails"].result) == (True, "disk full")
    assert calls["call_slow"].is_error
    assert "timed out" in calls["call_slow"].result
    preliminary = _preliminary(message)

    for fmt in AUI:
        features = shown(decoded, backend, "preliminary_results", fmt)
        assert features["preliminary"] == preliminary, fmt
        finals = {part["toolCallId"]: part for part in features["parts"] if part["type"] == "tool-call"}
        for call_id, call in calls.items():  # the final result replaced the preliminary one
            assert finals[call_id] == {
                "type": "tool-call",
                "toolCallId": call_id,
                "result": call.result,
                "isPreliminary": False,
            }
    ui = shown(decoded, backend, "preliminary_results", "ui-message-stream")
    assert ui["preliminary"] == preliminary
    final_states = {
        part["toolCallId"]: (part["state"], part["preliminary"]) for part in ui["parts"] if part["type"] == "tool-call"
    }
    assert final_states == {
        "call_ok": ("output-available", False),
        "call_fails": ("output-error", False),
        "call_slow": ("output-error", False),
    }


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_preliminary_result_then_cancelled(
    backend: str, runs: dict[tuple[str, str], Captured], decoded: dict[tuple[str, str, str], Decoded]
) -> None:
    """The client leaves after the first preliminary result: the generator's cleanup runs, each client
    shows that result as not final, and no format announces a final one."""
    captured = runs[backend, "preliminary_then_cancelled"]
    assert captured.status == "cancelled"
    assert GENERATOR_CLEANUP.count("call_endless") == 2  # once per backend
    (call,) = captured.message.tool_calls
    assert (call.preliminary_results, call.has_result) == ([{"step": 1}], False)
    for fmt in AUI:
        features = shown(decoded, backend, "preliminary_then_cancelled", fmt)
        assert features["preliminary"] == {"call_endless": [{"step": 1}]}, fmt
        (part,) = [part for part in features["parts"] if part["type"] == "tool-call"]
        assert part["isPreliminary"] is True, fmt
    ui = shown(decoded, backend, "preliminary_then_cancelled", "ui-message-stream")
    assert ui["preliminary"] == {"call_endless": [{"step": 1}]}
    (part,) = [part for part in ui["parts"] if part["type"] == "tool-call"]
    assert (part["state"], part["preliminary"], part["output"]) == ("output-available", True, {"step": 1})


# -- warnings ---------------------------------------------------------------------------


def _warning(warning: RunWarning) -> dict[str, Any]:
    """A warning as the UI message stream and AG-UI carry it."""
    return {"error": warning.error, "severity": warning.severity} | ({"code": warning.code} if warning.code else {})


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_warnings_do_not_end_the_message(
    backend: str, runs: dict[tuple[str, str], Captured], decoded: dict[tuple[str, str, str], Decoded]
) -> None:
    captured = runs[backend, "warnings"]
    message = captured.message
    assert captured.status == "completed"
    assert message.errors == []
    assert [(w.error, w.severity, w.code) for w in message.warnings] == [
        ("rate limited, retrying", "warning", "rate_limit"),
        ("used a cached answer", "info", None),
    ]
    last = message.warnings[-1]
    for fmt in AUI:
        aui = decoded[backend, "warnings", fmt].clean()
        assert aui["errors"] == [w.error for w in message.warnings], fmt
        features = shown(decoded, backend, "warnings", fmt)
        # assistant-ui keeps the latest error with its severity as the message's status detail.
        assert features["statusError"] == {"code": last.code or "unknown", "message": last.error, "severity": "info"}
        assert "".join(p["text"] for p in features["parts"] if p["type"] == "text") == message.text, fmt
    ui = decoded[backend, "warnings", "ui-message-stream"].clean()
    assert (ui["chatError"], ui["finishReason"], ui["errors"]) == (None, "stop", [])
    assert "".join(part["text"] for part in ui["parts"] if part["type"] == "text") == message.text
    assert shown(decoded, backend, "warnings", "ui-message-stream")["onData"] == [
        {
            "type": "data-warning",
            "data": {"error": w.error, "severity": w.severity} | ({"code": w.code} if w.code else {}),
            "transient": True,
        }
        for w in message.warnings
    ]
    agui = decoded[backend, "warnings", "ag-ui"].clean()
    assert agui["terminal"] == ["RUN_FINISHED"]
    assert agui["runError"] is None
    assert [event["value"] for event in agui["custom"] if event["name"] == "warning"] == [
        _warning(w) for w in message.warnings
    ]
    for fmt in ("openai", "openai-npm"):
        openai = decoded[backend, "warnings", fmt].clean()
        assert (openai["text"], openai["errors"], openai["finish_reason"]) == (message.text, [], "stop"), fmt


# -- data parts ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_data_parts(
    backend: str, runs: dict[tuple[str, str], Captured], decoded: dict[tuple[str, str, str], Decoded]
) -> None:
    captured = runs[backend, "data_parts"]
    message = captured.message
    assert [(p.name, p.id, p.data) for p in message.data_parts] == [
        ("progress", "p1", {"pct": 100}),  # updated in place
        ("chart", None, [1, 2, 3]),  # the transient notice is not kept
    ]
    sent = [chunk for chunk in captured.chunks if isinstance(chunk, DataPartChunk)]
    ui = shown(decoded, backend, "data_parts", "ui-message-stream")
    assert [part for part in ui["parts"] if part["type"].startswith("data-")] == [
        {"type": f"data-{p.name}", "id": p.id, "data": p.data} for p in message.data_parts
    ]
    on_data = [{"type": f"data-{c.name}", "data": c.data} | ({"id": c.id} if c.id else {}) for c in sent]
    assert [{k: v for k, v in part.items() if k != "transient"} for part in ui["onData"]] == on_data
    assert [part.get("transient", False) for part in ui["onData"]] == [c.transient for c in sent]
    # assistant-ui appends every version of a part (it has no ids) and has no transient parts.
    for fmt in AUI:
        parts = shown(decoded, backend, "data_parts", fmt)["parts"]
        assert [part for part in parts if part["type"] == "data"] == [
            {"type": "data", "name": c.name, "data": js_value(c.data), "parentId": None}
            for c in sent
            if not c.transient
        ], fmt
    agui = decoded[backend, "data_parts", "ag-ui"].clean()
    activities = [m for m in agui["messages"] if m["role"] == "activity"]
    assert [(m["activityType"], m["content"]) for m in activities] == [
        (p.name, {"data": p.data}) for p in message.data_parts
    ]
    assert activities[0]["id"] == "p1"
    assert [e for e in agui["custom"] if e["name"] == "data-notice"] == [
        {"name": "data-notice", "value": "saved a draft"}
    ]


def test_cases_cover_both_backends() -> None:
    assert {backend for backend, _ in CASES} == {"asyncio", "trio"}
    assert ToolCallPart.__struct_fields__[-1] == "preliminary_results"
