"""The controller calls of the newer features: what they check, and what the merger does with them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from assistant_stream_ce import (
    AssistantStreamChunk,
    DataPartChunk,
    PreliminaryToolResultChunk,
    RunController,
    RunOutcome,
    ToolCall,
    ToolResultChunk,
    create_run,
)

pytestmark = pytest.mark.anyio


async def run_lagging(callback: Any, ready: anyio.Event) -> tuple[list[AssistantStreamChunk], RunOutcome]:
    """Run ``callback``; the consumer starts reading only once ``ready`` is set."""
    outcomes: list[RunOutcome] = []
    chunks: list[AssistantStreamChunk] = []
    with anyio.fail_after(10):
        async with create_run(callback, on_finish=outcomes.append) as stream:
            await ready.wait()
            chunks = [chunk async for chunk in stream]
    return chunks, outcomes[0]


async def test_a_lagging_client_gets_the_latest_preliminary_result(anyio_backend: str) -> None:
    yielded = anyio.Event()
    results: list[ToolResultChunk] = []

    async def count(tool: ToolCall) -> AsyncIterator[int]:
        for i in range(50):
            yield i
            await anyio.lowlevel.checkpoint()
        yielded.set()

    async def callback(c: RunController) -> None:
        results.append(await c.start_tool_call("count", count, args={}))

    chunks, outcome = await run_lagging(callback, yielded)
    preliminary = [chunk.result for chunk in chunks if isinstance(chunk, PreliminaryToolResultChunk)]
    assert preliminary[-1] == 49
    assert len(preliminary) < 50  # unsent ones were replaced by later ones
    assert results[0].result == 49  # the last value is the final result
    assert [chunk for chunk in chunks if isinstance(chunk, ToolResultChunk)] == results
    assert outcome.message.tool_calls[0].preliminary_results == preliminary


async def test_a_generator_that_yields_nothing_returns_none(anyio_backend: str) -> None:
    async def nothing(tool: ToolCall) -> AsyncIterator[int]:
        return
        yield 0

    async def callback(c: RunController) -> None:
        assert (await c.start_tool_call("nothing", nothing, args={})).result is None

    chunks = [chunk async for chunk in create_run(callback)]
    assert not [chunk for chunk in chunks if isinstance(chunk, PreliminaryToolResultChunk)]


async def test_a_lagging_client_gets_the_latest_version_of_a_data_part(anyio_backend: str) -> None:
    written = anyio.Event()

    async def callback(c: RunController) -> None:
        for pct in range(100):
            c.add_data_part("progress", {"pct": pct}, id="p")
        c.add_data_part("note", "a", transient=True)
        c.add_data_part("note", "b", transient=True)  # each transient part is an event of its own
        written.set()

    chunks, outcome = await run_lagging(callback, written)
    assert chunks == [
        DataPartChunk("progress", {"pct": 99}, "p"),
        DataPartChunk("note", "a", transient=True),
        DataPartChunk("note", "b", transient=True),
    ]
    assert [(part.name, part.data) for part in outcome.message.data_parts] == [("progress", {"pct": 99})]


async def test_provider_metadata_needs_the_part_it_belongs_to(anyio_backend: str) -> None:
    async def callback(c: RunController) -> None:
        with pytest.raises(RuntimeError, match="latest write was not text"):
            c.set_provider_metadata({"p": {}})
        c.append_text("hi")
        c.add_data({"x": 1})
        with pytest.raises(RuntimeError, match="latest write was not text"):
            c.set_provider_metadata({"p": {}})
        tool = await c.add_tool_call("t", "call_1")
        tool.close()
        with pytest.raises(RuntimeError, match="already finished"):
            c.set_provider_metadata({"p": {}}, tool_call_id="call_1")
        with pytest.raises(TypeError, match="maps each provider name to a dict"):
            c.set_provider_metadata({"p": 1})  # type: ignore[dict-item]

    async for _ in create_run(callback):
        pass


async def test_new_calls_check_what_they_get(anyio_backend: str) -> None:
    async def callback(c: RunController) -> None:
        with pytest.raises(ValueError, match="must not be negative"):
            c.add_usage(-1)
        with pytest.raises(TypeError, match="must be int"):
            c.add_usage(True)
        with pytest.raises(ValueError, match="severity"):
            c.add_warning("w", severity="critical")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must be a dict"):
            c.set_message_metadata(["not", "an", "object"])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not JSON"):
            c.set_message_metadata({"when": object()})
        with pytest.raises(ValueError, match="name must not be empty"):
            c.add_data_part("", 1)
        with pytest.raises(TypeError, match="title must be str"):
            c.add_document_source("d", None, "text/plain")  # type: ignore[arg-type]

    chunks = [chunk async for chunk in create_run(callback)]
    assert chunks == []
