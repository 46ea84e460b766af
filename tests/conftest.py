"""Shared test fixtures.

Every concurrency test runs on asyncio and on trio (AnyIO's pytest plugin,
through the ``anyio_backend`` fixture). Besides ``filterwarnings = error``
in pyproject, every test fails on what a leaked or badly cancelled task
leaves behind: an unraisable exception (which is also how a "coroutine ...
was never awaited" warning surfaces under the error filter), and asyncio's
"Task was destroyed but it is pending" / "Task exception was never
retrieved" log records.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest

from assistant_stream_ce import AssistantStreamChunk, Run


def pytest_collection_finish(session: pytest.Session) -> None:
    # Keep the per-test collection below fast: what exists after collection
    # (modules, plugins, test functions) is never garbage.
    gc.collect()
    gc.freeze()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def _no_leaked_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test on unraisable exceptions and asyncio's leaked-task reports.

    Autouse fixtures are set up first and torn down last, so the event loop of
    the test is closed by the time this collects garbage and looks.
    """
    unraisable: list[str] = []
    previous_hook = sys.unraisablehook

    def hook(info: sys.UnraisableHookArgs) -> None:
        unraisable.append(f"{info.err_msg or 'Exception ignored in'}: {info.object!r}: {info.exc_value!r}")
        previous_hook(info)

    monkeypatch.setattr(sys, "unraisablehook", hook)
    records = _Records()
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(records)
    try:
        yield
        gc.collect()
    finally:
        asyncio_logger.removeHandler(records)
    problems = unraisable + [f"asyncio logged: {message}" for message in records.messages]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


Consume = Callable[[Run], Awaitable[list[AssistantStreamChunk]]]


async def _consume_structured(run: Run) -> list[AssistantStreamChunk]:
    with anyio.fail_after(5):
        async with run as chunks:
            return [chunk async for chunk in chunks]


async def _consume_compatible(run: Run) -> list[AssistantStreamChunk]:
    with anyio.fail_after(5):
        return [chunk async for chunk in run]


@pytest.fixture(params=["structured", "compatible"])
def form(request: pytest.FixtureRequest) -> str:
    """How a test consumes its run: ``async with run as chunks`` or ``async for chunk in run``."""
    return str(request.param)


@pytest.fixture
def consume(form: str) -> Consume:
    """Read a whole run in the consumption ``form`` of the test."""
    return _consume_structured if form == "structured" else _consume_compatible
