"""LangGraph event streams folded into run state (assistant-stream 0.0.36's ``modules.langgraph``).

``graph.astream(..., stream_mode=["messages", "updates"], subgraphs=True)``
yields ``(namespace, type, payload)`` events. :func:`append_langgraph_event`
merges them into the run state, which the client mirrors: message chunks of
one AI message are merged into a single message (its text grows with
``append-text`` operations), other messages are added or replaced by id or
tool call id, and channel updates are set. :func:`get_tool_call_subgraph_state`
picks the part of the state that a tool's subgraph writes into: the artifact
of the tool message for that call.

Interrupts: given the controller itself, :func:`append_langgraph_event` sends
each ``interrupt()`` of the graph to the client as an interrupt data value
(``{"kind": "interrupt", "id", "reason": "langgraph_interrupt", "value"}``; AG-UI
finishes the run with it as an ``interrupt`` outcome), and
:func:`langgraph_command` turns the client's answers on the next request into
the ``Command(resume=...)`` that continues the graph.

Every write goes through the state proxies, so every change, however deep in
the message list, reaches the client (0.0.36 loses the ones made through a
tool message it has just added).

Needs the ``langgraph`` extra (``langchain-core``; ``langgraph`` for :func:`langgraph_command`).
``assistant_stream_ce.modules.langgraph`` (0.0.36's path) re-exports its names, and the package root
its two 0.0.36 functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from langchain_core.messages.ai import AIMessageChunk, add_ai_message_chunks
from langchain_core.messages.tool import ToolMessage
from langchain_core.runnables import RunnableConfig
from starlette.exceptions import HTTPException

from ..approval import split_token
from ..chat_request import AGUIResumeEntry, ChatRequest, DataStreamRequest
from ..create_run import RunController
from ..state import StateProxy

if TYPE_CHECKING:  # langgraph itself is only needed for interrupts
    from langgraph.pregel import Pregel
    from langgraph.types import Command, Interrupt

__all__ = [
    "LANGGRAPH_INTERRUPT_REASON",
    "InterruptResumeError",
    "LangGraphChatRequest",
    "LangGraphDataStreamRequest",
    "append_langgraph_event",
    "get_tool_call_subgraph_state",
    "interrupt_data",
    "langgraph_command",
]

#: The ``reason`` of a LangGraph interrupt as the client sees it.
LANGGRAPH_INTERRUPT_REASON: Final = "langgraph_interrupt"

_Path = tuple[str | int, ...]
_Edit = tuple[_Path, Any]


def _plain(value: Any) -> Any:
    """The plain value behind a state proxy (read only)."""
    return value._value() if isinstance(value, StateProxy) else value


def _put(container: Any, key: str | int, value: Any) -> None:
    """``container[key] = value``, where ``key == len(list)`` appends."""
    if isinstance(key, int) and key == len(container):
        container.append(value)
    else:
        container[key] = value


def _edits(old: Any, new: Any, path: _Path = ()) -> list[_Edit] | None:
    """The assignments that turn ``old`` into ``new``, or None if that needs a deletion.

    Containers are updated key by key and item by item, so that a growing
    string becomes an ``append-text`` and a growing list an append instead of
    a ``set`` of the whole message.
    """
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        if not old.keys() <= new.keys():
            return None
        edits: list[_Edit] = []
        for key, value in new.items():
            if key in old:
                nested = _edits(old[key], value, (*path, key))
                if nested is None:
                    return None
                edits += nested
            else:
                edits.append(((*path, key), value))
        return edits
    if isinstance(old, list) and isinstance(new, list):
        if len(new) < len(old):
            return None
        edits = []
        for index, value in enumerate(new):
            if index < len(old):
                nested = _edits(old[index], value, (*path, index))
                if nested is None:
                    return None
                edits += nested
            else:
                edits.append(((*path, index), value))
        return edits
    return [(path, new)]


def _update_message(messages: Any, index: int, new: dict[str, Any]) -> None:
    """Make ``messages[index]`` equal to ``new`` with the smallest writes it can."""
    edits = _edits(_plain(messages[index]), new)
    if edits is None:
        messages[index] = new
        return
    for path, value in edits:
        target = messages[index]
        for key in path[:-1]:
            target = target[key]
        _put(target, path[-1], value)


def _find_message(messages: Any, message: dict[str, Any]) -> int | None:
    """Index of the message with the same id, or the same tool call id."""
    message_id = message.get("id")
    tool_call_id = message.get("tool_call_id")
    for index, existing in enumerate(_plain(messages)):
        if not isinstance(existing, dict):
            continue
        if message_id is not None and existing.get("id") == message_id:
            return index
        if tool_call_id is not None and existing.get("tool_call_id") == tool_call_id:
            return index
    return None


def _merge_ai_chunk(existing: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    merged = add_ai_message_chunks(
        AIMessageChunk(**{**existing, "type": "AIMessageChunk"}),
        AIMessageChunk(**{**chunk, "type": "AIMessageChunk"}),
    ).model_dump()
    merged["type"] = "ai"
    return merged


def _append_message(state: Any, message: Any) -> None:
    if "messages" not in state:
        state["messages"] = []
    messages = state["messages"]
    message_dict: dict[str, Any] = message.model_dump()
    is_chunk = message_dict.get("type") == "AIMessageChunk"
    if is_chunk:
        message_dict["type"] = "ai"
    index = _find_message(messages, message_dict)
    if index is None:
        messages.append(message_dict)
    elif is_chunk:
        _update_message(messages, index, _merge_ai_chunk(_plain(messages[index]), message_dict))
    else:
        messages[index] = message_dict


def interrupt_data(interrupt: Interrupt) -> dict[str, Any]:
    """The data value that shows a LangGraph interrupt to the client.

    ``{"kind": "interrupt", "id": <LangGraph's interrupt id>, "reason":
    "langgraph_interrupt", "value": <what the graph passed to interrupt()>}``:
    a ``data-interrupt`` part in the UI message stream, a ``2:`` data frame in
    the data stream, a ``data`` frame in assistant transport; AG-UI finishes
    the run with it as an interrupt.
    """
    return {"kind": "interrupt", "id": interrupt.id, "reason": LANGGRAPH_INTERRUPT_REASON, "value": interrupt.value}


def append_langgraph_event(
    state: Any,
    _namespace: str | Sequence[str],
    type: str,
    payload: Any,
) -> None:
    """Fold one LangGraph stream event into ``state``.

    ``state`` is the run state (``controller.state``), a part of it (what
    :func:`get_tool_call_subgraph_state` returns), a plain dict, or the
    controller itself (its state; an empty dict if it has none yet).
    ``type`` is the stream mode of the event: for ``"messages"``, ``payload``
    is ``(message, metadata)`` and the message is added to
    ``state["messages"]`` (chunks of one AI message are merged); for
    ``"updates"``, ``payload`` maps node names to the channels they wrote,
    and every channel but ``messages`` is set on ``state``. Other event types
    are ignored. The namespace is not used: pick the state for it first.

    Given the controller, the graph's interrupts (the ``__interrupt__`` of a
    top-level update; a subgraph's reaches the top level too) go to the
    client as :func:`interrupt_data` values.
    """
    if isinstance(state, RunController):
        if type == "updates" and not _namespace:
            for interrupt in payload.get("__interrupt__", ()):
                state.add_data(interrupt_data(interrupt))
        if state.state is None:
            state.state = {}
        state = state.state
    if type == "messages":
        _append_message(state, payload[0])
    elif type == "updates":
        for channels in payload.values():
            if not isinstance(channels, dict):
                continue
            for channel, value in channels.items():
                if channel != "messages":
                    state[channel] = value


def _matches(name: str, wanted: str | list[str] | Callable[[list[str]], bool] | None) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return name == wanted
    if isinstance(wanted, list):
        return name in wanted
    return bool(wanted([name]))


def _tool_message_for(tool_call: Any, artifact: Any) -> dict[str, Any]:
    message: dict[str, Any] = ToolMessage(
        tool_call_id=tool_call["id"],
        name=tool_call["name"],
        content="",
        artifact=artifact,
        additional_kwargs={"streaming": True},
    ).model_dump()
    return message


def get_tool_call_subgraph_state(
    controller: RunController,
    namespace: Sequence[str],
    subgraph_node: str | list[str] | Callable[[list[str]], bool],
    default_state: dict[str, Any],
    *,
    artifact_field_name: str | None = None,
    tool_name: str | list[str] | None = None,
) -> Any:
    """The part of the run state that events of the subgraph at ``namespace`` go into.

    ``namespace`` is LangGraph's ``("node:task_id", ...)``. At the first of
    its nodes that ``subgraph_node`` names (a name, a list of names, or a
    predicate called with ``[name]``), the state's last message decides: an
    AI message whose last tool call is one of ``tool_name`` (any tool if
    None) gets a streaming tool message for that call, with ``default_state``
    as its artifact; a tool message's artifact is returned (its
    ``artifact_field_name`` entry when given, set to ``default_state`` when
    missing). Otherwise the run state itself is returned, set to
    ``default_state`` first if it is None.

    The result is a live view: what is written into it reaches the client.
    """
    if controller.state is None:
        controller.state = default_state
    state = controller.state
    for part in namespace:
        if not _matches(part.split(":")[0], subgraph_node):
            continue
        messages = state.get("messages")
        if not messages:
            return state
        last = messages[-1]
        if last.get("type") == "ai":
            tool_calls = last.get("tool_calls")
            if not tool_calls or not _matches(tool_calls[-1]["name"], tool_name):
                return state
            messages.append(_tool_message_for(tool_calls[-1], {} if artifact_field_name else default_state))
            last = messages[-1]
        if last.get("type") == "tool":
            if last.get("artifact") is None:
                last["artifact"] = {} if artifact_field_name else default_state
            artifact = last["artifact"]
            if artifact_field_name is None:
                return artifact
            if artifact_field_name not in artifact:
                artifact[artifact_field_name] = default_state
            return artifact[artifact_field_name]
    return state


class LangGraphChatRequest(ChatRequest):
    """``useChat``'s body with ``resume``: the answers to a graph's interrupts (sent as ``body: {resume}``)."""

    resume: list[AGUIResumeEntry] | None = None


class LangGraphDataStreamRequest(DataStreamRequest):
    """``useDataStreamRuntime``'s body with ``resume``: the answers to a graph's interrupts."""

    resume: list[AGUIResumeEntry] | None = None


class InterruptResumeError(HTTPException, ValueError):
    """An answer to an interrupt that the graph's thread is not waiting on (HTTP 409)."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)

    def __str__(self) -> str:
        return self.detail


async def langgraph_command(
    graph: Pregel[Any, Any, Any, Any], config: RunnableConfig, resume: Sequence[AGUIResumeEntry] | None
) -> Command[Any] | None:
    """The ``Command(resume=...)`` that gives the graph the client's answers, or None if there are none.

    ``resume`` holds the answers as AG-UI's resume entries (``interruptId``,
    ``status``, ``payload``): ``RunAgentInput.resume``, or the ``resume`` of
    :class:`LangGraphChatRequest` and :class:`LangGraphDataStreamRequest`.
    A resolved answer resumes its interrupt with its payload, a cancelled one
    with None; answers to tool approvals are left to ``tool_approvals()``.
    Each answer is checked against the interrupts the thread of ``config``
    waits on in the graph's checkpointer, which keeps them between the two
    requests: an answer to any other raises :class:`InterruptResumeError`.
    """
    answers = {
        entry.interrupt_id: entry.payload if entry.status == "resolved" else None
        for entry in resume or ()
        if split_token(entry.interrupt_id) is None
    }
    if not answers:
        return None
    from langgraph.types import Command

    pending = {interrupt.id for interrupt in (await graph.aget_state(config)).interrupts}
    for interrupt_id in answers:
        if interrupt_id not in pending:
            raise InterruptResumeError(f"the graph is not waiting on interrupt {interrupt_id!r}")
    return Command(resume=answers)
