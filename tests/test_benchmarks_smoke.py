"""The benchmark code keeps working: our library's in-process workloads at a tiny size.

Nothing here is timed, and assistant-stream 0.0.36 is not needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, which holds benchmarks/

from benchmarks import floor, libs, machine, report, workloads

pytestmark = pytest.mark.anyio

TINY: dict[str, dict[str, Any]] = {
    "text-tight": {"deltas": 300, "pattern": "tight"},
    "text-yield": {"deltas": 300, "pattern": "yield"},
    "tools-tight": {"calls": 3, "pattern": "tight"},
    "tools-yield": {"calls": 3, "pattern": "yield"},
    "state-tight": {"updates": 50, "pattern": "tight"},
    "state-yield": {"updates": 50, "pattern": "yield"},
    "concurrent": {"runs": 20, "deltas": 5},
    "stalled": {"seconds": 0.05},
    "aclose": {"runs": 3},
    "aclose-cooperative": {"runs": 3, "cooperative": True},
}


def _workload(case: str) -> str:
    return case.split("-")[0]


@pytest.mark.parametrize("case", list(TINY))
async def test_workload_runs_on_our_library(case: str) -> None:
    figures = await workloads.WORKLOADS[_workload(case)](libs.Ours(), **TINY[case])
    assert figures
    assert all(isinstance(value, int | float) and value >= 0 for value in figures.values())


@pytest.mark.parametrize("pattern", ["tight", "yield"])
async def test_text_workload_delivers_every_delta(pattern: str) -> None:
    # What the throughput figures count must be the whole text, on the wire, in order.
    items = workloads.tokens(500)
    frames: list[bytes] = []

    async def callback(controller: Any) -> None:
        for item in items:
            controller.append_text(item)
            if pattern == "yield":
                await anyio.lowlevel.checkpoint()

    async with libs.Ours().wire(callback) as stream:
        while (frame := await stream.next()) is not None:
            frames.append(frame)
    lines = b"".join(frames).decode().splitlines()
    text = "".join(json.loads(line[2:]) for line in lines if line.startswith("0:"))
    assert text == "".join(items)
    assert lines[-1].startswith("d:")


@pytest.mark.parametrize("case", ["text-tight", "text-yield", "tools-yield", "state-tight"])
async def test_floor_runs(case: str) -> None:
    figures = await floor.FLOORS[_workload(case)](**TINY[case])
    assert figures["bytes"] > 0


async def test_report_renders_without_the_other_library(anyio_backend: str) -> None:
    measured = {case: {f"ours/{anyio_backend}": await workloads.WORKLOADS[_workload(case)](libs.Ours(), **params)}
                for case, params in TINY.items()}
    results = {
        "machine": machine.describe(),
        "quick": True, "seconds": 1.0, "inprocess": measured, "http": {}, "cases": TINY,
        "http_sizes": {"concurrency": [1, 2]}, "profiles": {},
    }
    text = report.markdown(results, None)
    assert "## Goals" in text
    assert "| 300 text deltas, tight loop: deltas/s |" in text
