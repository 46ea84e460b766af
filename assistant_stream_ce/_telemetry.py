"""Optional OpenTelemetry spans: a run, each tool call, and what happened to the client.

Used only when ``opentelemetry-api`` is installed (the ``otel`` extra) and the
application has set a tracer provider; otherwise every function here returns
after one check of a module-level name, and no span is made.

Spans follow OpenTelemetry's context, which lives in contextvars: AnyIO copies
them into each task it starts (on asyncio and trio alike), so a tool call's
span is a child of its run's span.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

try:
    from opentelemetry import trace

    INSTALLED = True
except ImportError:  # the extra is not installed: no spans
    INSTALLED = False

TRACER_NAME = "assistant_stream_ce"
RUN_SPAN = "assistant_stream_ce.run"
TOOL_CALL_SPAN = "assistant_stream_ce.tool_call"

RUN_ID = "assistant_stream_ce.run.id"
RUN_STATUS = "assistant_stream_ce.run.status"
ERROR_TYPE = "error.type"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_IS_ERROR = "assistant_stream_ce.tool_call.is_error"

_NO_SPAN: contextlib.AbstractContextManager[None] = contextlib.nullcontext()  # reusable
_tracer: Tracer | None = None
_tracer_provider: object = None  # the provider ``_tracer`` came from


def _current_tracer() -> Tracer | None:
    """The tracer of the application's provider; None if OpenTelemetry is absent or no provider is set."""
    global _tracer, _tracer_provider
    if not INSTALLED:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    if provider is not _tracer_provider:
        _tracer = provider.get_tracer(TRACER_NAME)
        _tracer_provider = provider
    return _tracer


def span(
    name: str, attributes: Callable[[], Mapping[str, str | bool]]
) -> contextlib.AbstractContextManager[Span | None]:
    """A span made current for its block, or a block given None (and nothing done) when tracing is off.

    ``attributes`` are asked for only when the span is made. The caller records how the block ended:
    an exception leaving it is a backend's cancellation as often as a failure.
    """
    tracer = _current_tracer()
    if tracer is None:
        return _NO_SPAN
    return tracer.start_as_current_span(
        name, attributes=attributes(), record_exception=False, set_status_on_exception=False
    )


def set_attribute(key: str, value: str | bool) -> None:
    """Set an attribute on the current span, if one is recording."""
    if not INSTALLED:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attribute(key, value)


def add_event(target: Span | None, name: str, attributes: Mapping[str, Any] | None = None) -> None:
    """Add the event ``name`` to ``target`` (a span from :func:`span`; None when tracing is off)."""
    if target is not None and target.is_recording():
        target.add_event(name, attributes)


def ended(target: Span | None, status: str, error: BaseException | None) -> None:
    """Record how a run ended on its span: its status, and the type of its error if it failed."""
    if target is None:
        return
    target.set_attribute(RUN_STATUS, status)
    if error is not None:
        target.set_attribute(ERROR_TYPE, type(error).__qualname__)
        target.set_status(trace.Status(trace.StatusCode.ERROR, str(error) or None))
