"""Tool calls that wait for approval: what each round sends, what runs, and which approvals are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import msgspec
import pytest

from assistant_stream_ce import (
    RunController,
    ToolApproval,
    ToolApprovalError,
    ToolApprovalRequestChunk,
    ToolApprovalResponseChunk,
    ToolCall,
    ToolCallDeltaChunk,
    ToolResultChunk,
    create_run,
    set_approval_key,
)
from assistant_stream_ce.approval import APPROVAL_KEY_ENV
from assistant_stream_ce.assistant_stream_chunk import AssistantStreamChunk
from assistant_stream_ce.chat_request import ChatRequest, RunAgentInput
from assistant_stream_ce.modules.tool_call import create_tool_call
from assistant_stream_ce.serialization import (
    AGUIEncoder,
    DataStreamEncoder,
    OpenAIStreamEncoder,
    UIMessageStreamEncoder,
)
from assistant_stream_ce.serialization.stream_encoder import StreamEncoder

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def key() -> Iterator[None]:
    set_approval_key("test-key")
    yield
    set_approval_key(None)


async def _chunks(callback: Any) -> list[AssistantStreamChunk]:
    with anyio.fail_after(10):
        return [chunk async for chunk in create_run(callback)]


async def _frames(encoder: StreamEncoder, callback: Any) -> list[str]:
    with anyio.fail_after(10):
        return [frame async for frame in encoder.encode_stream(create_run(callback))]


def _sse(frames: list[str]) -> list[Any]:
    return [json.loads(frame[6:]) for frame in frames if frame.startswith("data: {")]


def _decided(request: ToolApprovalRequestChunk, name: str, args: dict[str, Any], approved: bool) -> ToolApproval:
    """What tool_approvals() makes of the decision on ``request`` (see test_tool_approvals_read_*)."""
    return ToolApproval(
        tool_call_id=request.tool_call_id,
        tool_name=name,
        args=dict(args),
        approved=approved,
        reason=None if approved else "no",
        approval_id=request.approval_id,
        signature=request.signature,
    )


CALLS = {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}, "d": {"n": 4.5}}


async def _round_one() -> dict[str, ToolApprovalRequestChunk]:
    async def run(controller: RunController) -> None:
        async with controller.tool_calls() as calls:
            for name, args in CALLS.items():
                calls.start(name, _never, args=args, tool_call_id=f"call-{name}", needs_approval=True)

    return {c.tool_call_id[5:]: c for c in await _chunks(run) if isinstance(c, ToolApprovalRequestChunk)}


async def _never(tool: ToolCall) -> None:
    raise AssertionError(f"{tool.tool_name} ran without approval")


async def test_round_one_announces_the_call_and_runs_nothing(anyio_backend: str) -> None:
    ran: list[str] = []

    async def book(tool: ToolCall) -> str:
        ran.append(tool.tool_call_id)
        return "booked"

    async def run(controller: RunController) -> None:
        async with controller.tool_calls() as calls:
            waiting = calls.start("book", book, args={"to": "Paris"}, tool_call_id="c1", needs_approval=True)
            calls.start("book", book, args={"to": "Rome"}, tool_call_id="c2")
        assert waiting.awaiting_approval
        with pytest.raises(RuntimeError, match="waits for approval"):
            await waiting

    chunks = await _chunks(run)
    assert ran == ["c2"]
    c1 = [chunk.type for chunk in chunks if getattr(chunk, "tool_call_id", None) == "c1"]
    assert c1 == ["tool-call-begin", "tool-call-delta", "tool-call-args-text-finish", "tool-approval-request"]


async def test_a_call_that_needs_approval_needs_its_arguments(anyio_backend: str) -> None:
    async def run(controller: RunController) -> None:
        with pytest.raises(ValueError, match="takes its arguments as args="):
            controller.start_tool_call("book", _never, needs_approval=True)

    await _chunks(run)


async def test_a_mixed_batch_runs_only_what_was_approved_and_keeps_call_order(anyio_backend: str) -> None:
    requests = await _round_one()
    ran: list[str] = []
    release = anyio.Event()

    async def tool(tool: ToolCall) -> dict[str, Any]:
        ran.append(tool.tool_name)
        if tool.tool_name == "a":
            await release.wait()  # the first call finishes last
        return {"ran": tool.tool_name, "args": tool.args}

    async def free(tool: ToolCall) -> str:
        ran.append(tool.tool_name)
        release.set()
        return "free"

    async def run(controller: RunController) -> None:
        async with controller.tool_calls() as calls:
            calls.start("a", tool, approval=_decided(requests["a"], "a", CALLS["a"], approved=True))
            calls.start("free", free, args={})
            calls.start("b", tool, approval=_decided(requests["b"], "b", CALLS["b"], approved=False))
            calls.start("d", tool, approval=_decided(requests["d"], "d", CALLS["d"], approved=True))

    chunks = await _chunks(run)
    results = [chunk for chunk in chunks if isinstance(chunk, ToolResultChunk)]
    order = [r.tool_call_id for r in results]
    assert order[0] == "call-a"
    assert order[2:] == ["call-b", "call-d"]
    assert results[0].result == {"ran": "a", "args": {"n": 1}}
    assert (results[2].result, results[2].is_error) == ("The user denied this tool call. Reason: no", True)
    assert results[3].result == {"ran": "d", "args": {"n": 4.5}}
    assert sorted(ran) == ["a", "d", "free"]
    # A continued call is not begun again: its decision stands in for the begin.
    assert not any(
        getattr(c, "tool_call_id", None) in {"call-a", "call-b", "call-d"}
        for c in chunks
        if c.type == "tool-call-begin"
    )
    responses = [c for c in chunks if isinstance(c, ToolApprovalResponseChunk)]
    assert [(r.tool_call_id, r.approved) for r in responses] == [("call-a", True), ("call-b", False), ("call-d", True)]


@pytest.mark.parametrize(
    "forge",
    ["other args", "other tool", "other call's signature", "unsigned", "made-up signature", "args mutated"],
)
async def test_a_forged_or_mismatched_approval_is_refused_and_nothing_runs(anyio_backend: str, forge: str) -> None:
    requests = await _round_one()
    approval = _decided(requests["a"], "a", CALLS["a"], approved=True)
    name = "a"
    match forge:
        case "other args":
            approval = msgspec.structs.replace(approval, args={"n": 2})
        case "other tool":
            approval = msgspec.structs.replace(approval, tool_name="b")
            name = "b"
        case "other call's signature":
            approval = msgspec.structs.replace(approval, signature=requests["b"].signature)
        case "unsigned":
            approval = ToolApproval(tool_call_id="call-a", tool_name="a", args=CALLS["a"], approved=True)
        case "made-up signature":
            approval = msgspec.structs.replace(approval, signature="A" * 43)
        case "args mutated":
            approval.args["n"] = 99
    refused: list[str] = []

    async def run(controller: RunController) -> None:
        try:
            controller.start_tool_call(name, _never, approval=approval)
        except ToolApprovalError as exc:
            refused.append(str(exc))

    chunks = await _chunks(run)
    assert len(refused) == 1
    assert "call-a" in refused[0]
    assert chunks == []


async def test_an_approval_used_for_another_tool_or_other_args_is_refused(anyio_backend: str) -> None:
    requests = await _round_one()
    approval = _decided(requests["a"], "a", CALLS["a"], approved=True)

    async def run(controller: RunController) -> None:
        with pytest.raises(ToolApprovalError, match="is for tool 'a', not 'b'"):
            controller.start_tool_call("b", _never, approval=approval)
        with pytest.raises(ToolApprovalError, match="differ from the ones the person decided on"):
            controller.start_tool_call("a", _never, approval=approval, args={"n": 7})
        with pytest.raises(ValueError, match="either with needs_approval=True or"):
            controller.start_tool_call("a", _never, approval=approval, needs_approval=True)

    assert await _chunks(run) == []


# -- reading the decision from each client's request ----------------------------------


def _chat_body(request: ToolApprovalRequestChunk, args: Any, approved: bool, **approval: Any) -> bytes:
    decided = {"id": request.approval_id, "signature": request.signature, "approved": approved, **approval}
    part = {"type": "tool-a", "toolCallId": request.tool_call_id, "state": "approval-responded", "input": args}
    assistant = {"id": "m1", "role": "assistant", "parts": [{**part, "approval": decided}]}
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "go"}]}
    return json.dumps({"messages": [user, assistant], "messageId": "m1"}).encode()


async def test_tool_approvals_read_the_ai_sdk_decision(anyio_backend: str) -> None:
    requests = await _round_one()
    body = _chat_body(requests["a"], {"n": 1.0}, False, reason="no")  # a JavaScript client writes 1.0 as 1
    request = msgspec.json.decode(body, type=ChatRequest)
    assert request.continued_message_id == "m1"
    assert request.tool_approvals() == [_decided(requests["a"], "a", {"n": 1.0}, approved=False)]
    part = request.messages[1].parts[0]
    assert part.approval is not None
    assert (part.approval.approved, part.approval.reason) == (False, "no")


@pytest.mark.parametrize("forge", ["altered args", "unknown id", "no signature"])
async def test_tool_approvals_refuse_what_does_not_verify(anyio_backend: str, forge: str) -> None:
    requests = await _round_one()
    match forge:
        case "altered args":
            body = _chat_body(requests["a"], {"n": 100}, True)
        case "unknown id":
            body = _chat_body(requests["a"], {"n": 1}, True, id="approval-call-zzz")
        case _:
            body = _chat_body(requests["a"], {"n": 1}, True, signature=None)
    with pytest.raises(ToolApprovalError) as refused:
        msgspec.json.decode(body, type=ChatRequest).tool_approvals()
    assert refused.value.status_code == 403


async def test_ag_ui_resume_maps_back_to_the_tool_call(anyio_backend: str) -> None:
    requests = await _round_one()
    token = f"{requests['b'].approval_id}.{requests['b'].signature}"
    call = {"id": "call-b", "type": "function", "function": {"name": "b", "arguments": '{"n":2}'}}
    body = {
        "threadId": "t",
        "runId": "r2",
        "messages": [{"id": "a1", "role": "assistant", "toolCalls": [call]}],
        "resume": [
            {"interruptId": token, "status": "resolved", "payload": {"approved": True}},
            {"interruptId": "a-graph-interrupt", "status": "resolved", "payload": {"answer": 42}},
        ],
    }
    request = msgspec.json.decode(json.dumps(body), type=RunAgentInput)
    approval = _decided(requests["b"], "b", CALLS["b"], approved=True)
    assert request.tool_approvals() == [approval]
    body["messages"][0]["toolCalls"][0]["function"]["arguments"] = '{"n":3}'  # type: ignore[index]
    with pytest.raises(ToolApprovalError, match="does not verify"):
        msgspec.json.decode(json.dumps(body), type=RunAgentInput).tool_approvals()


# -- the key ----------------------------------------------------------------------


async def test_an_approval_signed_under_another_key_is_refused(anyio_backend: str) -> None:
    requests = await _round_one()
    approval = _decided(requests["a"], "a", CALLS["a"], approved=True)
    approval.verify()
    set_approval_key(b"another key")
    with pytest.raises(ToolApprovalError, match="does not verify"):
        approval.verify()


def test_the_key_comes_from_the_environment() -> None:
    script = (
        "from assistant_stream_ce.approval import sign;"
        "print(sign('approval-c', 'c', 'book', {'b': 1, 'a': [1.0, 'x']}))"
    )
    env = {**os.environ, APPROVAL_KEY_ENV: "shared"}
    signatures = {
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True, text=True).stdout
        for _ in range(2)
    }
    assert len(signatures) == 1  # two workers with one key agree
    env.pop(APPROVAL_KEY_ENV)
    unset = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True, text=True)
    assert unset.stdout not in signatures  # a random key per process otherwise


def test_the_signature_is_the_ai_sdk_s() -> None:
    """The AI SDK's own signToolApproval (``ai``, ``toolApprovalSecret``) gives the same signature."""
    from conformance_helpers import NODE_DIR

    from assistant_stream_ce.approval import sign

    script = (
        "const m = await import('./node_modules/ai/dist/default-stop-condition-2oQvBMQu.js');"
        "const sign = Object.values(m).find((f) => f.name === 'maybeSignApproval');"
        "console.log(await sign({secret: 'test-key', approvalId: 'approval-c', toolCallId: 'c', toolName: 'book',"
        " input: {b: 1, a: [1.5, 'x\\u00e9'], z: {y: null}}}));"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], cwd=NODE_DIR, capture_output=True, check=True, text=True
    )
    assert done.stdout.strip() == sign("approval-c", "c", "book", {"b": 1, "a": [1.5, "x\u00e9"], "z": {"y": None}})


# -- what each format sends -------------------------------------------------------


async def _needs_approval(controller: RunController) -> None:
    controller.start_tool_call("book", _never, args={"to": "Paris"}, tool_call_id="c1", needs_approval=True)


async def test_each_format_ends_round_one_with_its_client_must_act_finish(anyio_backend: str) -> None:
    data = await _frames(DataStreamEncoder(), _needs_approval)
    assert data[-2].startswith("aui-tool-call-approval:")
    assert json.loads(data[-1][2:])["finishReason"] == "tool-calls"

    ui = _sse(await _frames(UIMessageStreamEncoder("m1"), _needs_approval))
    types = [frame["type"] for frame in ui]
    assert types.index("tool-approval-request") == types.index("tool-input-available") + 1
    assert ui[-1] == {"type": "finish", "finishReason": "tool-calls"}

    agui = _sse(await _frames(AGUIEncoder(thread_id="t", run_id="r"), _needs_approval))
    outcome = agui[-1]["outcome"]
    assert outcome["type"] == "interrupt"
    assert [(i["reason"], i["toolCallId"]) for i in outcome["interrupts"]] == [("tool_approval", "c1")]

    openai = _sse(await _frames(OpenAIStreamEncoder(), _needs_approval))
    assert openai[-1]["choices"][0]["finish_reason"] == "tool_calls"  # left for the client


async def test_on_finish_gets_the_continued_call_with_its_result(anyio_backend: str) -> None:
    requests = await _round_one()
    outcomes: list[Any] = []

    async def tool(tool: ToolCall) -> str:
        return "ran"

    async def run(controller: RunController) -> None:
        controller.start_tool_call("a", tool, approval=_decided(requests["a"], "a", CALLS["a"], approved=True))
        controller.start_tool_call("b", tool, approval=_decided(requests["b"], "b", CALLS["b"], approved=False))

    with anyio.fail_after(10):
        async for _ in create_run(run, on_finish=outcomes.append):
            pass
    (outcome,) = outcomes
    assert outcome.status == "completed"
    calls = [(c.tool_call_id, c.tool_name, c.args_text, c.result, c.is_error) for c in outcome.message.tool_calls]
    assert calls == [
        ("call-a", "a", '{"n":1}', "ran", False),
        ("call-b", "b", '{"n":2}', "The user denied this tool call. Reason: no", True),
    ]


async def test_a_call_whose_arguments_were_streamed_can_ask_for_approval(anyio_backend: str) -> None:
    async def callback(controller: RunController) -> None:
        call = await controller.add_tool_call("book", "c1")
        call.append_args_text('{"to": ')
        call.append_args_text('"Paris"}')
        with pytest.raises(TypeError):
            call.request_approval(["Paris"])  # type: ignore[arg-type]
        call.request_approval({"to": "Paris"})

    chunks = await _chunks(callback)
    assert "".join(chunk.args_text_delta for chunk in chunks if isinstance(chunk, ToolCallDeltaChunk)) == (
        '{"to": "Paris"}'
    )
    assert [chunk.type for chunk in chunks if not isinstance(chunk, ToolCallDeltaChunk)] == [
        "tool-call-begin",
        "tool-call-args-text-finish",
        "tool-approval-request",
    ]
    [request] = [chunk for chunk in chunks if isinstance(chunk, ToolApprovalRequestChunk)]
    assert request.tool_call_id == "c1"
    _decided(request, "book", {"to": "Paris"}, approved=True).verify()
    with pytest.raises(ToolApprovalError):
        _decided(request, "book", {"to": "Lisbon"}, approved=True).verify()


async def test_a_tool_call_stream_of_its_own_ends_with_its_approval_request(anyio_backend: str) -> None:
    stream, call = await create_tool_call("book", "c1")
    call.append_args_text('{"to": "Paris"}')
    call.request_approval({"to": "Paris"})
    with anyio.fail_after(10):
        assert [chunk.type async for chunk in stream][-1] == "tool-approval-request"
