"""LangGraph events folded into run state: the client's state always equals the server's.

The client state is the initial state with every emitted ``update-state``
operation applied (what the JS clients do). Runs put a checkpoint (a data
chunk holding the server's state) after every event, so the comparison holds
at each step, not only at the end. Every test runs with the functions
imported from ``assistant_stream_ce.modules.langgraph`` and from the package
root. LangGraph itself runs on asyncio only: graphs are streamed live on
asyncio and replayed from a recording on both backends.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Annotated, Any, TypedDict

import anyio
import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from assistant_stream_ce import DataChunk, RunController, UpdateStateChunk, create_run
from assistant_stream_ce.state import apply_operations

pytestmark = pytest.mark.anyio

Event = tuple[tuple[str, ...], str, Any]


@pytest.fixture(params=["assistant_stream_ce.modules.langgraph", "assistant_stream_ce"])
def lg(request: pytest.FixtureRequest) -> ModuleType:
    """The module the functions are imported from (both paths must work)."""
    return importlib.import_module(request.param)


def _snapshot(state: Any) -> Any:
    """A plain deep copy of the run state (or a part of it)."""
    if state is None or isinstance(state, (str, int, float, bool)):
        return state
    if hasattr(state, "items"):
        return copy.deepcopy(dict(state.items()))
    return copy.deepcopy(list(state))


class Observed:
    def __init__(self, server: Any, client: Any, operations: list[dict[str, Any]], checkpoints: list[Any]) -> None:
        self.server = server
        self.client = client
        self.operations = operations
        self.checkpoints = checkpoints


async def _observe(body: Callable[[RunController], Awaitable[None]], initial: Any = None) -> Observed:
    """Run ``body``; check the client state at every checkpoint and at the end."""
    server: list[Any] = []

    async def callback(controller: RunController) -> None:
        await body(controller)
        server.append(_snapshot(controller.state))

    client = initial
    operations: list[dict[str, Any]] = []
    checkpoints: list[Any] = []
    with anyio.fail_after(20):
        async with create_run(callback, state=initial) as chunks:
            async for chunk in chunks:
                if isinstance(chunk, UpdateStateChunk):
                    operations += chunk.operations
                    client = apply_operations(client, chunk.operations)
                elif isinstance(chunk, DataChunk):
                    assert client == chunk.data["checkpoint"]
                    checkpoints.append(client)
    assert client == server[0]
    return Observed(server[0], client, operations, checkpoints)


def _checkpoint(controller: RunController) -> None:
    controller.add_data({"checkpoint": _snapshot(controller.state)})


async def _feed(lg: ModuleType, controller: RunController, events: list[Event], **subgraph: Any) -> None:
    """What an application does with a graph's stream, one checkpoint per event."""
    for namespace, mode, payload in events:
        await anyio.lowlevel.checkpoint()
        target = lg.get_tool_call_subgraph_state(controller, namespace, **subgraph) if subgraph else controller.state
        lg.append_langgraph_event(target, namespace, mode, payload)
        _checkpoint(controller)


def _split(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 6))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _ai_message_as_state(chunks: list[AIMessageChunk]) -> dict[str, Any]:
    """What langchain itself makes of the chunks, as it is kept in the state."""
    merged = add_ai_message_chunks(chunks[0], *chunks[1:]).model_dump()
    merged["type"] = "ai"
    return merged


# -- message chunks without a graph ------------------------------------------------------------


async def test_text_chunks_merge_into_one_message(lg: ModuleType) -> None:
    for seed in range(4):
        await _check_text_chunks(lg, random.Random(seed))


async def _check_text_chunks(lg: ModuleType, rng: random.Random) -> None:
    text = "The quick brown fox jumps over the lazy dog, twice."
    chunks = [AIMessageChunk(content=piece, id="run-1") for piece in _split(text, rng)]

    async def body(controller: RunController) -> None:
        await _feed(lg, controller, [((), "messages", (chunk, {})) for chunk in chunks])

    seen = await _observe(body, initial={"messages": [{"type": "human", "content": "hi", "id": "h1"}]})
    assert seen.client["messages"][1] == _ai_message_as_state(chunks)
    assert seen.client["messages"][1]["content"] == text
    # The text grows by appends on the client, not by resending the message.
    appends = [op for op in seen.operations if op["type"] == "append-text"]
    assert (
        "".join(op["value"] for op in appends if op["path"] == ["messages", "1", "content"])
        == text[len(chunks[0].content) :]
    )
    assert [op["path"] for op in seen.operations if op["type"] == "set"] == [["messages", "1"]]


async def test_tool_call_chunks_merge_into_tool_calls(lg: ModuleType) -> None:
    for seed in range(4):
        await _check_tool_call_chunks(lg, random.Random(seed))


async def _check_tool_call_chunks(lg: ModuleType, rng: random.Random) -> None:
    first = '{"city": "Lisbon", "days": [1, 2]}'
    second = '{"q": "weather"}'
    chunks = [AIMessageChunk(content="Checking", id="m", tool_call_chunks=[])]
    for index, (name, call_id, args) in enumerate([("forecast", "c1", first), ("search", "c2", second)]):
        for n, piece in enumerate(_split(args, rng)):
            chunks.append(
                AIMessageChunk(
                    content="",
                    id="m",
                    tool_call_chunks=[
                        {
                            "name": name if n == 0 else None,
                            "id": call_id if n == 0 else None,
                            "args": piece,
                            "index": index,
                        }
                    ],
                )
            )
    chunks.append(AIMessageChunk(content="", id="m", response_metadata={"finish_reason": "tool_calls"}))

    async def body(controller: RunController) -> None:
        await _feed(lg, controller, [((), "messages", (chunk, {"langgraph_node": "agent"})) for chunk in chunks])

    seen = await _observe(body, initial={})
    [message] = seen.client["messages"]
    assert message == _ai_message_as_state(chunks)
    assert [(call["id"], call["name"], call["args"]) for call in message["tool_calls"]] == [
        ("c1", "forecast", {"city": "Lisbon", "days": [1, 2]}),
        ("c2", "search", {"q": "weather"}),
    ]
    assert message["response_metadata"] == {"finish_reason": "tool_calls"}
    assert len(seen.checkpoints) == len(chunks)


async def test_content_blocks_merge_by_index(lg: ModuleType) -> None:
    blocks = [
        [{"type": "thinking", "thinking": "Let me ", "index": 0}],
        [{"type": "thinking", "thinking": "think.", "index": 0}],
        [{"type": "text", "text": "Sun", "index": 1}],
        [{"type": "text", "text": "ny.", "index": 1}],
    ]
    chunks = [AIMessageChunk(content=content, id="m") for content in blocks]  # type: ignore[arg-type]

    async def body(controller: RunController) -> None:
        await _feed(lg, controller, [((), "messages", (chunk, {})) for chunk in chunks])

    seen = await _observe(body, initial={})
    assert seen.client["messages"][0]["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "index": 0},
        {"type": "text", "text": "Sunny.", "index": 1},
    ]


async def test_messages_are_replaced_by_id_or_tool_call_id(lg: ModuleType) -> None:
    events: list[Event] = [
        (
            (),
            "messages",
            (
                AIMessageChunk(
                    content="", id="m", tool_call_chunks=[{"name": "add", "id": "c1", "args": '{"a": 1}', "index": 0}]
                ),
                {},
            ),
        ),
        ((), "messages", (ToolMessage(content="pending", tool_call_id="c1"), {})),
        ((), "messages", (ToolMessage(content="2", tool_call_id="c1", artifact={"sum": 2}), {})),
        ((), "messages", (HumanMessage(content="draft", id="h"), {})),
        ((), "messages", (HumanMessage(content="final", id="h"), {})),
    ]

    async def body(controller: RunController) -> None:
        await _feed(lg, controller, events)

    seen = await _observe(body, initial={"messages": []})
    assert [(m["type"], m["content"]) for m in seen.client["messages"]] == [
        ("ai", ""),
        ("tool", "2"),
        ("human", "final"),
    ]
    assert seen.client["messages"][1]["artifact"] == {"sum": 2}


async def test_a_chunk_that_shrinks_a_field_replaces_the_message(lg: ModuleType) -> None:
    """Arguments that stop parsing move a tool call to invalid_tool_calls: the message is sent whole."""
    pieces = ['{"a": "x', '"', "[", ""]
    chunks = [
        AIMessageChunk(
            content="",
            id="m",
            tool_call_chunks=[
                {"name": "f" if n == 0 else None, "id": "c1" if n == 0 else None, "args": piece, "index": 0}
            ],
        )
        for n, piece in enumerate(pieces)
    ]

    async def body(controller: RunController) -> None:
        await _feed(lg, controller, [((), "messages", (chunk, {})) for chunk in chunks])

    seen = await _observe(body, initial={})
    [message] = seen.client["messages"]
    assert message == _ai_message_as_state(chunks)
    assert message["tool_calls"] == []
    assert message["invalid_tool_calls"][0]["args"] == '{"a": "x"['
    whole = [op for op in seen.operations if op["type"] == "set" and op["path"] == ["messages", "0"]]
    assert len(whole) == 2  # added, then replaced when its tool_calls shrank


async def test_updates_set_channels_but_not_messages(lg: ModuleType) -> None:
    events: list[Event] = [
        ((), "updates", {"planner": {"plan": {"steps": ["a"]}, "messages": [AIMessage("skip")]}}),
        ((), "updates", {"planner": {"plan": {"steps": ["a", "b"], "done": False}, "status": "working"}}),
        ((), "updates", {"noop": None, "__interrupt__": ()}),
        ((), "custom", {"ignored": True}),
    ]

    async def body(controller: RunController) -> None:
        await _feed(lg, controller, events)

    seen = await _observe(body, initial={"messages": []})
    assert seen.client == {"messages": [], "plan": {"steps": ["a", "b"], "done": False}, "status": "working"}


async def test_the_controller_itself_can_be_passed(lg: ModuleType) -> None:
    async def body(controller: RunController) -> None:
        lg.append_langgraph_event(controller, (), "messages", (AIMessageChunk(content="Hel", id="m"), {}))
        lg.append_langgraph_event(controller, (), "messages", (AIMessageChunk(content="lo", id="m"), {}))
        lg.append_langgraph_event(controller, (), "updates", {"n": {"k": 1}})

    seen = await _observe(body)  # no initial state: it starts as {}
    assert seen.client["messages"][0]["content"] == "Hello"
    assert seen.client["k"] == 1


# -- subgraph state of a tool call -------------------------------------------------------------


def _ai_with_calls(*names: str) -> dict[str, Any]:
    calls = [{"id": f"c{n}", "name": name, "args": {}} for n, name in enumerate(names, 1)]
    message: dict[str, Any] = AIMessage(content="", id="a1", tool_calls=calls).model_dump()  # type: ignore[arg-type]
    return message


async def test_first_subgraph_update_reaches_the_client(lg: ModuleType) -> None:
    """0.0.36 drops the updates made through the tool message it has just added."""

    async def body(controller: RunController) -> None:
        state = lg.get_tool_call_subgraph_state(
            controller, ("tools:task1",), "tools", {}, artifact_field_name="subgraph_state"
        )
        lg.append_langgraph_event(state, (), "updates", {"worker": {"answer": "ready"}})
        _checkpoint(controller)
        again = lg.get_tool_call_subgraph_state(
            controller, ("tools:task1",), "tools", {}, artifact_field_name="subgraph_state"
        )
        lg.append_langgraph_event(again, (), "messages", (AIMessageChunk(content="done", id="s1"), {}))

    seen = await _observe(body, initial={"messages": [_ai_with_calls("task_tool")]})
    [_, tool_message] = seen.client["messages"]
    assert tool_message["type"] == "tool"
    assert tool_message["tool_call_id"] == "c1"
    assert tool_message["name"] == "task_tool"
    assert tool_message["additional_kwargs"] == {"streaming": True}
    assert seen.checkpoints[0]["messages"][1]["artifact"] == {"subgraph_state": {"answer": "ready"}}
    sub = tool_message["artifact"]["subgraph_state"]
    assert sub["answer"] == "ready"
    assert sub["messages"][0]["content"] == "done"


async def test_subgraph_state_without_an_artifact_field(lg: ModuleType) -> None:
    async def body(controller: RunController) -> None:
        state = lg.get_tool_call_subgraph_state(controller, ("agent:1", "tools:2"), ["tools"], {"messages": []})
        lg.append_langgraph_event(state, (), "messages", (AIMessageChunk(content="a", id="x"), {}))
        lg.append_langgraph_event(state, (), "messages", (AIMessageChunk(content="b", id="x"), {}))

    seen = await _observe(body, initial={"messages": [_ai_with_calls("other", "research")]})
    assert seen.client["messages"][1]["tool_call_id"] == "c2"
    assert seen.client["messages"][1]["artifact"]["messages"][0]["content"] == "ab"


async def test_subgraph_state_falls_back_to_the_run_state(lg: ModuleType) -> None:
    """Other tools, other nodes, no tool calls: the events go into the run state itself."""
    picked: list[Any] = []

    async def body(controller: RunController) -> None:
        get = lg.get_tool_call_subgraph_state
        picked.append(_snapshot(get(controller, ("agent:1",), "tools", {"messages": []})))  # state was None
        controller.state["messages"].append(_ai_with_calls("search"))
        picked.append(_snapshot(get(controller, ("tools:1",), "tools", {}, tool_name=["research"])))
        is_tools = lambda names: names == ["tools"]  # noqa: E731
        picked.append(_snapshot(get(controller, ("tools:1",), is_tools, {}, tool_name="search")))
        picked.append(_snapshot(get(controller, ("tools:1",), "tools", {}, artifact_field_name="sub")))

    seen = await _observe(body)
    assert picked[0] == {"messages": []}
    assert picked[1] == {"messages": [_ai_with_calls("search")]}  # "search" is not one of tool_name
    assert picked[2] == {}  # the predicate matched "tools" and "search": a fresh tool message's artifact
    assert picked[3] == {}  # an existing tool message: its artifact gets the field
    assert seen.client["messages"][1]["artifact"] == {"sub": {}}


async def test_human_message_last_keeps_the_run_state(lg: ModuleType) -> None:
    async def body(controller: RunController) -> None:
        state = lg.get_tool_call_subgraph_state(controller, ("tools:1",), "tools", {})
        lg.append_langgraph_event(state, (), "updates", {"n": {"seen": True}})

    seen = await _observe(body, initial={"messages": [{"type": "human", "content": "hi"}]})
    assert seen.client == {"messages": [{"type": "human", "content": "hi"}], "seen": True}


# -- a real graph with a tool that runs a subgraph ----------------------------------------------


Script = Callable[[list[BaseMessage]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """A chat model that streams the replies of a script, in small pieces."""

    script: Script

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.script(messages))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        reply = self.script(messages)
        for word in str(reply.content).split(" "):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        for index, call in enumerate(reply.tool_calls):
            args = str(call["args"]).replace("'", '"')
            for start in range(0, len(args), 5):
                first = start == 0
                yield ChatGenerationChunk(
                    message=AIMessageChunk(
                        content="",
                        tool_call_chunks=[
                            {
                                "name": call["name"] if first else None,
                                "id": call["id"] if first else None,
                                "args": args[start : start + 5],
                                "index": index,
                            }
                        ],
                    )
                )


def _parent_script(messages: list[BaseMessage]) -> AIMessage:
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if not results:
        return AIMessage(
            "Let me look that up.",
            tool_calls=[
                {"id": "call_add", "name": "add", "args": {"a": 2, "b": 3}},
                {"id": "call_research", "name": "research", "args": {"topic": "Lisbon"}},
            ],
        )
    return AIMessage("Done: " + ", ".join(str(m.content) for m in results))


def _worker_script(messages: list[BaseMessage]) -> AIMessage:
    return AIMessage(f"{messages[-1].content} is sunny today")


class ParentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    status: str
    plan: dict[str, Any]


class ResearchState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    answer: str
    findings: dict[str, Any]


def _build_graph() -> Any:
    worker_model = ScriptedChatModel(script=_worker_script)
    parent_model = ScriptedChatModel(script=_parent_script)

    async def worker(state: ResearchState) -> ResearchState:
        reply = await worker_model.ainvoke(state["messages"])
        return {"messages": [reply], "answer": "ready", "findings": {"items": [{"source": "met office"}]}}

    research = StateGraph(ResearchState).add_node("worker", worker)
    research.add_edge(START, "worker")
    research.add_edge("worker", END)
    research_graph = research.compile()

    async def agent(state: ParentState) -> ParentState:
        reply = await parent_model.ainvoke(state["messages"])
        plan = {"steps": ["look up", "answer"], "meta": {"round": len(state["messages"])}}
        return {"messages": [reply], "status": "calling tools" if reply.tool_calls else "answered", "plan": plan}

    async def tools(state: ParentState) -> ParentState:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        results: list[AnyMessage] = []
        for call in last.tool_calls:
            if call["name"] == "research":
                out = await research_graph.ainvoke({"messages": [HumanMessage(call["args"]["topic"])]})
                content = out["messages"][-1].content
            else:
                content = str(call["args"]["a"] + call["args"]["b"])
            results.append(ToolMessage(content, tool_call_id=call["id"], name=call["name"]))
        return {"messages": results}

    def route(state: ParentState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    parent = StateGraph(ParentState).add_node("agent", agent).add_node("tools", tools)
    parent.add_edge(START, "agent")
    parent.add_conditional_edges("agent", route, ["tools", END])
    parent.add_edge("tools", "agent")
    return parent.compile()


GRAPH_INPUT = {"messages": [HumanMessage("What is the weather in Lisbon?", id="q1")]}
GRAPH_STATE = {"messages": [m.model_dump() for m in GRAPH_INPUT["messages"]]}
SUBGRAPH = {"subgraph_node": "tools", "default_state": {}, "artifact_field_name": "subgraph_state"}


def _stream(graph: Any) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    stream: AsyncIterator[tuple[tuple[str, ...], str, Any]] = graph.astream(
        GRAPH_INPUT, stream_mode=["messages", "updates"], subgraphs=True
    )
    return stream


@pytest.fixture(scope="module")
def recorded_events() -> list[Event]:
    """The graph's events, recorded once on asyncio to be replayed on any backend."""

    async def record() -> list[Event]:
        return [event async for event in _stream(_build_graph())]

    return asyncio.run(record())


def _check_graph_run(seen: Observed) -> None:
    messages = seen.client["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "tool", "ai"]
    assert messages[1]["content"] == "Let me look that up. "
    assert [(c["name"], c["args"]) for c in messages[1]["tool_calls"]] == [
        ("add", {"a": 2, "b": 3}),
        ("research", {"topic": "Lisbon"}),
    ]
    assert {m["tool_call_id"]: m["content"] for m in messages[2:4]} == {
        "call_add": "5",
        "call_research": "Lisbon is sunny today ",
    }
    assert messages[4]["content"].startswith("Done: ")
    assert seen.client["status"] == "answered"
    assert seen.client["plan"] == {"steps": ["look up", "answer"], "meta": {"round": 4}}
    # While the subgraph ran, its messages and updates were live inside the tool message on the client.
    nested = [
        c["messages"][2]["artifact"]["subgraph_state"]
        for c in seen.checkpoints
        if len(c["messages"]) > 2 and c["messages"][2].get("artifact")
    ]
    assert nested, "the subgraph's state never reached the client"
    assert nested[-1]["answer"] == "ready"
    assert nested[-1]["findings"] == {"items": [{"source": "met office"}]}
    assert nested[-1]["messages"][0]["content"] == "Lisbon is sunny today "
    growing = [n["messages"][0]["content"] for n in nested if n.get("messages")]
    assert growing[0] != growing[-1]  # it streamed in pieces


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_live_graph_state_reaches_the_client(lg: ModuleType) -> None:
    graph = _build_graph()

    async def body(controller: RunController) -> None:
        async for namespace, mode, payload in _stream(graph):
            state = lg.get_tool_call_subgraph_state(controller, namespace, **SUBGRAPH)
            lg.append_langgraph_event(state, namespace, mode, payload)
            _checkpoint(controller)

    _check_graph_run(await _observe(body, initial=GRAPH_STATE))


async def test_recorded_graph_state_reaches_the_client(lg: ModuleType, recorded_events: list[Event]) -> None:
    async def body(controller: RunController) -> None:
        await _feed(lg, controller, recorded_events, **SUBGRAPH)

    seen = await _observe(body, initial=GRAPH_STATE)
    _check_graph_run(seen)
    assert len(seen.checkpoints) == len(recorded_events)
