"""Decode response bodies with the real clients of each wire format, and compare.

``decode("data-stream", [body, ...])`` runs every body through the JavaScript
client that reads that format, in one node process (tests/conformance/), and
returns what each client ended up showing (a normalized message), every
console warning it printed, and what it threw:

- ``data-stream``, ``assistant-transport``: npm ``assistant-stream``
  ``DataStreamDecoder`` / ``AssistantTransportDecoder`` +
  ``AssistantMessageAccumulator``, strict, as assistant-ui runs them;
- ``ui-message-stream``: npm ``ai``, ``AbstractChat`` + ``DefaultChatTransport``
  (the ``useChat`` pipeline);
- ``ag-ui``: npm ``@ag-ui/client`` ``HttpAgent`` (event verification, then its
  message and state fold), plus ``@ag-ui/core`` event schemas;
- ``openai-npm``: the OpenAI format read by npm ``openai``'s ``ChatCompletionStream``
  (``client.chat.completions.stream``, then ``finalChatCompletion()``).

``openai`` is the same format decoded in-process by the official ``openai``
Python package (:func:`decode_openai`).

A body is ``bytes``, or a sequence of ``bytes`` pieces as they came off the
wire (the clients see the same split points). Missing node or an uninstalled
``tests/conformance/node_modules`` raises: the conformance tests fail, never skip.

:func:`client_view` and :func:`expected_view` turn a decoded message and the
Python side's :class:`AssistantMessage` into the same comparable shape.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import openai
import pydantic

from assistant_stream_ce.assistant_stream_chunk import AssistantStreamChunk
from assistant_stream_ce.message import AssistantMessage, ToolCallPart
from assistant_stream_ce.serialization._tools import UNFINISHED_ARGS_ERROR
from assistant_stream_ce.serialization.ag_ui import AGUIEncoder
from assistant_stream_ce.serialization.assistant_transport import AssistantTransportEncoder
from assistant_stream_ce.serialization.data_stream import DataStreamEncoder
from assistant_stream_ce.serialization.openai_stream import OpenAIStreamEncoder
from assistant_stream_ce.serialization.stream_encoder import FinishStatus, StreamEncoder
from assistant_stream_ce.serialization.ui_message_stream import UIMessageStreamEncoder

NODE_DIR = Path(__file__).parent / "conformance"
DECODE_SCRIPT = NODE_DIR / "decode.mjs"
NODE_FORMATS = ("data-stream", "assistant-transport", "ui-message-stream", "ag-ui", "openai-npm")
FORMATS = (*NODE_FORMATS, "openai")
#: useChat continuing the last of the messages given as the client state (after a tool approval).
UI_CONTINUING = "ui-message-stream-continuing"

Body = bytes | Sequence[bytes]
#: ``(format, body)``, or ``(format, body, client_state)`` for AG-UI: the state the client holds before the run.
Item = tuple[str, Body] | tuple[str, Body, Any]


@dataclass
class Decoded:
    """What a client made of one body."""

    message: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    #: What the newer features (metadata, usage, preliminary results...) left in the client.
    features: dict[str, Any] | None = None

    def clean(self) -> dict[str, Any]:
        """The message, after asserting the client neither threw nor warned."""
        assert self.error is None, f"the client threw: {self.error}\nwarnings: {self.warnings}"
        assert self.warnings == [], f"the client warned: {self.warnings}"
        assert self.message is not None
        return self.message


# ---- running the node decoder ----------------------------------------------------


def _command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: the conformance tests need node (v20+)")
    if not (NODE_DIR / "node_modules").is_dir():
        raise RuntimeError(f"npm packages are not installed: run `npm ci` in {NODE_DIR}")
    return [node, str(DECODE_SCRIPT)]


def _pieces(body: Body) -> list[bytes]:
    return [bytes(body)] if isinstance(body, bytes | bytearray) else [bytes(piece) for piece in body]


def _request(items: Sequence[Item]) -> bytes:
    lines = []
    for format_name, body, *client_state in items:
        if format_name not in (*NODE_FORMATS, UI_CONTINUING):
            raise ValueError(f"{format_name!r} is not decoded in node; those are: {', '.join(NODE_FORMATS)}")
        line: dict[str, Any] = {
            "format": format_name,
            "chunks": [base64.b64encode(piece).decode("ascii") for piece in _pieces(body)],
        }
        if client_state:
            line["clientState"] = client_state[0]
        lines.append(json.dumps(line))
    return ("\n".join(lines) + "\n").encode()


def _js_int(digits: str) -> int | float:
    """A JSON integer from node: past 2**53 it is a double that JavaScript printed without an exponent."""
    value = int(digits)
    return float(value) if abs(value) > 2**53 else value


def _results(returncode: int, stdout: bytes, stderr: bytes, count: int) -> list[Decoded]:
    if returncode != 0:
        raise RuntimeError(f"the node decoder failed ({returncode}):\n{stderr.decode(errors='replace')}")
    # Split on "\n" only (text may hold U+2028), and parse with the stdlib: node
    # escapes lone surrogates as \udXXX, which must come back as the same lone surrogates.
    rows = [json.loads(line, parse_int=_js_int) for line in stdout.decode("utf-8").split("\n") if line.strip()]
    if len(rows) != count:
        details = stderr.decode(errors="replace")
        raise RuntimeError(f"the node decoder answered {len(rows)} of {count} bodies:\n{details}")
    return [Decoded(row["message"], row["warnings"], row["error"], row["features"]) for row in rows]


def start_batch(items: Sequence[Item]) -> Callable[[], list[Decoded]]:
    """Start decoding ``(format, body)`` items in one node process; call the result to wait for them.

    Meanwhile the caller can do other work (e.g. :func:`decode_openai`): node runs on its own core.
    """
    count = len(items)
    if count == 0:
        return list
    # Files, not pipes: node may write a lot before it has read all of a big batch.
    request, stdout, stderr = (tempfile.TemporaryFile() for _ in range(3))  # noqa: SIM115 (closed by results())
    request.write(_request(items))
    request.seek(0)
    process = subprocess.Popen(_command(), stdin=request, stdout=stdout, stderr=stderr, cwd=NODE_DIR)

    def results() -> list[Decoded]:
        try:
            returncode = process.wait(timeout=300)
            stdout.seek(0)
            stderr.seek(0)
            return _results(returncode, stdout.read(), stderr.read(), count)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for file in (request, stdout, stderr):
                file.close()

    return results


def decode_batch(items: Sequence[Item]) -> list[Decoded]:
    """Decode ``(format, body)`` items in one node process; results in order."""
    return start_batch(items)()


def decode(format_name: str, bodies: Sequence[Body]) -> list[Decoded]:
    """Decode bodies of one format in one process (node, or in-process for ``openai``); results in order."""
    if format_name == "openai":
        return [decode_openai(body) for body in bodies]
    return decode_batch([(format_name, body) for body in bodies])


async def adecode_batch(items: Sequence[Item]) -> list[Decoded]:
    """:func:`decode_batch` for async tests (asyncio or trio), without blocking the event loop."""
    if not items:
        return []
    done = await anyio.run_process(_command(), input=_request(items), check=False, cwd=NODE_DIR)
    return _results(done.returncode, done.stdout, done.stderr, len(items))


async def adecode(format_name: str, bodies: Sequence[Body]) -> list[Decoded]:
    """:func:`decode` for async tests."""
    if format_name == "openai":
        return [decode_openai(body) for body in bodies]
    return await adecode_batch([(format_name, body) for body in bodies])


# ---- encoding with this project's encoders ----------------------------------------


def encoder_for(format_name: str, initial_state: Any = None) -> StreamEncoder:
    """The encoder of a format, as a response for a client holding ``initial_state`` would make it."""
    match format_name:
        case "data-stream":
            return DataStreamEncoder()
        case "assistant-transport":
            return AssistantTransportEncoder()
        case "ui-message-stream":
            return UIMessageStreamEncoder()
        case "ag-ui":
            return AGUIEncoder(state=initial_state)
        case "openai" | "openai-npm":
            return OpenAIStreamEncoder()
    raise ValueError(format_name)


def encode(encoder: StreamEncoder, chunks: Sequence[AssistantStreamChunk], status: FinishStatus) -> list[bytes]:
    """The body as a response sends it: one piece per chunk, then the terminal frames."""
    writer = encoder.open()
    pieces = [writer.encode(chunk) for chunk in chunks]
    pieces.append(writer.finish(status))
    return [piece for piece in pieces if piece]


def decode_all(items: Sequence[tuple[str, Body, Any]]) -> list[Decoded]:
    """Decode ``(format, body, client state)`` items: node formats in one node process, openai in-process."""
    node_results = start_batch([item for item in items if item[0] != "openai"])
    from_python = {i: decode_openai(body) for i, (fmt, body, _) in enumerate(items) if fmt == "openai"}
    from_node = iter(node_results())
    return [from_python[i] if i in from_python else next(from_node) for i in range(len(items))]


# ---- OpenAI: the official Python SDK's streaming helper ------------------------------


def decode_openai(body: Body) -> Decoded:
    """Rebuild the message with ``openai``'s ``client.chat.completions.stream`` (SSE parsing + accumulation).

    An ``error`` event makes the SDK raise ``APIError``: that is the client's
    view of a failed run, so it is kept as the message's error, with what was
    accumulated before it.
    """
    content = b"".join(_pieces(body))

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)

    http = httpx.Client(transport=httpx.MockTransport(respond))
    client = openai.OpenAI(api_key="test", base_url="http://127.0.0.1/v1", http_client=http, max_retries=0)
    errors: list[str] = []
    try:
        with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as stream:
            try:
                for _ in stream:
                    pass
            except openai.APIError as exc:
                errors.append(exc.message)
            snapshot = _snapshot(stream)
            choice = snapshot.choices[0] if snapshot is not None and snapshot.choices else None
    except Exception as exc:  # the SDK rejected the stream
        return Decoded(None, [], f"{type(exc).__name__}: {exc}")
    finally:
        http.close()
    message = None if choice is None else choice.message
    finish_reason = None if choice is None or errors else choice.finish_reason
    usage = None if snapshot is None or snapshot.usage is None else snapshot.usage.model_dump(exclude_none=True)
    tool_calls = [] if message is None else (message.tool_calls or [])
    return Decoded(
        {
            "text": "" if message is None else (message.content or ""),
            "tool_calls": [
                {"id": call.id, "name": call.function.name, "arguments": call.function.arguments} for call in tool_calls
            ],
            "finish_reason": finish_reason,
            "errors": errors,
        },
        features={"usage": usage},
    )


def _snapshot(stream: Any) -> Any:
    """The completion accumulated so far (None before the first chunk, which the SDK asserts against)."""
    try:
        return stream.current_completion_snapshot
    except AssertionError:
        return None


# ---- comparing what a client shows with what the Python side sent ----------------
#
# Both sides become one neutral shape (fields of AssistantMessage, plus the run's
# status: completed | error | cancelled), then one projection per format keeps
# what that format carries. A test asserts ``client_view == expected_view``.
#
# Strings are compared as JavaScript holds them (UTF-16 code units): a lone
# surrogate travels as a ``\udXXX`` JSON escape and stays a lone surrogate; two
# halves of a pair sent separately are one character once joined, as in the browser.


def js_string(text: str) -> str:
    """``text`` as a JavaScript string holds it (surrogate halves paired up)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def js_value(value: Any) -> Any:
    """A JSON value with every string (keys too) as JavaScript holds it."""
    if isinstance(value, str):
        return js_string(value)
    if isinstance(value, dict):
        return {js_string(k): js_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [js_value(v) for v in value]
    return value


def _wire_json(value: Any) -> str:
    """JSON text as the encoders write it inside a string field: compact, raw UTF-8 (escapes for lone surrogates)."""
    try:
        return msgspec.json.encode(value).decode()
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _tool_input(args_text: str) -> Any:
    """A call's input as the UI message stream announces it: {} when empty, the JSON, or the text if not JSON."""
    if not args_text:
        return {}
    try:
        return json.loads(args_text)
    except ValueError:
        return args_text


def _error_text(result: Any) -> str:
    """A failed call's result as UI message stream ``errorText``: the string, its ``error`` string, or its JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict) and isinstance(result.get("error"), str):
        return str(result["error"])
    return _wire_json(result)


def _content(result: Any) -> str:
    """A result as AG-UI tool message content: the string, or its JSON."""
    return result if isinstance(result, str) else _wire_json(result)


#: How a format writes a tool result (a plain value, and whether it is an error) where it only has text.
_RESULT_AS: dict[str, Callable[[Any, bool], Any]] = {
    "ui-message-stream": lambda result, is_error: _error_text(result) if is_error else result,
    "ag-ui": lambda result, is_error: _content(result),
}


def _as_fields(value: Any) -> Any:
    """A pydantic model as its fields, as they go on the wire (msgspec itself turns dataclasses into objects)."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    raise NotImplementedError(type(value))


def _plain(value: Any) -> Any:
    """A value the run was given (models, dataclasses, tuples...) as plain JSON-like values."""
    return msgspec.to_builtins(value, enc_hook=_as_fields)


#: Part fields of the newer features, which the feature tests compare (test_conformance_features.py;
#: a call's approval: test_approval_conformance.py).
FEATURE_FIELDS = frozenset({"provider_metadata", "preliminary_results", "media_type", "filename", "approval"})


def expected_neutral(message: AssistantMessage, status: str, format_name: str = "") -> dict[str, Any]:
    """The Python side's message and run status, in the neutral shape (results as ``format_name`` writes them)."""
    result_as = _RESULT_AS.get(format_name)
    parts = []
    for part in message.parts:
        fields = {k: v for k, v in _plain(part).items() if k not in FEATURE_FIELDS}
        if isinstance(part, ToolCallPart):
            # Announced: the client was told the arguments are complete (else they never finished).
            fields["announced"] = fields.pop("args_finished") or part.has_result or status == "completed"
            fields["input"] = _tool_input(part.args_text)
            if result_as is not None and part.has_result:
                fields["result"] = result_as(fields["result"], part.is_error)
        parts.append(fields)
    steps = [msgspec.to_builtins(step) for step in message.steps]
    if format_name == "data-stream" and steps and steps[-1]["finish_reason"] is None:
        steps[-1]["finish_reason"] = _stream_finish_reason(message, status)  # its finish frames close the step
    return js_value(
        {
            "parts": parts,
            "data": _plain(message.data),
            "annotations": _plain(message.annotations),
            "errors": message.errors,
            "state": message.state,
            "steps": steps,
            "status": f"completed/{_stream_finish_reason(message, status)}" if status == "completed" else status,
        }
    )


def _stream_finish_reason(message: AssistantMessage, status: str) -> str:
    """The AI SDK finish reason the encoders give a stream that ends with ``status``."""
    if status != "completed":
        return "error" if status == "error" else "other"
    return "tool-calls" if any(not call.has_result for call in message.tool_calls) else "stop"


def _status(neutral: dict[str, Any]) -> str:
    """How the run ended: error | cancelled | completed/stop | completed/tool-calls (calls await the client).

    An error chunk marks the whole message as failed in every client (none has per-part errors).
    """
    return "error" if neutral["errors"] else str(neutral["status"])


def _parts_of(neutral: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [part for part in neutral["parts"] if part["type"] == kind]


def _joined(neutral: dict[str, Any], kind: str) -> str:
    return "".join(part["text"] for part in _parts_of(neutral, kind))


def _args_text(part: dict[str, Any]) -> str:
    """A call's argument text as the client holds it.

    Empty arguments of a call announced as ready go out as "{}" (so clients can
    parse them); arguments that never finished go out as they were. Only the
    expected side knows which calls were announced: a client's parts have no
    ``announced`` and show their text as it came.
    """
    return part["args_text"] or ("{}" if part.get("announced") else "")


def _merged_text_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent text (or reasoning) parts as one: where a format splits or joins parts differently."""
    merged: list[dict[str, Any]] = []
    for part in parts:
        if merged and part["type"] in ("text", "reasoning") and merged[-1]["type"] == part["type"]:
            merged[-1] = {**merged[-1], "text": merged[-1]["text"] + part["text"]}
        else:
            merged.append(part)
    return merged


# -- data stream, assistant transport (assistant-ui) --

_AUI_STATUS = {
    "incomplete/error": "error",
    "incomplete/other": "cancelled",
    "complete/stop": "completed/stop",
    "complete/unknown": "completed/unknown",  # a stream without finish frames (0.0.36)
    "requires-action/tool-calls": "completed/tool-calls",
}


def _aui_neutral(shown: dict[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for part in shown["parts"]:
        kind, parent_id = part["type"], part.get("parentId")
        if kind == "tool-call":
            fields = {
                "tool_call_id": part["toolCallId"],
                "tool_name": part["toolName"],
                "args_text": part["argsText"],
                "has_result": part["hasResult"],
                "result": part["result"],
                "artifact": part["artifact"],
                "is_error": part["isError"],
            }
        elif kind == "source":
            fields = {"id": part["id"], "url": part["url"], "source_type": "url", "title": part["title"]}
        elif kind == "file":
            fields = {"data": part["data"], "mime_type": part["mimeType"]}
        else:  # text, reasoning; anything else keeps its own shape and fails the comparison
            fields = {k: v for k, v in part.items() if k not in ("type", "parentId")}
        parts.append({"type": kind, **fields, "parent_id": parent_id})
    steps = [
        {
            "message_id": step["messageId"],
            "finish_reason": step["finishReason"],
            "input_tokens": (step["usage"] or {}).get("inputTokens", 0),
            "output_tokens": (step["usage"] or {}).get("outputTokens", 0),
            "is_continued": bool(step["isContinued"]),
        }
        for step in shown["steps"]
    ]
    return {
        "parts": parts,
        "data": shown["data"],
        "annotations": shown["annotations"],
        "errors": shown["errors"],
        "state": shown["state"],
        "steps": steps,
        "status": _AUI_STATUS.get(shown["status"], shown["status"]),
    }


def _aui_view(neutral: dict[str, Any]) -> dict[str, Any]:
    """Everything: these formats carry every field of every chunk.

    Argument text as :func:`_args_text`; assistant-ui keeps an empty source title as no title.
    """
    parts = []
    for part in neutral["parts"]:
        if part["type"] == "tool-call":
            part = {k: v for k, v in part.items() if k not in ("input", "announced")} | {"args_text": _args_text(part)}
        elif part["type"] == "source":
            part = {**part, "title": part["title"] or None}
        parts.append(part)
    return {**neutral, "parts": parts, "status": _status(neutral)}


def _failed_call(part: dict[str, Any]) -> dict[str, Any]:
    """A call whose arguments never finished, as a format that ends it as failed shows it."""
    return {**part, "has_result": True, "result": UNFINISHED_ARGS_ERROR, "is_error": True}


def _data_stream_view(neutral: dict[str, Any]) -> dict[str, Any]:
    """:func:`_aui_view`; a call whose arguments never finished ends with an error result.

    The client completes such a call's arguments itself when the stream ends (empty ones as "{}").
    """
    parts = [
        _failed_call(part) | {"announced": True} if part.get("announced") is False else part
        for part in neutral["parts"]
    ]
    return _aui_view({**neutral, "parts": parts})


# -- UI message stream (AI SDK useChat) --


def _ui_neutral(shown: dict[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    data = []
    for part in shown["parts"]:
        kind = part["type"]
        if kind == "data":
            data.append(part["data"])
        elif kind == "tool-call":
            fields = {"tool_call_id": part["toolCallId"], "tool_name": part["toolName"], "input": part["args"]}
            outcome = {"has_result": part["hasResult"], "result": part["result"], "is_error": part["isError"]}
            parts.append({"type": kind, **fields, **outcome})
        elif kind == "file":
            prefix = f"data:{part['mediaType']};base64,"
            assert part["url"].startswith(prefix), part
            parts.append({"type": "file", "data": part["url"][len(prefix) :], "mime_type": part["mediaType"]})
        elif kind != "step-start":
            parts.append({k: v for k, v in part.items() if k != "state"})
    if shown["aborted"]:
        status = "cancelled"
    else:
        status = "error" if shown["chatError"] is not None else f"completed/{shown['finishReason']}"
    on_tool_call = sorted(shown["onToolCall"])
    return {"parts": parts, "data": data, "errors": shown["errors"], "status": status, "on_tool_call": on_tool_call}


def _ui_view(neutral: dict[str, Any]) -> dict[str, Any]:
    """Parts (no parent ids), data, errors, status; a call's input is its parsed argument text.

    The format has no state, annotations, artifacts or step metadata (its
    steps are model turns, not the run's steps). Data parts sit between the
    other parts, where they end the text part before them: adjacent text
    parts are compared joined. A call whose arguments never finished ends
    as an input error (so ``useChat`` never hands it to ``onToolCall``,
    which gets every call announced as ready).
    """
    parts = []
    for part in neutral["parts"]:
        kind = part["type"]
        if kind in ("text", "reasoning"):
            parts.append({"type": kind, "text": part["text"]})
        elif kind == "tool-call":
            if part.get("announced") is False:
                part = _failed_call(part)
            keys = ("tool_call_id", "tool_name", "input", "has_result", "result", "is_error")
            parts.append({"type": kind, **{k: part[k] for k in keys}})
        elif kind == "source":
            parts.append({"type": kind, "id": part["id"], "url": part["url"], "title": part["title"]})
        else:
            parts.append({k: v for k, v in part.items() if k != "parent_id"})
    announced = [part["tool_call_id"] for part in _parts_of(neutral, "tool-call") if part.get("announced")]
    return {
        "parts": _merged_text_parts(parts),
        "data": neutral["data"],
        "errors": neutral["errors"],
        "status": _status(neutral),
        "on_tool_call": neutral.get("on_tool_call", sorted(announced)),
    }


# -- AG-UI --


def _agui_neutral(shown: dict[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    calls: dict[str, dict[str, Any]] = {}
    for message in shown["messages"]:
        if message["role"] == "reasoning":
            parts.append({"type": "reasoning", "text": message["content"]})
        elif message["role"] == "assistant":
            if message["content"]:
                parts.append({"type": "text", "text": message["content"]})
            for call in message["toolCalls"]:
                calls[call["id"]] = {
                    "type": "tool-call",
                    "tool_call_id": call["id"],
                    "tool_name": call["name"],
                    "args_text": call["arguments"],
                    "has_result": False,
                    "result": None,
                }
                parts.append(calls[call["id"]])
        elif message["role"] == "tool":
            calls[message["toolCallId"]].update(has_result=True, result=message["content"])
    custom: dict[str, list[Any]] = {"source": [], "file": [], "data": [], "annotations": []}
    for event in shown["custom"]:
        custom[event["name"]].append(event["value"])
    for source in custom["source"]:
        parts.append({"type": "source", "id": source["id"], "url": source["url"], "title": source.get("title")})
    for file in custom["file"]:
        parts.append({"type": "file", "data": file["data"], "mime_type": file["mimeType"]})
    outcome = shown["outcome"] or {}
    if shown["terminal"] == ["RUN_ERROR"]:
        status = "error"
    elif outcome.get("type") == "cancelled":
        status = "cancelled"
    else:
        status = "completed/tool-calls" if outcome.get("pendingToolCallIds") else "completed/stop"
    return {
        "parts": parts,
        "data": custom["data"],
        "annotations": [item for batch in custom["annotations"] for item in batch],
        "errors": [] if shown["runError"] is None else [shown["runError"]],
        "state": shown["state"],
        "steps": [{"message_id": name} for kind, name in shown["steps"] if kind == "STEP_STARTED"],
        "status": status,
        "ended": sorted(shown["toolCallsEnded"]),
    }


def _agui_view(neutral: dict[str, Any]) -> dict[str, Any]:
    """Text, reasoning, tool calls with results, sources, files, data, annotations, state, steps, outcome.

    AG-UI groups text by message (one per model turn) and tool calls by the
    message that made them, so text, reasoning, calls, sources and files are
    compared per kind, not interleaved. A result is message content: text, or
    the result's JSON. There is no is_error, artifact or parent id; a run
    ends at its error (RUN_ERROR carries the last error message). A call
    ends (``TOOL_CALL_END``) once announced as ready; one whose arguments
    never finished does not end before RUN_ERROR, and ends as it was before
    a cancelled run's RUN_FINISHED (which requires every call ended).
    """
    ended = [
        part["tool_call_id"]
        for part in _parts_of(neutral, "tool-call")
        if part.get("announced") or neutral["status"] == "cancelled"
    ]
    calls = [
        {k: part[k] for k in ("tool_call_id", "tool_name", "has_result", "result")} | {"args_text": _args_text(part)}
        for part in _parts_of(neutral, "tool-call")
    ]
    return {
        "text": _joined(neutral, "text"),
        "reasoning": _joined(neutral, "reasoning"),
        "tool_calls": calls,
        "sources": [{k: part[k] for k in ("id", "url", "title")} for part in _parts_of(neutral, "source")],
        "files": [{k: part[k] for k in ("data", "mime_type")} for part in _parts_of(neutral, "file")],
        "data": neutral["data"],
        "annotations": neutral["annotations"],
        "state": {} if neutral["state"] is None else neutral["state"],
        "steps": [step["message_id"] for step in neutral["steps"] if step["message_id"] is not None],
        "errors": neutral["errors"][-1:],
        "status": _status(neutral),
        "ended": neutral.get("ended", sorted(ended)),
    }


# -- OpenAI chat completions --


def _openai_neutral(shown: dict[str, Any]) -> dict[str, Any]:
    calls = [
        {"type": "tool-call", "tool_call_id": call["id"], "tool_name": call["name"], "args_text": call["arguments"]}
        for call in shown["tool_calls"]
    ]
    reason = shown["finish_reason"]
    if shown["errors"]:
        status = "error"
    elif reason == "length":  # what a cancelled run ends with: the turn did not finish
        status = "cancelled"
    else:
        status = "no finish_reason" if reason is None else f"completed/{reason.replace('_', '-')}"
    return {"parts": [{"type": "text", "text": shown["text"]}, *calls], "errors": shown["errors"], "status": status}


def _openai_view(neutral: dict[str, Any]) -> dict[str, Any]:
    """Text and tool calls (id, name, argument text); the first error ends the stream.

    Chat completions have no reasoning, tool results, sources, files, data,
    state or steps.
    """
    calls = [
        {"id": part["tool_call_id"], "name": part["tool_name"], "arguments": _args_text(part)}
        for part in _parts_of(neutral, "tool-call")
    ]
    text = _joined(neutral, "text")
    return {"text": text, "tool_calls": calls, "errors": neutral["errors"][:1], "status": _status(neutral)}


_CLIENT_NEUTRAL: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "data-stream": _aui_neutral,
    "assistant-transport": _aui_neutral,
    "ui-message-stream": _ui_neutral,
    "ag-ui": _agui_neutral,
    "openai": _openai_neutral,
    "openai-npm": _openai_neutral,
}
_VIEWS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "data-stream": _data_stream_view,
    "assistant-transport": _aui_view,
    "ui-message-stream": _ui_view,
    "ag-ui": _agui_view,
    "openai": _openai_view,
    "openai-npm": _openai_view,
}


def client_view(format_name: str, decoded: Decoded) -> dict[str, Any]:
    """What the client showed, projected for comparison (asserts it neither threw nor warned)."""
    return _VIEWS[format_name](_CLIENT_NEUTRAL[format_name](decoded.clean()))


def expected_view(format_name: str, message: AssistantMessage, status: str) -> dict[str, Any]:
    """What the Python side sent, projected onto what ``format_name`` carries."""
    return _VIEWS[format_name](expected_neutral(message, status, format_name))
