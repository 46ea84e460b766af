"""A FastAPI app with a tool call that waits for approval, in every format (served for the approval tests).

Round 1 answers a user message with a call that needs approval (``book_train``)
and one that does not (``weather``); the next request carries the decision, and
the call continues with it. ``GET /ran`` lists the tool functions that ran.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from assistant_stream_ce import RunController, ToolApproval, ToolCall, create_run
from assistant_stream_ce.chat_request import (
    AssistantTransportRequest,
    ChatRequest,
    DataStreamRequest,
    RunAgentInput,
    read_chat_request,
)
from assistant_stream_ce.serialization import (
    AGUIResponse,
    AssistantTransportResponse,
    DataStreamResponse,
    UIMessageStreamResponse,
)

app = FastAPI()
ran: list[dict[str, Any]] = []


async def book_train(tool: ToolCall) -> dict[str, Any]:
    ran.append({"tool": tool.tool_name, "id": tool.tool_call_id, "args": tool.args})
    return {"booked": True, "to": tool.args["to"]}


async def weather(tool: ToolCall) -> dict[str, Any]:
    ran.append({"tool": tool.tool_name, "id": tool.tool_call_id, "args": tool.args})
    return {"celsius": 21}


def agent(approvals: list[ToolApproval]) -> Any:
    async def run(controller: RunController) -> None:
        if approvals:
            async with controller.tool_calls() as calls:
                for approval in approvals:
                    calls.start(approval.tool_name, book_train, approval=approval)
            controller.append_text("Done.")
            return
        controller.append_text("Booking the train.")
        async with controller.tool_calls() as calls:
            calls.start("book_train", book_train, args={"to": "Paris", "seats": 2}, needs_approval=True)
            calls.start("weather", weather, args={"city": "Paris"})

    return create_run(run)


@app.post("/chat")
async def chat(http: Request) -> UIMessageStreamResponse:
    request = await read_chat_request(http, ChatRequest)
    return UIMessageStreamResponse(agent(request.tool_approvals()), message_id=request.continued_message_id)


@app.post("/data-stream")
async def data_stream(http: Request) -> DataStreamResponse:
    request = await read_chat_request(http, DataStreamRequest)
    return DataStreamResponse(agent(request.tool_approvals()))


@app.post("/transport")
async def transport(http: Request) -> AssistantTransportResponse:
    request = await read_chat_request(http, AssistantTransportRequest)
    return AssistantTransportResponse(agent(request.tool_approvals()))


@app.post("/agent")
async def ag_ui(http: Request) -> AGUIResponse:
    request = await read_chat_request(http, RunAgentInput)
    return AGUIResponse(agent(request.tool_approvals()), thread_id=request.thread_id, run_id=request.run_id)


@app.get("/ran")
async def ran_calls() -> list[dict[str, Any]]:
    return ran
