"""What a full (or ``--quick``) benchmark run measures, and with what sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: (library, backend) pairs, in table order: 0.0.36 runs on asyncio only.
TARGETS = (("ref", "asyncio"), ("ours", "asyncio"), ("ours", "trio"))
#: (library, server stack) pairs for HTTP; "bare" is the server floor (benchmarks.server.BareDataStream).
STACKS = (
    ("ref", "uvicorn"),
    ("ours", "uvicorn"),
    ("bare", "uvicorn"),
    ("ref", "uvicorn-httptools"),
    ("ours", "uvicorn-httptools"),
    ("bare", "uvicorn-httptools"),
    ("ref", "hypercorn-asyncio"),
    ("ours", "hypercorn-asyncio"),
    ("bare", "hypercorn-asyncio"),
    ("ours", "hypercorn-trio"),
    ("bare", "hypercorn-trio"),
)


@dataclass(frozen=True)
class Case:
    """One in-process measurement, on every target (and on the floor when it has one)."""

    name: str  # row key, e.g. "text-tight"
    workload: str
    params: dict[str, Any]
    repeat: int = 1  # processes per target; the one that took the least CPU time is kept
    floor: bool = False
    handoff: bool = False  # also the two-task hand-off floor (benchmarks.floor.HANDOFFS), on both backends


@dataclass(frozen=True)
class Plan:
    cases: tuple[Case, ...]
    http: dict[str, Any] = field(default_factory=dict)


def plan(quick: bool) -> Plan:
    """The full plan (about 7 minutes on an idle 2-core machine) or a smoke-sized one."""
    s = 10 if quick else 1
    repeat = 1 if quick else 3
    cases = (
        Case("text-tight", "text", {"deltas": 200_000 // s, "pattern": "tight"}, repeat, floor=True),
        Case("text-yield", "text", {"deltas": 200_000 // s, "pattern": "yield"}, repeat, floor=True, handoff=True),
        Case("tools-tight", "tools", {"calls": 200 // s, "pattern": "tight"}, floor=True),
        Case("tools-yield", "tools", {"calls": 200 // s, "pattern": "yield"}, floor=True),
        Case("state-tight", "state", {"updates": 50_000 // s, "pattern": "tight"}, floor=True),
        Case("state-yield", "state", {"updates": 50_000 // s, "pattern": "yield"}, floor=True),
        Case("concurrent", "concurrent", {"runs": 2_000 // s, "deltas": 50}),
        Case("stalled", "stalled", {"seconds": 0.3 if quick else 2.0}),
        Case("aclose", "aclose", {"runs": 300 // s}),
        Case("aclose-cooperative", "aclose", {"runs": 300 // s, "cooperative": True}),
    )
    http = {
        "deltas": 100_000 // s,
        "ttfb_requests": 100 // s,
        "concurrency": [20, 100] if quick else [100, 300, 1_000],
        "stream_deltas": 20,
        "pace": 0.05,
        "disconnects": 50 // s,
        # Fewer streams cost the server less CPU per round, so one round's figure is noisier: more rounds.
        "rounds": {20: 1, 100: 1} if quick else {100: 9, 300: 5, 1_000: 5},
    }
    return Plan(cases, http)
