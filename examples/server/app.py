"""The Python server of the examples: one FastAPI route answers the AI SDK's ``useChat``,
assistant-ui's data-stream runtime and an AG-UI client, each in the format it reads.

Without an API key the answers come from a scripted trip-planning agent (reasoning, text,
three tool calls in parallel, a live task list, sources); a prompt that mentions "error"
makes it fail, to show how each client displays an error. Asked to book ("Book a train to
Porto"), it asks first: ``book_train`` waits for the person's approval and the run ends there;
the client's next request carries the decision (signed by this server, verified here), and the
booking runs, or the denial goes out, and the answer goes on. With ``OPENAI_API_KEY`` set the
answers come from an OpenAI-compatible model (``OPENAI_BASE_URL`` and ``OPENAI_MODEL``
choose which) that can call the same three tools, and ``book_train``, which waits for the
person's approval there too.

``useChat`` runs are resumable: the answer keeps streaming into an in-memory store when
the page goes away, a reloaded page picks it up again (``GET /api/chat/{id}/stream``),
and the Stop button cancels it (``POST /api/chat/{id}/cancel``).

Run it (see examples/README.md): ``uvicorn app:app --port 8000`` in this folder, or
``hypercorn app:app --bind 127.0.0.1:8000 -k trio``. With ``FRONTEND_DIST`` set to a built
frontend (``npm run build`` makes ``dist/``), it serves that page too.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from assistant_stream_ce import (
    RunController,
    RunOutcome,
    ToolApproval,
    create_run,
    read_any_chat_request,
    to_openai_messages,
)
from assistant_stream_ce.any_request import AnyChatRequest, ClientRequest
from assistant_stream_ce.chat_request import ChatCompletionRequest, ChatRequest
from assistant_stream_ce.demo.agent import (
    BOOKING_TOOL,
    TOOL_NAMES,
    TaskList,
    ask_to_book,
    canned_result,
    continue_booking,
    plan_trip,
    wants_booking,
)
from assistant_stream_ce.resumable import (
    create_cancel_assistant_stream_response,
    create_in_memory_resumable_stream_store,
    create_resumable_assistant_stream_response,
    create_resumable_stream_context,
    create_resume_assistant_stream_response,
)
from assistant_stream_ce.serialization.ui_message_stream import UIMessageStreamEncoder

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("example")

#: Scales the scripted agent's delays: 0.2 is five times faster.
SCRIPTED_PACE = float(os.environ.get("SCRIPTED_PACE", "1"))

Agent = Callable[[RunController], Awaitable[None]]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The resumable runs of useChat live in this context's task group, for the app's lifetime.
    async with create_resumable_stream_context(store=create_in_memory_resumable_stream_store()) as streams:
        app.state.streams = streams
        # chat id -> (stream id, continued message id or None) of the answer being streamed
        app.state.running = {}
        yield


app = FastAPI(lifespan=lifespan)


def last_user_text(request: ClientRequest) -> str:
    """The text of the newest user message, whichever client sent it."""
    for message in reversed(to_openai_messages(request)):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return " ".join(part["text"] for part in content if part["type"] == "text")
    return ""


def decisions(request: ClientRequest) -> list[ToolApproval]:
    """The person's decisions on calls that waited for approval, verified (a 403 for one that does not verify)."""
    return [] if isinstance(request, ChatCompletionRequest) else request.tool_approvals()


def denied_in_browser(request: ClientRequest) -> bool:
    """Whether the newest message is the client's own result for the booking call.

    assistant-ui's runtime settles a call the person denies itself, with an error result that its
    next request carries; the denial is on the page already, and the agent only answers it.
    """
    messages = to_openai_messages(request)
    if not messages or messages[-1]["role"] != "tool":
        return False
    calls = {call["id"]: call["function"]["name"] for m in messages for call in m.get("tool_calls", ())}
    return calls.get(messages[-1]["tool_call_id"]) == BOOKING_TOOL


async def answer_denial(controller: RunController, state: dict[str, Any]) -> None:
    """The booking was denied in the browser: the task list says so, and the answer goes on."""
    tasks = TaskList(controller, state, state_as_data=False)
    tasks.set(BOOKING_TOOL, "denied")
    tasks.set("answer", "running")
    controller.append_text(f"Understood, I did not book the train to {state['place']}.")
    tasks.set("answer", "done")


def scripted_agent(incoming: AnyChatRequest, prompt: str) -> Agent:
    body = incoming.request
    approvals = decisions(body)
    state_as_data = incoming.format == "ui-message-stream"  # it has no state frames: data parts

    async def agent(controller: RunController) -> None:
        if approvals:  # the person decided on the booking: run it, or send the denial, and answer
            await continue_booking(controller, approvals[0], pace=SCRIPTED_PACE, state_as_data=state_as_data)
        elif isinstance(incoming.state, dict) and denied_in_browser(body):
            await answer_denial(controller, incoming.state)
        elif "error" in prompt.lower():
            controller.append_reasoning("The user wants to see an error.")
            raise RuntimeError("The travel service is unavailable (a scripted error).")
        elif wants_booking(prompt):  # book_train waits for approval: the run ends with it
            await ask_to_book(controller, prompt, pace=SCRIPTED_PACE, state_as_data=state_as_data)
        else:
            await plan_trip(controller, prompt, pace=SCRIPTED_PACE, state_as_data=state_as_data)

    return agent


def model_agent(request: ClientRequest) -> Agent:
    """An OpenAI-compatible model with the scripted agent's tools (their results are canned).

    Its calls to ``book_train`` ask for approval first; the request with the decision continues them.
    """
    from openai import AsyncOpenAI  # only needed with an API key: pip install openai

    from assistant_stream_ce.adapters.openai import run_chat_completion_agent

    def tool(name: str) -> Callable[..., Awaitable[Any]]:
        async def call(place: str, **_: Any) -> Any:
            return canned_result(name, place)

        return call

    async def book_train(to: str, train: str = "08:15", seats: int = 1) -> dict[str, Any]:
        return {"booked": True, "to": to, "train": train, "seats": seats}

    schema = {"type": "object", "properties": {"place": {"type": "string"}}, "required": ["place"]}
    tools = [{"type": "function", "function": {"name": name, "parameters": schema}} for name in TOOL_NAMES]
    booking = {"to": {"type": "string"}, "train": {"type": "string"}, "seats": {"type": "integer"}}
    booking_schema = {"type": "object", "properties": booking, "required": ["to"]}
    tools.append({"type": "function", "function": {"name": BOOKING_TOOL, "parameters": booking_schema}})
    system = {
        "role": "system",
        "content": "You plan trips. Call all three trip tools at once, then answer briefly. "
        f"To book a train, call {BOOKING_TOOL}: the user approves it first.",
    }
    approvals = decisions(request)  # before the run: one that does not verify is a 403

    async def agent(controller: RunController) -> None:
        async with AsyncOpenAI() as client:  # closed with the run, its connections too
            await run_chat_completion_agent(
                controller,
                client,
                messages=[system, *to_openai_messages(request)],
                tool_functions={**{name: tool(name) for name in TOOL_NAMES}, BOOKING_TOOL: book_train},
                needs_approval={BOOKING_TOOL},
                approvals=approvals,
                model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
                tools=tools,
            )

    return agent


@app.post("/api/chat")
async def chat(request: Request) -> Response:
    incoming = await read_any_chat_request(request)
    body = incoming.request
    prompt = last_user_text(body)
    agent = model_agent(body) if os.environ.get("OPENAI_API_KEY") else scripted_agent(incoming, prompt)

    def report(outcome: RunOutcome) -> None:
        # Here an application would save outcome.message (see to_ui_message and friends).
        logger.info("%s run for %r ended: %s", incoming.format, prompt, outcome.status)

    if not isinstance(body, ChatRequest):
        return incoming.respond(create_run(agent, state=incoming.state), on_finish=report)

    # useChat: a resumable run, under a new stream id that the chat's id leads to while it runs.
    # After an approval it continues the chat's last assistant message (continued_message_id).
    running: dict[str, tuple[str, str | None]] = request.app.state.running
    stream_id = secrets.token_urlsafe(16)
    running[body.id] = (stream_id, body.continued_message_id)

    def finished(outcome: RunOutcome) -> None:
        if body.id in running and running[body.id][0] == stream_id:
            del running[body.id]
        report(outcome)

    return await create_resumable_assistant_stream_response(
        context=request.app.state.streams,
        stream_id=stream_id,
        callback=agent,
        encoder=UIMessageStreamEncoder(body.continued_message_id),
        on_finish=finished,
    )


@app.get("/api/chat/{chat_id}/stream")
async def resume(chat_id: str, request: Request) -> Response:
    """useChat's ``resume``: the running answer from its start, or 204 when none runs."""
    if chat_id not in request.app.state.running:
        return Response(status_code=204)
    stream_id, message_id = request.app.state.running[chat_id]
    return await create_resume_assistant_stream_response(
        context=request.app.state.streams, stream_id=stream_id, encoder=UIMessageStreamEncoder(message_id)
    )


@app.post("/api/chat/{chat_id}/cancel")
async def cancel(chat_id: str, request: Request) -> Response:
    """Stop: a resumable run outlives its request, so it is cancelled by name."""
    if chat_id not in request.app.state.running:
        return Response(status_code=204)
    stream_id, _ = request.app.state.running[chat_id]
    return await create_cancel_assistant_stream_response(context=request.app.state.streams, stream_id=stream_id)


if os.environ.get("FRONTEND_DIST"):
    app.mount("/", StaticFiles(directory=os.environ["FRONTEND_DIST"], html=True), name="frontend")
