"""The demo's scripted agent: a trip-planning run that shows every kind of part, with no model behind it.

It thinks out loud (reasoning), answers (text), keeps a task list in the run
state, starts three tool calls side by side whose results go out in the order
the calls began although they finish in another order, and cites sources.

Asked to book a train, it asks first: ``book_train`` waits for the person's
approval (the run ends there), and the next request carries the decision:
approved, the booking runs and the answer goes on; denied, it does not run.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import anyio
import msgspec

from ..approval import ToolApproval
from ..create_run import RunController
from ..tool_calls import ToolCall, ToolFunction

__all__ = [
    "BOOKING_TOOL",
    "TOOL_DELAYS",
    "TOOL_NAMES",
    "TaskList",
    "ask_to_book",
    "canned_result",
    "continue_booking",
    "initial_state",
    "plan_trip",
    "task_titles",
    "topic_of",
    "wants_booking",
]

logger = logging.getLogger("assistant_stream_ce.demo")

#: The three tools, in the order the agent starts them.
TOOL_NAMES = ("get_weather", "find_events", "estimate_travel")

#: Seconds each tool takes at pace 1: the first call finishes last, the second first.
TOOL_DELAYS = {"get_weather": 1.8, "find_events": 0.6, "estimate_travel": 1.2}

_DEFAULT_TOPIC = "Lisbon"
_CAPITALIZED = re.compile(r"\b[A-Z][a-zA-Z\u00c0-\u024f-]{2,}\b")
_NOT_PLACES = {"Book", "Plan", "What", "How", "Can", "Could", "Please", "Tell", "Show", "The", "Give", "Find", "Trip"}


def topic_of(prompt: str) -> str:
    """The place the user asks about: the last capitalized word that is not a sentence opener."""
    words = [word for word in _CAPITALIZED.findall(prompt) if word not in _NOT_PLACES]
    return words[-1] if words else _DEFAULT_TOPIC


def task_titles(place: str) -> dict[str, str]:
    """The task of each step of a run, by id (the tools' tasks have the tools' names)."""
    return {
        "read": "Read the question",
        "get_weather": f"Check the weather in {place}",
        "find_events": f"Find events in {place}",
        "estimate_travel": f"Estimate travel time to {place}",
        "answer": "Write the answer",
    }


def initial_state(place: str, titles: dict[str, str] | None = None) -> dict[str, Any]:
    """The task list a scripted run starts with (the trip's tasks unless ``titles`` are given)."""
    titles = task_titles(place) if titles is None else titles
    return {
        "place": place,
        "tasks": [{"id": key, "title": title, "status": "pending"} for key, title in titles.items()],
    }


class TaskList:
    """The run state the page shows: ``{"place", "tasks": [{"id", "title", "status"}]}``.

    ``state_as_data`` also sends each change as a ``{"kind": "state"}`` data part, for formats
    without state frames (the AI SDK's UI message stream carries app data as data parts).
    """

    def __init__(self, controller: RunController, state: dict[str, Any], state_as_data: bool) -> None:
        self._controller = controller
        self._state = state
        self._state_as_data = state_as_data
        controller.state = state
        self._mirror()

    def _mirror(self) -> None:
        if self._state_as_data:
            self._controller.add_data({"kind": "state", "state": copy.deepcopy(self._state)})

    def _index(self, task_id: str) -> int:
        return next(i for i, task in enumerate(self._state["tasks"]) if task["id"] == task_id)

    def new_id(self, name: str) -> str:
        """``name``, or ``name:2``, ``name:3``... if a task already has it."""
        ids = {task["id"] for task in self._state["tasks"]}
        task_id, n = name, 1
        while task_id in ids:
            n += 1
            task_id = f"{name}:{n}"
        return task_id

    def add(self, task_id: str, title: str, status: str = "pending") -> None:
        task = {"id": task_id, "title": title, "status": status}
        self._state["tasks"].append(task)
        self._controller.state["tasks"].append(task)
        self._mirror()

    def set(self, task_id: str, status: str) -> None:
        index = self._index(task_id)
        self._state["tasks"][index]["status"] = status
        self._controller.state["tasks"][index]["status"] = status
        self._mirror()


class _Script:
    """One scripted run: the controller, the pace, and the task list."""

    def __init__(self, controller: RunController, state: dict[str, Any], pace: float, state_as_data: bool) -> None:
        self.controller = controller
        self.pace = pace
        self.tasks = TaskList(controller, state, state_as_data)

    async def pause(self, seconds: float) -> None:
        await anyio.sleep(seconds * self.pace)

    async def say(self, text: str, *, reasoning: bool = False) -> None:
        """Stream ``text`` a word at a time, as a model would."""
        append = self.controller.append_reasoning if reasoning else self.controller.append_text
        for word in re.findall(r"\S+\s*|\s+", text):
            append(word)
            await self.pause(0.025)


def canned_result(name: str, place: str) -> Any:
    """What each tool "finds": fixed data about ``place``."""
    if name == "get_weather":
        return {"place": place, "conditions": "sunny spells", "high_c": 23, "low_c": 15, "rain_chance": 0.1}
    if name == "find_events":
        return [
            {"name": f"{place} food market", "when": "Saturday 10:00"},
            {"name": "Open-air jazz by the river", "when": "Saturday 20:30"},
            {"name": "Old town walking tour", "when": "Sunday 11:00"},
        ]
    return {"to": place, "by_train_h": 2.5, "by_car_h": 3.0, "advice": "take the morning train"}


def _tool(script: _Script, name: str, place: str, *, stream_args: bool = False) -> ToolFunction:
    """The tool function for ``name``: marks its task, waits its delay, returns its canned result."""

    async def run(tool: ToolCall) -> Any:
        script.tasks.set(name, "running")
        try:
            if stream_args:  # this call streams its own arguments, as a model would
                text = msgspec.json.encode({"to": place, "from": "home", "modes": ["train", "car"]}).decode()
                for start in range(0, len(text), 8):
                    await tool.append_args_text(text[start : start + 8])
                    await script.pause(0.04)
            await script.pause(TOOL_DELAYS[name])
        except anyio.get_cancelled_exc_class():
            logger.info("tool %s (%s) cancelled before it finished", name, tool.tool_call_id)
            raise
        script.tasks.set(name, "done")
        return canned_result(name, place)

    return run


async def plan_trip(controller: RunController, prompt: str, *, pace: float = 1.0, state_as_data: bool = False) -> None:
    """The scripted run for ``prompt``; ``pace`` scales its delays (smaller is faster).

    ``state_as_data`` also sends each state change as a ``{"kind": "state"}`` data part, for
    formats that have no state frames (the AI SDK's UI message stream).
    """
    place = topic_of(prompt)
    script = _Script(controller, initial_state(place), pace, state_as_data)
    script.tasks.set("read", "running")
    await script.say(
        f"The user asks about {place}. A good answer needs the weather, what is on, and how to get there. "
        "Those three lookups do not depend on each other, so I will run them at the same time.",
        reasoning=True,
    )
    script.tasks.set("read", "done")
    await script.say(f"Let me check three things about {place} at once.\n\n")

    async with controller.tool_calls() as calls:
        weather = calls.start("get_weather", _tool(script, "get_weather", place), args={"place": place})
        events = calls.start("find_events", _tool(script, "find_events", place), args={"place": place, "limit": 3})
        travel = calls.start("estimate_travel", _tool(script, "estimate_travel", place, stream_args=True))
    forecast, happenings, trip = (await weather).result, (await events).result, (await travel).result

    script.tasks.set("answer", "running")
    controller.add_source("src-weather", f"https://example.com/weather/{place.lower()}", f"{place} forecast")
    controller.add_source("src-events", f"https://example.com/events/{place.lower()}", f"What's on in {place}")
    controller.add_source("src-place", f"https://en.wikipedia.org/wiki/{place}", f"{place} on Wikipedia")
    await script.say(
        f"Here is a plan for {place}. The weather looks good: {forecast['conditions']}, "
        f"{forecast['low_c']} to {forecast['high_c']} °C [1]. "
        f"Go by train ({trip['by_train_h']} h) and arrive for the {happenings[0]['name']} on "
        f"{happenings[0]['when']} [2]; end the day with the {happenings[1]['name'].lower()} and keep Sunday "
        f"morning for the {happenings[2]['name'].lower()} [3]."
    )
    script.tasks.set("answer", "done")


#: The tool that waits for the person's approval.
BOOKING_TOOL = "book_train"
_BOOKING_DELAY = 0.5
_BOOK = re.compile(r"\bbook\b", re.IGNORECASE)


def wants_booking(prompt: str) -> bool:
    """Whether the user asks to book (the run that asks for approval)."""
    return _BOOK.search(prompt) is not None


def _booking_state(place: str, read: str, booking: str) -> dict[str, Any]:
    titles = {"read": "Read the question", BOOKING_TOOL: f"Book the train to {place}", "answer": "Write the answer"}
    state = initial_state(place, titles)
    state["tasks"][0]["status"], state["tasks"][1]["status"] = read, booking
    return state


async def ask_to_book(
    controller: RunController, prompt: str, *, pace: float = 1.0, state_as_data: bool = False
) -> None:
    """Round one of a booking: the call is announced and waits for approval; it does not run in this run."""
    place = topic_of(prompt)
    script = _Script(controller, _booking_state(place, "running", "pending"), pace, state_as_data)
    await script.say(
        f"The user wants a train ticket to {place}. Booking spends their money, so I ask before I book.",
        reasoning=True,
    )
    script.tasks.set("read", "done")
    await script.say(f"I can book the 08:15 train to {place}. Shall I?")
    args = {"to": place, "train": "08:15", "seats": 1}
    controller.start_tool_call(BOOKING_TOOL, _never_before_approval, args=args, needs_approval=True)
    script.tasks.set(BOOKING_TOOL, "waiting")


async def _never_before_approval(tool: ToolCall) -> Any:
    raise AssertionError("a call that waits for approval does not run")


async def continue_booking(
    controller: RunController, approval: ToolApproval, *, pace: float = 1.0, state_as_data: bool = False
) -> None:
    """Round two: approved, the booking runs and the answer goes on; denied, it does not run."""
    place = str(approval.args.get("to", _DEFAULT_TOPIC))
    script = _Script(controller, _booking_state(place, "done", "waiting"), pace, state_as_data)

    async def book(tool: ToolCall) -> dict[str, Any]:
        script.tasks.set(BOOKING_TOOL, "running")
        await script.pause(_BOOKING_DELAY)
        logger.info("booked the %s train to %s (%s)", tool.args["train"], tool.args["to"], tool.tool_call_id)
        script.tasks.set(BOOKING_TOOL, "done")
        return {"booked": True, **tool.args, "reference": f"TRN-{tool.tool_call_id[-6:].upper()}"}

    call = await controller.start_tool_call(BOOKING_TOOL, book, approval=approval)
    script.tasks.set("answer", "running")
    if approval.approved:
        await script.say(
            f"Booked: the {approval.args['train']} train to {place}, reference {call.result['reference']}."
        )
    else:
        script.tasks.set(BOOKING_TOOL, "denied")
        await script.say(f"Understood, I did not book the train to {place}.")
    script.tasks.set("answer", "done")
