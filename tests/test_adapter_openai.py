"""The OpenAI adapter against a fake provider, through the real ``openai`` client.

What is checked is what a client of the run receives: the chunks, in order,
the message they make, and what the real JS clients decode from them in each
wire format; and what the provider sees: the conversation sent back with the
tool results, and its connection closed when the run goes away.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from openai import AsyncOpenAI
from provider_fakes import (
    SDK_GENERATORS_ON_TRIO,
    FakeProvider,
    Reply,
    Tools,
    check_call_invariants,
    check_clients_decode,
    collect,
    leave_at_first_tool_args,
    openai_chunk,
    openai_tool_call,
    serving,
    trace_of,
)

from assistant_stream_ce import AssistantStreamChunk, RunController, RunOutcome, create_run
from assistant_stream_ce.adapters.openai import (
    ProviderStreamError,
    run_chat_completion_agent,
    stream_chat_completion,
)
from assistant_stream_ce.message import TextPart, ToolCallPart

pytestmark = [pytest.mark.anyio, SDK_GENERATORS_ON_TRIO]

USAGE = {"prompt_tokens": 81, "completion_tokens": 40, "total_tokens": 121}

ROUND_1 = Reply(
    [
        openai_chunk({"role": "assistant", "content": "", "refusal": None}),
        openai_chunk({"reasoning_content": "Two cities, "}),
        openai_chunk({"reasoning_content": "so two lookups."}),
        openai_chunk({"content": "Let me check "}),
        openai_chunk({"content": "both."}),
        *openai_tool_call(0, "call_lis", "get_weather", ['{"ci', 'ty": "Lis', 'bon"}']),
        *openai_tool_call(1, "call_opo", "get_weather", ['{"city"', ': "Porto"}']),
        openai_chunk({}, "tool_calls"),
        openai_chunk(None, usage=USAGE),
    ]
)
ROUND_2 = Reply(
    [
        openai_chunk({"role": "assistant", "content": None}, id="chatcmpl-2"),
        *openai_tool_call(0, "call_t1", "local_time", ['{"zone": "Europe/Lisbon"}']),
        *openai_tool_call(1, "call_t2", "local_time", ['{"zone": "Mars/', 'Olympus"}']),
        *openai_tool_call(2, "call_x", "book_flight", ["{}"]),
        openai_chunk({}, "tool_calls", id="chatcmpl-2"),
    ]
)
ROUND_3 = Reply(
    [
        openai_chunk({"role": "assistant", "content": ""}, id="chatcmpl-3"),
        openai_chunk({"content": "Lisbon: 21 °C, sunny, 14:05. "}, id="chatcmpl-3"),
        openai_chunk({"content": "Porto: 18 °C."}, id="chatcmpl-3"),
        openai_chunk({}, "stop", id="chatcmpl-3"),
    ]
)
FINAL_TEXT = "Let me check both.Lisbon: 21 °C, sunny, 14:05. Porto: 18 °C."


def _client(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0, timeout=10)


async def test_two_rounds_of_parallel_tool_calls(anyio_backend: str) -> None:
    provider = FakeProvider([ROUND_1, ROUND_2, ROUND_3])
    tools = Tools()
    outcomes: list[RunOutcome] = []
    conversation: list[dict[str, Any]] = []

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                conversation.extend(
                    await run_chat_completion_agent(
                        controller,
                        client,
                        model="gpt-4o-mini",
                        tools=[
                            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
                        ],
                        messages=[{"role": "user", "content": "Weather in Lisbon and Porto?"}],
                        tool_functions=tools.functions(),
                    )
                )

            chunks = await collect(create_run(agent, on_finish=outcomes.append))

    trace = trace_of(chunks)
    check_call_invariants(trace)
    assert [entry for entry in trace if entry[0] in ("text", "reasoning", "begin", "result")] == [
        ("reasoning", "Two cities, so two lookups."),
        ("text", "Let me check both."),
        ("begin", "call_lis", "get_weather"),
        ("begin", "call_opo", "get_weather"),
        ("result", "call_lis", {"city": "Lisbon", "celsius": 21, "sky": "sunny"}, False),
        ("result", "call_opo", {"city": "Porto", "celsius": 18, "sky": "cloudy"}, False),
        ("begin", "call_t1", "local_time"),
        ("begin", "call_t2", "local_time"),
        ("begin", "call_x", "book_flight"),
        ("result", "call_t1", "14:05", False),
        ("result", "call_t2", "unknown time zone 'Mars/Olympus'", True),
        ("result", "call_x", "unknown tool 'book_flight'", True),
        ("text", "Lisbon: 21 °C, sunny, 14:05. Porto: 18 °C."),
    ]
    # Porto's lookup finished first, yet Lisbon's result went out first (call order).
    assert tools.calls[:2] == [("get_weather", "Porto"), ("get_weather", "Lisbon")]

    [outcome] = outcomes
    assert outcome.status == "completed"
    await check_clients_decode(chunks, outcome)
    message = outcome.message
    assert "".join(p.text for p in message.parts if isinstance(p, TextPart)) == FINAL_TEXT
    calls = [p for p in message.parts if isinstance(p, ToolCallPart)]
    assert [(p.tool_call_id, p.args, p.args_finished, p.has_result) for p in calls] == [
        ("call_lis", {"city": "Lisbon"}, True, True),
        ("call_opo", {"city": "Porto"}, True, True),
        ("call_t1", {"zone": "Europe/Lisbon"}, True, True),
        ("call_t2", {"zone": "Mars/Olympus"}, True, True),
        ("call_x", {}, True, True),
    ]

    # The provider got the tool results back, in the shape OpenAI expects.
    assert provider.paths == ["/v1/chat/completions"] * 3
    assert [r["stream"] for r in provider.requests] == [True, True, True]
    second = provider.requests[1]["messages"]
    assert second[1] == {
        "role": "assistant",
        "content": "Let me check both.",
        "tool_calls": [
            {
                "id": "call_lis",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
            },
            {
                "id": "call_opo",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Porto"}'},
            },
        ],
    }
    assert [(m["tool_call_id"], json.loads(m["content"])) for m in second[2:]] == [
        ("call_lis", {"city": "Lisbon", "celsius": 21, "sky": "sunny"}),
        ("call_opo", {"city": "Porto", "celsius": 18, "sky": "cloudy"}),
    ]
    third = provider.requests[2]["messages"]
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in third[4:]] == [
        ("assistant", None, None),
        ("tool", "call_t1", "14:05"),
        ("tool", "call_t2", "unknown time zone 'Mars/Olympus'"),
        ("tool", "call_x", "unknown tool 'book_flight'"),
    ]
    assert conversation == [*third, {"role": "assistant", "content": "Lisbon: 21 °C, sunny, 14:05. Porto: 18 °C."}]


MALFORMED = {
    "not JSON": (None, '{"id": "chatcmpl-9", "choices": [{"index": 0, "delta": {"content": "tr'),
    "wrong shape": openai_chunk({"content": 42}),
    "tool args not text": openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 7}}]}),
}


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_chunk_ends_the_run_with_an_error(anyio_backend: str, bad: tuple[None, str]) -> None:
    provider = FakeProvider(
        [
            Reply(
                [
                    openai_chunk({"content": "Checking"}),
                    *openai_tool_call(0, "call_a", "get_weather", ['{"city": "Lis']),
                    bad,
                    openai_chunk({"content": "never seen"}),
                ]
            )
        ]
    )
    tools = Tools()
    chunks: list[AssistantStreamChunk] = []
    outcomes: list[RunOutcome] = []

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                await stream_chat_completion(controller, stream, tool_functions=tools.functions())

            with pytest.raises(ProviderStreamError, match="malformed chunk"):
                await collect(create_run(agent, on_finish=outcomes.append), chunks)

    trace = trace_of(chunks)
    assert trace[0] == ("text", "Checking")
    assert trace[1] == ("begin", "call_a", "get_weather")
    assert trace[-1][0] == "error"
    assert "the model provider sent a malformed chunk" in trace[-1][1]
    assert "never seen" not in str(trace)
    assert tools.calls == []  # the call's arguments never completed: the tool did not run
    [outcome] = outcomes
    assert outcome.status == "error"
    await check_clients_decode(chunks, outcome)  # an error frame, then a well-formed end


@pytest.mark.parametrize("form", ["async with", "async for"])
async def test_leaving_the_run_cancels_the_provider_request(anyio_backend: str, form: str) -> None:
    provider = FakeProvider(
        [
            Reply(
                [
                    openai_chunk({"content": "Thinking about it"}),
                    *openai_tool_call(0, "call_a", "get_weather", ['{"city": "Lis']),
                ],
                hang=True,
            )
        ]
    )
    tools = Tools()
    finished: list[str] = []

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                try:
                    stream = await client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
                    )
                    await stream_chat_completion(controller, stream, tool_functions=tools.functions())
                finally:
                    finished.append("agent")

            await leave_at_first_tool_args(create_run(agent), form)
            await provider.disconnected.wait()

    assert provider.hanging.is_set()
    assert finished == ["agent"]
    assert provider.completed == 0
    assert tools.calls == []


async def test_the_step_limit_stops_the_loop(anyio_backend: str) -> None:
    asks_again = [
        Reply([*openai_tool_call(0, f"call_{n}", "local_time", ['{"zone": "UTC"}']), openai_chunk({}, "tool_calls")])
        for n in range(3)
    ]
    provider = FakeProvider(asks_again)
    tools = Tools()
    conversation: list[dict[str, Any]] = []

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                conversation.extend(
                    await run_chat_completion_agent(
                        controller,
                        client,
                        model="m",
                        messages=[{"role": "user", "content": "time?"}],
                        tool_functions=tools.functions(),
                        max_steps=2,
                    )
                )

            chunks = await collect(create_run(agent))

    assert len(provider.requests) == 2
    assert [entry[1:] for entry in trace_of(chunks) if entry[0] == "result"] == [
        ("call_0", "14:05", False),
        ("call_1", "14:05", False),
    ]
    assert [m["role"] for m in conversation] == ["user", "assistant", "tool", "assistant", "tool"]


async def test_without_tool_functions_calls_are_left_to_the_client(anyio_backend: str) -> None:
    provider = FakeProvider([ROUND_1])

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:
            turns = []

            async def agent(controller: RunController) -> None:
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                turns.append(await stream_chat_completion(controller, stream))

            chunks = await collect(create_run(agent))

    trace = trace_of(chunks)
    assert [entry for entry in trace if entry[0] in ("begin", "args", "finish")] == [
        ("begin", "call_lis", "get_weather"),
        ("args", "call_lis", '{"city": "Lisbon"}'),
        ("begin", "call_opo", "get_weather"),
        ("args", "call_opo", '{"city": "Porto"}'),
        ("finish", "call_lis"),
        ("finish", "call_opo"),
    ]
    assert not [entry for entry in trace if entry[0] == "result"]
    [turn] = turns
    assert (turn.text, turn.reasoning, turn.finish_reason) == (
        "Let me check both.",
        "Two cities, so two lookups.",
        "tool_calls",
    )
    assert [(c.id, c.name, c.arguments, c.handle) for c in turn.tool_calls] == [
        ("call_lis", "get_weather", '{"city": "Lisbon"}', None),
        ("call_opo", "get_weather", '{"city": "Porto"}', None),
    ]


async def test_a_tool_that_times_out_gives_the_model_an_error(anyio_backend: str) -> None:
    provider = FakeProvider(
        [
            Reply([*openai_tool_call(0, "call_slow", "stall", ["{}"]), openai_chunk({}, "tool_calls")]),
            Reply([openai_chunk({"content": "It took too long."}), openai_chunk({}, "stop")]),
        ]
    )
    cleaned_up = anyio.Event()

    async def stall() -> str:
        try:
            await anyio.sleep_forever()
        finally:
            cleaned_up.set()
        raise AssertionError("unreachable")

    with anyio.fail_after(20):
        async with serving(provider) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                await run_chat_completion_agent(
                    controller,
                    client,
                    model="m",
                    messages=[{"role": "user", "content": "go"}],
                    tool_functions={"stall": stall},
                    tool_timeout=0.05,
                )

            chunks = await collect(create_run(agent))

    assert cleaned_up.is_set()
    assert [entry for entry in trace_of(chunks) if entry[0] in ("result", "text")] == [
        ("result", "call_slow", "tool 'stall' timed out after 0.05 s", True),
        ("text", "It took too long."),
    ]
    assert provider.requests[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_slow",
        "content": "tool 'stall' timed out after 0.05 s",
    }


async def test_the_usage_chunk_becomes_the_runs_usage(anyio_backend: str) -> None:
    usage = {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "completion_tokens_details": {"reasoning_tokens": 12},
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    reply = Reply([openai_chunk({"content": "Hi."}), openai_chunk({}, "stop"), openai_chunk(None, usage=usage)])
    outcomes: list[RunOutcome] = []

    with anyio.fail_after(20):
        async with serving(FakeProvider([reply])) as url, _client(url) as client:

            async def agent(controller: RunController) -> None:
                stream = await client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                await stream_chat_completion(controller, stream)

            await collect(create_run(agent, on_finish=outcomes.append))

    [outcome] = outcomes
    usage_seen = outcome.message.usage
    assert (usage_seen.input_tokens, usage_seen.output_tokens) == (120, 30)
    assert (usage_seen.reasoning_tokens, usage_seen.cached_input_tokens) == (12, 100)
