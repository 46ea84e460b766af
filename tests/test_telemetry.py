"""OpenTelemetry spans of a run, its tool calls, and what happened to its client, on both backends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_http_response import Client, LineEncoder, serve

from assistant_stream_ce import RunController, create_run
from assistant_stream_ce.serialization.assistant_stream_response import AssistantStreamResponse

pytestmark = pytest.mark.anyio

RUN = "assistant_stream_ce.run"
TOOL = "assistant_stream_ce.tool_call"


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans go to this exporter for one test: the provider is the application's, without setting it globally."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    yield memory
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    spans = named(exporter, name)
    assert len(spans) == 1, spans
    return spans[0]


async def consume(run: Any) -> None:
    async with run as chunks:
        async for _ in chunks:
            pass


async def test_a_run_and_its_tool_calls_are_spans(exporter: InMemorySpanExporter) -> None:
    async def weather(tool: Any) -> str:
        return "sunny"

    seen_ids: list[str] = []

    async def callback(controller: RunController) -> None:
        seen_ids.append(controller.run_id)
        controller.start_tool_call("weather", weather, args={"city": "Oslo"}, tool_call_id="t1")
        controller.start_tool_call("weather", weather, args={"city": "Rome"}, tool_call_id="t2")

    run = create_run(callback)
    await consume(run)

    run_span = only(exporter, RUN)
    assert run_span.attributes is not None
    assert run_span.attributes["assistant_stream_ce.run.id"] == run.run_id == seen_ids[0]
    assert run_span.attributes["assistant_stream_ce.run.status"] == "completed"
    assert "error.type" not in run_span.attributes
    assert run_span.status.status_code is trace.StatusCode.UNSET
    tools = sorted(
        named(exporter, TOOL), key=lambda span: str(span.attributes and span.attributes["gen_ai.tool.call.id"])
    )
    assert [span.attributes for span in tools] == [
        {"gen_ai.tool.name": "weather", "gen_ai.tool.call.id": "t1", "assistant_stream_ce.tool_call.is_error": False},
        {"gen_ai.tool.name": "weather", "gen_ai.tool.call.id": "t2", "assistant_stream_ce.tool_call.is_error": False},
    ]
    assert run_span.context is not None
    for span in tools:
        assert span.parent is not None
        assert span.parent.span_id == run_span.context.span_id
        assert span.context is not None
        assert span.context.trace_id == run_span.context.trace_id


async def test_a_failing_tool_call_span_is_an_error(exporter: InMemorySpanExporter) -> None:
    async def broken(tool: Any) -> str:
        raise RuntimeError("no network")

    async def callback(controller: RunController) -> None:
        controller.start_tool_call("weather", broken, args={}, tool_call_id="t1")

    await consume(create_run(callback))

    tool = only(exporter, TOOL)
    assert tool.attributes is not None
    assert tool.attributes["assistant_stream_ce.tool_call.is_error"] is True
    run_span = only(exporter, RUN)
    assert run_span.attributes is not None
    assert run_span.attributes["assistant_stream_ce.run.status"] == "completed"  # the run goes on


async def test_a_failed_run_span_has_the_error_type(exporter: InMemorySpanExporter) -> None:
    async def callback(controller: RunController) -> None:
        raise ValueError("bad prompt")

    with pytest.raises(ValueError, match="bad prompt"):
        await consume(create_run(callback))

    run_span = only(exporter, RUN)
    assert run_span.attributes is not None
    assert run_span.attributes["assistant_stream_ce.run.status"] == "error"
    assert run_span.attributes["error.type"] == "ValueError"
    assert run_span.status.status_code is trace.StatusCode.ERROR


async def test_a_cancelled_run_span_and_its_cancelled_tool_call(exporter: InMemorySpanExporter) -> None:
    started = anyio.Event()

    async def forever(tool: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    async def callback(controller: RunController) -> None:
        controller.start_tool_call("wait", forever, args={}, tool_call_id="t1")
        controller.append_text("hi")
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with create_run(callback) as chunks:
            async for _ in chunks:
                await started.wait()
                break

    run_span = only(exporter, RUN)
    assert run_span.attributes is not None
    assert run_span.attributes["assistant_stream_ce.run.status"] == "cancelled"
    tool = only(exporter, TOOL)
    assert tool.attributes is not None
    assert tool.attributes["assistant_stream_ce.tool_call.is_error"] is True  # it ends with a cancelled result
    assert tool.parent is not None
    assert run_span.context is not None
    assert tool.parent.span_id == run_span.context.span_id


async def endless(controller: RunController) -> None:
    while True:
        controller.append_text("word ")
        await anyio.lowlevel.checkpoint()


async def test_a_disconnect_is_an_event_of_the_run_span(exporter: InMemorySpanExporter) -> None:
    client = Client()
    run = create_run(endless)
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, AssistantStreamResponse(run, LineEncoder()), client)
        await client.wait_for(lambda: len(client.messages) >= 3)
        client.disconnected.set()

    run_span = only(exporter, RUN)
    assert [event.name for event in run_span.events] == ["disconnect"]
    assert run_span.attributes is not None
    assert run_span.attributes["assistant_stream_ce.run.id"] == run.run_id
    assert run_span.attributes["assistant_stream_ce.run.status"] == "cancelled"


async def test_a_send_timeout_is_an_event_of_the_run_span(exporter: InMemorySpanExporter) -> None:
    client = Client(stall_after=3)
    await serve(AssistantStreamResponse(create_run(endless), LineEncoder(), send_timeout=0.05), client)

    run_span = only(exporter, RUN)
    assert [event.name for event in run_span.events] == ["send_timeout"]
    assert run_span.attributes is not None
    assert run_span.attributes["assistant_stream_ce.run.status"] == "cancelled"


async def test_without_a_tracer_provider_no_span_is_made() -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # OpenTelemetry's default
    seen: list[trace.Span] = []

    async def callback(controller: RunController) -> None:
        seen.append(trace.get_current_span())
        controller.append_text("hi")

    run = create_run(callback)
    await consume(run)
    assert seen == [trace.INVALID_SPAN]
    assert len(run.run_id) == 16


WITHOUT_OPENTELEMETRY = """
import sys
sys.modules["opentelemetry"] = None  # as if the package were not installed: importing it fails
import anyio
from assistant_stream_ce import create_run

async def weather(tool):
    return "sunny"

async def callback(controller):
    controller.start_tool_call("weather", weather, args={}, tool_call_id="t1")

async def main():
    async with create_run(callback) as chunks:
        names = [type(chunk).__name__ async for chunk in chunks]
    print(names[-1])

anyio.run(main)
from assistant_stream_ce import _telemetry
print(_telemetry.INSTALLED)
"""


def test_without_opentelemetry_installed_runs_and_tool_calls_work() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_OPENTELEMETRY], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["ToolResultChunk", "False"]
