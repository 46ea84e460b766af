"""The Anthropic adapter against a fake provider, through the real ``anthropic`` client.

The same observations as for the OpenAI adapter: the chunks a client of the
run receives, in order; the conversation the provider gets back; the
provider's connection closed when the run goes away.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from anthropic import AsyncAnthropic
from provider_fakes import (
    SDK_GENERATORS_ON_TRIO,
    FakeProvider,
    Reply,
    Tools,
    anthropic_block,
    anthropic_event,
    anthropic_message,
    anthropic_text,
    anthropic_tool_use,
    check_call_invariants,
    check_clients_decode,
    collect,
    leave_at_first_tool_args,
    serving,
    trace_of,
)

from assistant_stream_ce import AssistantStreamChunk, RunController, RunOutcome, create_run
from assistant_stream_ce.adapters.anthropic import ProviderStreamError, run_messages_agent, stream_message
from assistant_stream_ce.message import ReasoningPart, TextPart, ToolCallPart

pytestmark = [pytest.mark.anyio, SDK_GENERATORS_ON_TRIO]

THINKING = {"type": "thinking", "thinking": "", "signature": ""}

ROUND_1 = Reply(
    anthropic_message(
        [
            anthropic_block(
                0,
                THINKING,
                [
                    {"type": "thinking_delta", "thinking": "Two cities, "},
                    {"type": "thinking_delta", "thinking": "so two lookups."},
                    {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"},
                ],
            ),
            anthropic_text(1, ["Let me check ", "both."]),
            anthropic_tool_use(2, "toolu_lis", "get_weather", ['{"ci', 'ty": "Lis', 'bon"}']),
            anthropic_tool_use(3, "toolu_opo", "get_weather", ['{"city"', ': "Porto"}']),
        ],
        "tool_use",
        "msg_01",
    ),
    done=None,
)
ROUND_2 = Reply(
    anthropic_message(
        [
            anthropic_tool_use(0, "toolu_t1", "local_time", ['{"zone": "Europe/Lisbon"}']),
            anthropic_tool_use(1, "toolu_t2", "local_time", ['{"zone": "Mars/', 'Olympus"}']),
            anthropic_tool_use(2, "toolu_x", "book_flight", []),
        ],
        "tool_use",
        "msg_02",
    ),
    done=None,
)
ROUND_3 = Reply(
    anthropic_message(
        [
            anthropic_text(0, ["Lisbon: 21 °C, sunny, 14:05. ", "Porto: 18 °C."]),
        ],
        "end_turn",
        "msg_03",
    ),
    done=None,
)


def _client(base_url: str) -> AsyncAnthropic:
    return AsyncAnthropic(base_url=base_url, api_key="test-key", max_retries=0, timeout=10)


async def test_two_rounds_of_parallel_tool_calls(anyio_backend: str) -> None:
    provider = FakeProvider([ROUND_1, ROUND_2, ROUND_3])
    tools = Tools()
    outcomes: list[RunOutcome] = []
    conversation: list[dict[str, Any]] = []

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                conversation.extend(
                    await run_messages_agent(
                        controller,
                        client,
                        model="claude-test-model",
                        max_tokens=1024,
                        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
                        messages=[{"role": "user", "content": "Weather in Lisbon and Porto?"}],
                        tool_functions=tools.functions(),
                    )
                )

            chunks = await collect(create_run(agent, on_finish=outcomes.append))

    trace = trace_of(chunks)
    check_call_invariants(trace)
    # A tool runs as soon as its block ends, so a result may go out before the next call begins;
    # results still keep call order, and a round's results come before the next round's calls.
    assert [entry for entry in trace if entry[0] in ("text", "reasoning", "result")] == [
        ("reasoning", "Two cities, so two lookups."),
        ("text", "Let me check both."),
        ("result", "toolu_lis", {"city": "Lisbon", "celsius": 21, "sky": "sunny"}, False),
        ("result", "toolu_opo", {"city": "Porto", "celsius": 18, "sky": "cloudy"}, False),
        ("result", "toolu_t1", "14:05", False),
        ("result", "toolu_t2", "unknown time zone 'Mars/Olympus'", True),
        ("result", "toolu_x", "unknown tool 'book_flight'", True),
        ("text", "Lisbon: 21 °C, sunny, 14:05. Porto: 18 °C."),
    ]
    assert [entry[1:] for entry in trace if entry[0] == "begin"] == [
        ("toolu_lis", "get_weather"),
        ("toolu_opo", "get_weather"),
        ("toolu_t1", "local_time"),
        ("toolu_t2", "local_time"),
        ("toolu_x", "book_flight"),
    ]
    assert trace.index(("result", "toolu_opo", {"city": "Porto", "celsius": 18, "sky": "cloudy"}, False)) < trace.index(
        ("begin", "toolu_t1", "local_time")
    )
    assert tools.calls[:2] == [("get_weather", "Porto"), ("get_weather", "Lisbon")]

    [outcome] = outcomes
    assert outcome.status == "completed"
    await check_clients_decode(chunks, outcome)
    parts = outcome.message.parts
    assert [p.text for p in parts if isinstance(p, ReasoningPart)] == ["Two cities, so two lookups."]
    assert "".join(p.text for p in parts if isinstance(p, TextPart)) == (
        "Let me check both.Lisbon: 21 °C, sunny, 14:05. Porto: 18 °C."
    )
    assert [(p.tool_call_id, p.args, p.args_finished, p.has_result) for p in parts if isinstance(p, ToolCallPart)] == [
        ("toolu_lis", {"city": "Lisbon"}, True, True),
        ("toolu_opo", {"city": "Porto"}, True, True),
        ("toolu_t1", {"zone": "Europe/Lisbon"}, True, True),
        ("toolu_t2", {"zone": "Mars/Olympus"}, True, True),
        ("toolu_x", {}, True, True),
    ]

    # The provider got the thinking (with its signature), the tool uses and their results back.
    assert provider.paths == ["/v1/messages"] * 3
    second = provider.requests[1]["messages"]
    assert second[1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Two cities, so two lookups.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"},
            {"type": "text", "text": "Let me check both."},
            {"type": "tool_use", "id": "toolu_lis", "name": "get_weather", "input": {"city": "Lisbon"}},
            {"type": "tool_use", "id": "toolu_opo", "name": "get_weather", "input": {"city": "Porto"}},
        ],
    }
    assert second[2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_lis",
                "is_error": False,
                "content": '{"city": "Lisbon", "celsius": 21, "sky": "sunny"}',
            },
            {
                "type": "tool_result",
                "tool_use_id": "toolu_opo",
                "is_error": False,
                "content": '{"city": "Porto", "celsius": 18, "sky": "cloudy"}',
            },
        ],
    }
    third = provider.requests[2]["messages"]
    assert [(r["tool_use_id"], r["content"], r["is_error"]) for r in third[4]["content"]] == [
        ("toolu_t1", "14:05", False),
        ("toolu_t2", "unknown time zone 'Mars/Olympus'", True),
        ("toolu_x", "unknown tool 'book_flight'", True),
    ]
    assert conversation == [
        *third,
        {"role": "assistant", "content": [{"type": "text", "text": "Lisbon: 21 °C, sunny, 14:05. Porto: 18 °C."}]},
    ]


MALFORMED = {
    "not JSON": ("content_block_delta", '{"type": "content_block_delta", "index": 1, "delta": {"type": "text_del'),
    "unknown block": anthropic_event("content_block_delta", index=7, delta={"type": "text_delta", "text": "x"}),
    "wrong shape": anthropic_event("content_block_delta", index=1, delta={"type": "text_delta", "text": 5}),
}


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_event_ends_the_run_with_an_error(anyio_backend: str, bad: tuple[str, str]) -> None:
    provider = FakeProvider(
        [
            Reply(
                [
                    *anthropic_text(0, ["Checking"]),
                    anthropic_event("content_block_start", index=1, content_block={"type": "text", "text": ""}),
                    anthropic_event(
                        "content_block_start",
                        index=2,
                        content_block={"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}},
                    ),
                    anthropic_event(
                        "content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": '{"ci'}
                    ),
                    bad,
                    anthropic_event("content_block_delta", index=1, delta={"type": "text_delta", "text": "never seen"}),
                ],
                done=None,
            )
        ]
    )
    tools = Tools()
    chunks: list[AssistantStreamChunk] = []
    outcomes: list[RunOutcome] = []

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                stream = await client.messages.create(
                    model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
                )
                await stream_message(controller, stream, tool_functions=tools.functions())

            with pytest.raises(ProviderStreamError, match="malformed chunk"):
                await collect(create_run(agent, on_finish=outcomes.append), chunks)

    trace = trace_of(chunks)
    assert trace[:2] == [("text", "Checking"), ("begin", "toolu_a", "get_weather")]
    assert trace[-1][0] == "error"
    assert "the model provider sent a malformed chunk" in trace[-1][1]
    assert "never seen" not in str(trace)
    assert tools.calls == []  # the call's arguments never completed: the tool did not run
    [outcome] = outcomes
    assert outcome.status == "error"
    await check_clients_decode(chunks, outcome)  # an error frame, then a well-formed end


async def test_leaving_the_run_cancels_the_provider_request(anyio_backend: str) -> None:
    provider = FakeProvider(
        [
            Reply(
                [
                    *anthropic_text(0, ["Thinking about it"]),
                    anthropic_event(
                        "content_block_start",
                        index=1,
                        content_block={"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}},
                    ),
                    anthropic_event(
                        "content_block_delta", index=1, delta={"type": "input_json_delta", "partial_json": '{"ci'}
                    ),
                ],
                hang=True,
                done=None,
            )
        ]
    )
    tools = Tools()
    finished: list[str] = []

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                try:
                    stream = await client.messages.create(
                        model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
                    )
                    await stream_message(controller, stream, tool_functions=tools.functions())
                finally:
                    finished.append("agent")

            await leave_at_first_tool_args(create_run(agent))
            await provider.disconnected.wait()

    assert provider.hanging.is_set()
    assert finished == ["agent"]
    assert provider.completed == 0
    assert tools.calls == []


async def test_without_tool_functions_calls_are_left_to_the_client(anyio_backend: str) -> None:
    provider = FakeProvider([ROUND_1])
    turns = []

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                stream = await client.messages.create(
                    model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
                )
                turns.append(await stream_message(controller, stream))

            chunks = await collect(create_run(agent))

    assert [entry for entry in trace_of(chunks) if entry[0] in ("begin", "args", "finish", "result")] == [
        ("begin", "toolu_lis", "get_weather"),
        ("args", "toolu_lis", '{"city": "Lisbon"}'),
        ("finish", "toolu_lis"),
        ("begin", "toolu_opo", "get_weather"),
        ("args", "toolu_opo", '{"city": "Porto"}'),
        ("finish", "toolu_opo"),
    ]
    [turn] = turns
    assert (turn.text, turn.reasoning, turn.stop_reason) == (
        "Let me check both.",
        "Two cities, so two lookups.",
        "tool_use",
    )
    assert [(c.id, c.name, c.arguments, c.handle) for c in turn.tool_calls] == [
        ("toolu_lis", "get_weather", '{"city": "Lisbon"}', None),
        ("toolu_opo", "get_weather", '{"city": "Porto"}', None),
    ]


async def test_the_messages_usage_becomes_the_runs_usage(anyio_backend: str) -> None:
    """Input tokens count the cache's too (Anthropic leaves them out); output tokens are the final count."""
    message = anthropic_message([anthropic_text(0, ["Hi."])], "end_turn", "msg_u")
    start = json.loads(message[0][1])
    start["message"]["usage"] |= {"cache_read_input_tokens": 300, "cache_creation_input_tokens": 20}
    message[0] = ("message_start", json.dumps(start))
    outcomes: list[RunOutcome] = []

    with anyio.fail_after(20):
        async with serving(FakeProvider([Reply(message)])) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                stream = await client.messages.create(
                    model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
                )
                await stream_message(controller, stream)

            await collect(create_run(agent, on_finish=outcomes.append))

    [outcome] = outcomes
    usage = outcome.message.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (472 + 300 + 20, 89, 300)
