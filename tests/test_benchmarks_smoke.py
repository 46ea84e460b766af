"""The benchmark code keeps working: our library's in-process workloads, the floors, the server floor's
bytes and the HTTP client, at a tiny size.

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

from benchmarks import floor, http_bench, libs, machine, report, server, workloads

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

    async with libs.Ours().wire(callback) as wire:
        async for item in wire.items:
            frames.append(wire.frame(item))
        frames.append(wire.last())
    lines = b"".join(frames).decode().splitlines()
    text = "".join(json.loads(line[2:]) for line in lines if line.startswith("0:"))
    assert text == "".join(items)
    assert lines[-1].startswith("d:")


@pytest.mark.parametrize("case", ["text-tight", "text-yield", "tools-yield", "state-tight"])
async def test_floor_runs(case: str) -> None:
    figures = await floor.FLOORS[_workload(case)](**TINY[case])
    assert figures["bytes"] > 0


async def test_handoff_floor_moves_every_delta_to_the_consumer() -> None:
    figures = await floor.text_handoff(deltas=300, pattern="yield")
    # One frame per wake-up of the consumer: at most one per delta, and every delta's bytes in some frame.
    assert 1 <= figures["frames"] <= 300
    assert figures["bytes"] >= len("".join(workloads.tokens(300)).encode())


async def _get(app: Any, query: bytes) -> bytes:
    """The body an ASGI ``app`` sends for ``GET /stream?<query>``, driven in this task."""
    body: list[bytes] = []
    done = anyio.Event()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    with anyio.fail_after(10):
        await app(scope, receive, send)
    return b"".join(body)


def _text_and_finish(body: bytes) -> tuple[str, str]:
    lines = body.decode().splitlines()
    return "".join(json.loads(line[2:]) for line in lines if line.startswith("0:")), lines[-1]


async def test_server_floor_sends_what_our_response_sends() -> None:
    query = b"deltas=25&pace=0"
    bare = await _get(server.build_app("bare"), query)
    # Our run may coalesce deltas into fewer frames (trio sometimes runs the producer twice in a row).
    assert _text_and_finish(bare) == _text_and_finish(await _get(server.build_app("ours"), query))
    assert bare.count(b"\n") == 26  # one frame per delta, then the finish frame


def test_http_workloads_run_against_the_server_floor() -> None:
    sizes = {
        "deltas": 50,
        "ttfb_requests": 2,
        "concurrency": [5],
        "stream_deltas": 3,
        "pace": 0.001,
        "disconnects": 1,
        "rounds": {5: 2},
    }
    (figures,) = http_bench.run_stack(["bare"], "uvicorn", sizes).values()
    assert figures["concurrent_5"]["streams"] == 5
    assert figures["concurrent_5"]["rounds"] == 2
    assert 0 < figures["concurrent_5"]["ttfb_ms_p50"] <= figures["concurrent_5"]["stream_ms_p99"]
    assert "disconnect" not in figures  # the floor does not watch for disconnects


def test_report_states_each_goal_against_its_floor_or_0_0_36() -> None:
    def rate(value: float) -> dict[str, float]:
        return {"deltas_per_cpu_s": value, "deltas_per_s": value}

    def streams(ttfb_p99: float, cpu: float, stream_p99: float) -> dict[str, dict[str, float]]:
        level = {"ttfb_ms_p99": ttfb_p99, "server_cpu_ms_per_stream": cpu, "stream_ms_p99": stream_p99}
        return {
            "concurrent_100": level,
            "concurrent_1000": level,
            "disconnect": {"trials": 1, "not_cleaned": 0, "cleanup_ms_p99": 1.0},
        }

    text_yield = {
        "ref/asyncio": rate(30_000),
        "ours/asyncio": rate(80_000),
        "ours/trio": rate(70_000),
        "handoff/asyncio": rate(120_000),
        "handoff/trio": rate(80_000),
    }
    results: dict[str, Any] = {
        "inprocess": {"text-yield": text_yield},
        "http": {
            "ours/uvicorn": streams(500, 1.5, 1_600),
            "ref/uvicorn": streams(490, 1.3, 1_700),
            "bare/uvicorn": streams(400, 0.8, 1_200),
            "ours/hypercorn-trio": streams(1_000, 3.0, 2_000),
            "bare/hypercorn-trio": streams(1_000, 2.0, 2_000),
        },
        "http_sizes": {"concurrency": [100, 1_000]},
    }
    rows = {g.goal: g for g in report.goals(results)}
    asyncio_row = rows["text throughput, yielding producer ≥ 85 % of the hand-off floor (asyncio)"]
    assert asyncio_row.measured == "66.7 % per CPU-second (80,000 vs 120,000 deltas/CPU-s); 0.0.36: 25.0 %"
    assert asyncio_row.met is False
    assert rows["text throughput, yielding producer ≥ 85 % of the hand-off floor (trio)"].met is True
    cpu_row = rows["1,000 paced streams: server CPU per stream ≤ 0.0.36's (uvicorn)"]
    assert cpu_row.measured == "1.50 vs 1.30 ms (1.15x 0.0.36's)"
    assert cpu_row.met is False
    assert rows["100 paced streams: whole-stream p99 ≤ 0.0.36's (uvicorn)"].met is True
    floor_row = rows["1,000 concurrent streams, p99 first byte ≤ 1.3x the server floor (uvicorn)"]
    assert floor_row.measured == "500 ms = 1.25x the bare ASGI app's 400 ms"
    assert floor_row.met is True
    assert rows["1,000 concurrent streams, p99 first byte ≤ 1.3x the server floor (hypercorn-trio)"].met is True
    assert not any("hypercorn-trio" in goal and "0.0.36" in goal for goal in rows)  # 0.0.36 has no trio
    assert report.unmet_stacks(results) == ["uvicorn"]


async def test_report_renders_without_the_other_library(anyio_backend: str) -> None:
    measured = {
        case: {f"ours/{anyio_backend}": await workloads.WORKLOADS[_workload(case)](libs.Ours(), **params)}
        for case, params in TINY.items()
    }
    results = {
        "machine": machine.describe(),
        "quick": True,
        "seconds": 1.0,
        "inprocess": measured,
        "http": {},
        "cases": TINY,
        "http_sizes": {"concurrency": [1, 2]},
        "profiles": {},
    }
    text = report.markdown(results, None)
    assert "## Goals" in text
    assert "| 300 text deltas, tight loop: deltas/s |" in text
