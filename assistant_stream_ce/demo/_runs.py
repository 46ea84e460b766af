"""The demo server's book of runs: stop one by id, and report how each ended."""

from __future__ import annotations

import logging
from collections import OrderedDict

import anyio
import msgspec

from ..create_run import RunOutcome
from ..message import SourcePart

logger = logging.getLogger("assistant_stream_ce.demo")

#: Finished runs kept for ``GET /api/runs/{id}``; the oldest are forgotten first.
KEEP_FINISHED = 200


class RunReport(msgspec.Struct, rename="camel"):
    """How a run ended, as ``on_finish`` saw the message the client received."""

    run_id: str
    status: str
    text_chars: int = 0
    reasoning_chars: int = 0
    tool_results: int = 0
    tool_calls: int = 0
    sources: int = 0


class RunRecord:
    """One run: the cancel scope its response runs in, and its report once it ended."""

    def __init__(self, run_id: str, format_id: str) -> None:
        self.run_id = run_id
        self.format_id = format_id
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.report = RunReport(run_id, "running")
        self.stop_requested = False

    def on_finish(self, outcome: RunOutcome) -> None:
        """The run's ``on_finish`` hook: keep what the client received, and log it."""
        message = outcome.message
        calls = message.tool_calls
        self.report = RunReport(
            self.run_id,
            outcome.status,
            text_chars=len(message.text),
            reasoning_chars=len(message.reasoning),
            tool_results=sum(call.has_result for call in calls),
            tool_calls=len(calls),
            sources=sum(isinstance(part, SourcePart) for part in message.parts),
        )
        how = " by a stop request" if outcome.status == "cancelled" and self.stop_requested else ""
        logger.info(
            "run %s %s%s: on_finish got %d chars of text, %d/%d tool results, %d sources",
            self.run_id,
            outcome.status,
            how,
            self.report.text_chars,
            self.report.tool_results,
            self.report.tool_calls,
            self.report.sources,
        )
        self.done.set()

    def stop(self) -> None:
        """Cancel the run from outside its request (``POST /api/cancel/{id}``)."""
        if not self.done.is_set():
            self.stop_requested = True
            logger.info("run %s: stop requested", self.run_id)
            self.scope.cancel()


class RunBook:
    """The runs of one app, by id."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()

    def open(self, run_id: str, format_id: str) -> RunRecord:
        if run_id in self._runs:
            raise KeyError(run_id)
        self._forget_old()
        record = self._runs[run_id] = RunRecord(run_id, format_id)
        return record

    def get(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def _forget_old(self) -> None:
        finished = [key for key, record in self._runs.items() if record.done.is_set()]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED + 1)]:
            del self._runs[key]
