"""The demo's live mode: a real OpenAI-compatible model answers, with the demo's three tools.

Used when ``OPENAI_BASE_URL`` is set (or with ``--agent openai``; the ``openai`` client reads
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` itself). The model's stream (text, reasoning, tool
calls with their arguments) goes to the run through :mod:`assistant_stream_ce.adapters.openai`;
the tools it asks for run in parallel as the run's tool calls and return the scripted agent's
canned data, and each one is a task in the run state while it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ..create_run import RunController
from .agent import TOOL_DELAYS, TaskList, canned_result, task_titles

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["DEFAULT_MODEL", "SYSTEM_PROMPT", "TOOL_SCHEMAS", "LiveAgent"]

logger = logging.getLogger("assistant_stream_ce.demo")

DEFAULT_MODEL = "gpt-4o-mini"

SYSTEM_PROMPT = (
    "You help plan weekend trips. For the place the user names, call get_weather, find_events and "
    "estimate_travel, all three at once, then answer in at most four sentences."
)


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


_PLACE = {"type": "string", "description": "a city"}

#: The tools as the chat-completions API describes them.
TOOL_SCHEMAS = [
    _function("get_weather", "The weather forecast for a place this weekend.", {"place": _PLACE}, ["place"]),
    _function(
        "find_events",
        "What is on in a place this weekend.",
        {"place": _PLACE, "limit": {"type": "integer", "minimum": 1}},
        ["place"],
    ),
    _function("estimate_travel", "How long the trip to a place takes.", {"to": _PLACE}, ["to"]),
]


class LiveAgent:
    """Runs a chat with the model; ``await agent(controller, messages, ...)`` is a run's callback body."""

    def __init__(self, client: AsyncOpenAI, model: str = DEFAULT_MODEL, pace: float = 1.0) -> None:
        self.client = client
        self.model = model
        self.pace = pace

    async def __call__(
        self, controller: RunController, messages: Sequence[dict[str, str]], *, state_as_data: bool = False
    ) -> None:
        from ..adapters.openai import run_chat_completion_agent

        tasks = TaskList(controller, {"place": "", "tasks": []}, state_as_data)
        places: list[str] = []

        def tool(name: str) -> Any:
            async def run(**args: Any) -> Any:
                place = str(args.get("place") or args.get("to") or "there")
                if place not in places:
                    places.append(place)
                task_id = tasks.new_id(name)
                tasks.add(task_id, task_titles(place)[name], "running")
                await anyio.sleep(TOOL_DELAYS[name] * self.pace)
                tasks.set(task_id, "done")
                return canned_result(name, place)

            return run

        await run_chat_completion_agent(
            controller,
            self.client,
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, *messages],
            tool_functions={name: tool(name) for name in TOOL_DELAYS},
            model=self.model,
            tools=TOOL_SCHEMAS,
        )
        for place in places:
            controller.add_source(f"src-{place}", f"https://en.wikipedia.org/wiki/{place}", f"{place} on Wikipedia")
