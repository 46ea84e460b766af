"""A FastAPI app around a real LangGraph graph that interrupts, in every format (served for the interrupt tests).

The graph (an ``InMemorySaver`` checkpointer, one thread per conversation)
plans a trip, then ``interrupt()``s to ask whether to book the train; the
answer on the next request resumes it through :func:`langgraph_command`, and
it books or not. ``GET /booked`` lists the bookings the graph made.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from fastapi import FastAPI, Request
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

from assistant_stream_ce import RunController, create_run
from assistant_stream_ce.chat_request import AGUIResumeEntry, RunAgentInput, read_chat_request
from assistant_stream_ce.modules.langgraph import (
    LangGraphChatRequest,
    LangGraphDataStreamRequest,
    append_langgraph_event,
    langgraph_command,
)
from assistant_stream_ce.serialization import AGUIResponse, DataStreamResponse, UIMessageStreamResponse

QUESTION = {"question": "Book the 9:00 train to Paris?", "to": "Paris"}
booked: list[str] = []


class Trip(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    booking: str


def plan(state: Trip) -> dict[str, Any]:
    return {"messages": [AIMessage("There is a train to Paris at 9:00. ", id="plan")]}


def confirm(state: Trip) -> dict[str, Any]:
    answer = interrupt(QUESTION)
    if isinstance(answer, dict) and answer.get("approved") is True:
        booked.append("Paris")
        return {"messages": [AIMessage("Booked.", id="done")], "booking": "booked"}
    return {"messages": [AIMessage("I did not book it.", id="done")], "booking": "declined"}


builder = StateGraph(Trip)
builder.add_node("plan", plan)
builder.add_node("confirm", confirm)
builder.add_edge(START, "plan")
builder.add_edge("plan", "confirm")
builder.add_edge("confirm", END)
graph = builder.compile(checkpointer=InMemorySaver())

app = FastAPI()


async def run_graph(thread_id: str, text: str, resume: list[AGUIResumeEntry] | None) -> Any:
    """The run: the graph continued with the answers in ``resume``, else started on the user's ``text``."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    command = await langgraph_command(graph, config, resume)  # before the response starts: a bad answer is a 409
    graph_input = command if command is not None else {"messages": [HumanMessage(text)], "booking": ""}

    async def run(controller: RunController) -> None:
        async for namespace, mode, payload in graph.astream(
            graph_input, config, stream_mode=["messages", "updates"], subgraphs=True
        ):
            append_langgraph_event(controller, namespace, mode, payload)
            if mode == "updates":  # the text too, for the formats without state
                for update in payload.values():
                    for message in update.get("messages", ()) if isinstance(update, dict) else ():
                        controller.append_text(message.content)

    return create_run(run)


@app.post("/chat")
async def chat(http: Request) -> UIMessageStreamResponse:
    request = await read_chat_request(http, LangGraphChatRequest)
    run = await run_graph(request.id or "chat", request.messages[-1].text, request.resume)
    return UIMessageStreamResponse(run, message_id=request.continued_message_id)


@app.post("/data-stream")
async def data_stream(http: Request) -> DataStreamResponse:
    request = await read_chat_request(http, LangGraphDataStreamRequest)
    last = request.messages[-1].content
    text = last if isinstance(last, str) else "".join(part.text or "" for part in last)
    return DataStreamResponse(await run_graph(request.thread_id or "data", text, request.resume))


@app.post("/agent")
async def ag_ui(http: Request) -> AGUIResponse:
    request = await read_chat_request(http, RunAgentInput)
    content = request.messages[-1].content
    run = await run_graph(request.thread_id, content if isinstance(content, str) else "", request.resume)
    return AGUIResponse(run, thread_id=request.thread_id, run_id=request.run_id, state=request.state)


@app.get("/booked")
async def bookings() -> list[str]:
    return booked
