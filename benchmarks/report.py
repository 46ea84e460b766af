"""RESULTS.md and ratios.png from the figures of one benchmark run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REF, OURS, TRIO = "ref/asyncio", "ours/asyncio", "ours/trio"
#: (stack, whether 0.0.36 runs on it), in table order.
HTTP_COLUMNS = (
    ("uvicorn", True),
    ("uvicorn-httptools", True),
    ("hypercorn-asyncio", True),
    ("hypercorn-trio", False),
)
#: The yielding text producer's goal: this share of the two-task hand-off floor's rate.
HANDOFF_SHARE = 0.85
#: The p99 first byte of the most concurrent streams: at most this many times the bare ASGI app's.
SERVER_FLOOR_FACTOR = 1.3
#: Hand-written reading of the profiles, included in RESULTS.md when present.
ANALYSIS = "ANALYSIS.md"


@dataclass(frozen=True)
class Row:
    case: str
    key: str
    label: Callable[[dict[str, Any]], str]  # from the case's parameters
    better: str | None  # "higher", "lower" or None (for information only)
    unit: str = ""


ROWS = (
    Row("text-tight", "deltas_per_s", lambda p: f"{p['deltas']:,} text deltas, tight loop: deltas/s", "higher"),
    Row("text-tight", "deltas_per_cpu_s", lambda p: "&nbsp;&nbsp;deltas per CPU-second", "higher"),
    Row("text-tight", "bytes_per_s", lambda p: "&nbsp;&nbsp;wire MB/s", "higher", "MB"),
    Row("text-tight", "frames", lambda p: "&nbsp;&nbsp;frames written", None),
    Row("text-yield", "deltas_per_s", lambda p: f"{p['deltas']:,} text deltas, yielding producer: deltas/s", "higher"),
    Row("text-yield", "deltas_per_cpu_s", lambda p: "&nbsp;&nbsp;deltas per CPU-second", "higher"),
    Row("text-yield", "bytes_per_s", lambda p: "&nbsp;&nbsp;wire MB/s", "higher", "MB"),
    Row("text-yield", "frames", lambda p: "&nbsp;&nbsp;frames written", None),
    Row(
        "tools-tight",
        "calls_per_s",
        lambda p: f"{p['calls']:,} tool calls x 20 arg deltas + result, tight: calls/s",
        "higher",
    ),
    Row("tools-tight", "calls_per_cpu_s", lambda p: "&nbsp;&nbsp;calls per CPU-second", "higher"),
    Row(
        "tools-yield",
        "calls_per_s",
        lambda p: f"{p['calls']:,} tool calls x 20 arg deltas + result, yielding: calls/s",
        "higher",
    ),
    Row("tools-yield", "calls_per_cpu_s", lambda p: "&nbsp;&nbsp;calls per CPU-second", "higher"),
    Row(
        "state-tight",
        "updates_per_s",
        lambda p: f"{p['updates']:,} state `+=` on a nested string, tight: updates/s",
        "higher",
    ),
    Row("state-tight", "updates_per_cpu_s", lambda p: "&nbsp;&nbsp;updates per CPU-second", "higher"),
    Row(
        "state-yield",
        "updates_per_s",
        lambda p: f"{p['updates']:,} state `+=` on a nested string, yielding: updates/s",
        "higher",
    ),
    Row("state-yield", "updates_per_cpu_s", lambda p: "&nbsp;&nbsp;updates per CPU-second", "higher"),
    Row("concurrent", "seconds", lambda p: f"{p['runs']:,} concurrent runs x {p['deltas']} deltas: seconds", "lower"),
    Row("concurrent", "peak_rss_growth_mb", lambda p: "&nbsp;&nbsp;peak RSS growth, MB", "lower"),
    Row(
        "stalled",
        "peak_rss_growth_mb",
        lambda p: f"1 KB deltas for {p['seconds']:g} s, consumer reads 1 frame/ms: peak RSS growth, MB",
        "lower",
    ),
    Row("stalled", "produced", lambda p: "&nbsp;&nbsp;deltas produced", None),
    Row("stalled", "consumed", lambda p: "&nbsp;&nbsp;frames consumed", None),
    Row("stalled", "consumed_mb", lambda p: "&nbsp;&nbsp;MB delivered to the consumer", None),
    Row(
        "aclose",
        "finally_ms_p50",
        lambda p: f"`aclose()` after 10 chunks → callback's `finally` done, p50 ms ({p['runs']} runs)",
        "lower",
    ),
    Row("aclose", "finally_ms_p99", lambda p: "&nbsp;&nbsp;p99 ms", "lower"),
    Row("aclose", "finally_cpu_ms_p99", lambda p: "&nbsp;&nbsp;p99 of the CPU time in that span, ms", "lower"),
    Row("aclose-cooperative", "finally_ms_p50", lambda p: "same, callback also checks `is_cancelled`: p50 ms", "lower"),
    Row("aclose-cooperative", "finally_ms_p99", lambda p: "&nbsp;&nbsp;p99 ms", "lower"),
    Row(
        "aclose-cooperative",
        "finally_cpu_ms_p99",
        lambda p: "&nbsp;&nbsp;p99 of the CPU time in that span, ms",
        "lower",
    ),
)

FLOOR_ROWS = tuple(
    (f"{what}-{how}", f"{unit}_per_cpu_s")
    for what, unit in (("text", "deltas"), ("tools", "calls"), ("state", "updates"))
    for how in ("tight", "yield")
)

HTTP_ROWS_BEFORE = (
    ("throughput", "deltas_per_s", "one stream, {deltas:,} deltas: deltas/s", "higher"),
    ("throughput", "server_cpu_us_per_delta", "&nbsp;&nbsp;server CPU µs per delta", "lower"),
    ("first_byte", "ttfb_ms_p50", "time to first byte, sequential: p50 ms", "lower"),
    ("first_byte", "ttfb_ms_p99", "&nbsp;&nbsp;p99 ms", "lower"),
)
#: Rows for each level of concurrency; ``{n}`` is the number of streams.
HTTP_ROWS_PER_LEVEL = (
    ("concurrent_{n}", "ttfb_ms_p50", "{n:,} concurrent streams: first byte p50 ms", "lower"),
    ("concurrent_{n}", "ttfb_ms_p99", "&nbsp;&nbsp;first byte p99 ms", "lower"),
    ("concurrent_{n}", "stream_ms_p50", "&nbsp;&nbsp;whole stream p50 ms", "lower"),
    ("concurrent_{n}", "stream_ms_p99", "&nbsp;&nbsp;whole stream p99 ms", "lower"),
    ("concurrent_{n}", "server_rss_peak_mb", "&nbsp;&nbsp;server peak RSS MB", "lower"),
    ("concurrent_{n}", "server_cpu_ms_per_stream", "&nbsp;&nbsp;server CPU ms per stream", "lower"),
)
HTTP_ROWS_AFTER = (
    ("disconnect", "cleanup_ms_p50", "client disconnect → run's `finally` done: p50 ms", "lower"),
    ("disconnect", "cleanup_ms_p99", "&nbsp;&nbsp;p99 ms", "lower"),
    ("disconnect", "not_cleaned", "&nbsp;&nbsp;runs not cleaned up within 1 s", "lower"),
    (
        "disconnect-cooperative",
        "cleanup_ms_p50",
        "same, callback also checks `is_cancelled` and stops: p50 ms",
        "lower",
    ),
    ("disconnect-cooperative", "cleanup_ms_p99", "&nbsp;&nbsp;p99 ms", "lower"),
    ("disconnect-cooperative", "not_cleaned", "&nbsp;&nbsp;runs not cleaned up within 1 s", "lower"),
)


def http_rows(concurrency: list[int]) -> list[tuple[str, str, str, str]]:
    """The HTTP table's rows (section, key, label, better) for the measured levels of concurrency."""
    per_level = [
        (section.format(n=n), key, label.format(n=n), better)
        for n in concurrency
        for section, key, label, better in HTTP_ROWS_PER_LEVEL
    ]
    return [*HTTP_ROWS_BEFORE, *per_level, *HTTP_ROWS_AFTER]


# -- numbers -------------------------------------------------------------------------------------


def _get(results: dict[str, Any], case: str, target: str, key: str) -> float | None:
    value = results["inprocess"].get(case, {}).get(target, {}).get(key)
    return None if value is None else float(value)


def _http(results: dict[str, Any], lib: str, stack: str, section: str) -> dict[str, Any]:
    """One HTTP workload's figures for ``lib`` on ``stack`` (empty if it was not measured)."""
    figures: dict[str, Any] = results["http"].get(f"{lib}/{stack}", {}).get(section, {})
    return figures


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "MB":
        value /= 2**20
    if value >= 100_000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:,.0f}" if value == int(value) or value >= 1000 else f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value else "0"


def advantage(ours: float | None, ref: float | None, better: str | None) -> float | None:
    """How many times better ours is than 0.0.36 (> 1: better)."""
    if ours is None or ref is None or better is None:
        return None
    if better == "higher":
        return ours / ref if ref else None
    return ref / ours if ours else None


def _pct(value: float | None, floor: float | None) -> str:
    return "—" if value is None or not floor else f"{100 * value / floor:.1f} %"


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"**{value:.1f}x**" if value >= 1 else f"{value:.2f}x"


# -- goals ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    goal: str
    measured: str
    met: bool | None  # None: not measured
    case: str | None = None  # the in-process case to profile when not met
    stack: str | None = None  # the HTTP stack whose server to profile when not met


def unmet_stacks(results: dict[str, Any]) -> list[str]:
    """The HTTP stacks with a goal that was not met."""
    return list(dict.fromkeys(g.stack for g in goals(results) if g.met is False and g.stack))


def _handoff_goals(results: dict[str, Any]) -> list[Goal]:
    """The yielding producer against the two-task hand-off floor (5x 0.0.36 would be beyond the floor itself)."""
    out: list[Goal] = []
    ref = _get(results, "text-yield", REF, "deltas_per_cpu_s")
    for target, backend in ((OURS, "asyncio"), (TRIO, "trio")):
        handoff = _get(results, "text-yield", f"handoff/{backend}", "deltas_per_cpu_s")
        ours = _get(results, "text-yield", target, "deltas_per_cpu_s")
        share = None if ours is None or not handoff else ours / handoff
        reference = "" if ref is None else f"; 0.0.36: {_pct(ref, handoff)}"
        out.append(
            Goal(
                f"text throughput, yielding producer ≥ {100 * HANDOFF_SHARE:.0f} % of the hand-off floor ({backend})",
                f"{_pct(ours, handoff)} per CPU-second ({_fmt(ours)} vs {_fmt(handoff)} deltas/CPU-s){reference}",
                None if share is None else share >= HANDOFF_SHARE,
                "text-yield",
            )
        )
    return out


def _versus_ref_goals(results: dict[str, Any]) -> list[Goal]:
    """At each level of paced concurrent streams, on each stack 0.0.36 runs on: server CPU and whole-stream p99."""
    out: list[Goal] = []
    checks = (
        ("server_cpu_ms_per_stream", "server CPU per stream ≤ 0.0.36's", "ms"),
        ("stream_ms_p99", "whole-stream p99 ≤ 0.0.36's", "ms"),
    )
    for stack, has_ref in HTTP_COLUMNS:
        if not has_ref or f"ours/{stack}" not in results["http"]:
            continue
        for streams in results["http_sizes"]["concurrency"]:
            for key, what, unit in checks:
                figures = (_http(results, lib, stack, f"concurrent_{streams}").get(key) for lib in ("ours", "ref"))
                out.append(_at_most_ref(f"{streams:,} paced streams: {what} ({stack})", *figures, unit, stack))
    return out


def _at_most_ref(goal: str, ours: float | None, ref: float | None, unit: str, stack: str, note: str = "") -> Goal:
    """The goal that ours is at most 0.0.36's figure (lower is better)."""
    ratio = None if ours is None or not ref else ours / ref
    measured = f"{_fmt(ours)} vs {_fmt(ref)} {unit} ({_fmt(ratio)}x 0.0.36's{note})"
    return Goal(goal, measured, None if ratio is None else ratio <= 1, stack=stack)


def _server_floor_goals(results: dict[str, Any], streams: int) -> list[Goal]:
    """At the most concurrent streams, our p99 first byte against the bare ASGI app's on each stack, and
    against 0.0.36's where it runs (the burst's setup per request bounds it: 0.0.36 misses the factor too)."""
    out: list[Goal] = []
    for stack, has_ref in HTTP_COLUMNS:
        if f"ours/{stack}" not in results["http"]:
            continue
        bare = _http(results, "bare", stack, f"concurrent_{streams}").get("ttfb_ms_p99")
        ours = _http(results, "ours", stack, f"concurrent_{streams}").get("ttfb_ms_p99")
        factor = None if ours is None or not bare else ours / bare
        out.append(
            Goal(
                f"{streams:,} concurrent streams, p99 first byte ≤ {SERVER_FLOOR_FACTOR:g}x the server floor ({stack})",
                f"{_fmt(ours)} ms = {_fmt(factor)}x the bare ASGI app's {_fmt(bare)} ms",
                None if factor is None else factor <= SERVER_FLOOR_FACTOR,
                stack=stack,
            )
        )
        if not has_ref:
            continue
        ref = _http(results, "ref", stack, f"concurrent_{streams}").get("ttfb_ms_p99")
        ref_factor = None if ref is None or not bare else ref / bare
        goal = f"{streams:,} concurrent streams, p99 first byte ≤ 0.0.36's ({stack})"
        out.append(_at_most_ref(goal, ours, ref, "ms", stack, f"; 0.0.36 is {_fmt(ref_factor)}x the floor"))
    return out


def goals(results: dict[str, Any]) -> list[Goal]:
    """The goals, each stated against what bounds it: 0.0.36, the floors, or an absolute limit."""
    out: list[Goal] = []
    ref = _get(results, "text-tight", REF, "deltas_per_cpu_s")
    wall_ref = _get(results, "text-tight", REF, "deltas_per_s")
    for target, backend in ((OURS, "asyncio"), (TRIO, "trio")):
        ours = _get(results, "text-tight", target, "deltas_per_cpu_s")
        ratio = advantage(ours, ref, "higher")
        wall = advantage(_get(results, "text-tight", target, "deltas_per_s"), wall_ref, "higher")
        out.append(
            Goal(
                f"text throughput ≥ 5x 0.0.36 (tight loop, {backend})",
                f"{_fmt(ratio)}x per CPU-second ({_fmt(ours)} vs {_fmt(ref)} deltas/CPU-s); wall clock {_fmt(wall)}x",
                None if ratio is None else ratio >= 5,
                "text-tight",
            )
        )
    out += _handoff_goals(results)
    floors = (("text-tight", "tight loop vs msgspec"), ("text-yield", "yielding vs msgspec + same checkpoints"))
    for case, how in floors:
        for target, backend in ((OURS, "asyncio"), (TRIO, "trio")):
            floor_target = f"floor/{backend}" if case == "text-yield" else "floor/asyncio"
            ours = _get(results, case, target, "deltas_per_cpu_s")
            floor = _get(results, case, floor_target, "deltas_per_cpu_s")
            slower = None if ours is None or floor is None else floor / ours
            out.append(
                Goal(
                    f"text throughput within 3x of the floor ({how}, {backend})",
                    f"{_fmt(slower)}x slower than the floor ({_fmt(floor)} deltas/CPU-s)",
                    None if slower is None else slower <= 3,
                    case,
                )
            )
    for target, backend in ((OURS, "asyncio"), (TRIO, "trio")):
        growth = _get(results, "stalled", target, "peak_rss_growth_mb")
        out.append(
            Goal(
                f"flat memory with a stalled consumer, < 50 MB growth ({backend})",
                f"{_fmt(growth)} MB",
                None if growth is None else growth < 50,
                "stalled",
            )
        )
    for target, backend in ((OURS, "asyncio"), (TRIO, "trio")):
        p99 = _get(results, "aclose", target, "finally_ms_p99")
        p50 = _get(results, "aclose", target, "finally_ms_p50")
        cpu = _get(results, "aclose", target, "finally_cpu_ms_p99")
        out.append(
            Goal(
                f"`aclose()` → cleanup done < 5 ms, p99 ({backend})",
                f"p99 {_fmt(p99)} ms, p50 {_fmt(p50)} ms; CPU time in the span p99 {_fmt(cpu)} ms",
                None if p99 is None else p99 < 5,
                "aclose",
            )
        )
    for stack, _ in HTTP_COLUMNS:
        figures = results["http"].get(f"ours/{stack}")
        if figures is None or "disconnect" not in figures:
            continue
        d = figures["disconnect"]
        p99 = d.get("cleanup_ms_p99")
        out.append(
            Goal(
                f"disconnect → cleanup < 50 ms over HTTP, p99 ({stack})",
                f"{_fmt(p99)} ms, {d['trials'] - d['not_cleaned']}/{d['trials']} cleaned up",
                p99 is not None and p99 < 50 and d["not_cleaned"] == 0,
                stack=stack,
            )
        )
    out += _versus_ref_goals(results)
    out += _server_floor_goals(results, max(results["http_sizes"]["concurrency"]))
    return out


_PROFILED_KEYS = ("deltas_per_cpu_s", "calls_per_cpu_s", "updates_per_cpu_s", "seconds")


def unmet_cases(results: dict[str, Any]) -> list[str]:
    """In-process cases behind a goal that was not met, or where ours is slower than 0.0.36."""
    cases = [g.case for g in goals(results) if g.met is False and g.case]
    for row in ROWS:
        if row.better is not None and row.key in _PROFILED_KEYS:
            ours = _get(results, row.case, OURS, row.key)
            ratio = advantage(ours, _get(results, row.case, REF, row.key), row.better)
            if ratio is not None and ratio < 1:
                cases.append(row.case)
    return list(dict.fromkeys(cases))


# -- markdown ------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _inprocess_table(results: dict[str, Any]) -> str:
    rows = []
    for row in ROWS:
        if row.case not in results["inprocess"]:
            continue
        ref, ours, trio = (_get(results, row.case, t, row.key) for t in (REF, OURS, TRIO))
        rows.append(
            [
                row.label(results["cases"][row.case]),
                _fmt(ref, row.unit),
                _fmt(ours, row.unit),
                _fmt(trio, row.unit),
                _ratio(advantage(ours, ref, row.better)),
                _ratio(advantage(trio, ref, row.better)),
            ]
        )
    return _table(
        [
            "measure",
            "0.0.36 (asyncio)",
            "ours (asyncio)",
            "ours (trio)",
            "ours ÷ 0.0.36 (asyncio)",
            "ours trio ÷ 0.0.36",
        ],
        rows,
    )


def _floor_table(results: dict[str, Any]) -> str:
    rows = []
    for case, key in FLOOR_ROWS:
        if case not in results["inprocess"]:
            continue
        floor_a = _get(results, case, "floor/asyncio", key)
        floor_t = _get(results, case, "floor/trio", key) if case.endswith("yield") else floor_a
        handoff_a = _get(results, case, "handoff/asyncio", key)
        handoff_t = _get(results, case, "handoff/trio", key)
        ref, ours, trio = (_get(results, case, target, key) for target in (REF, OURS, TRIO))
        rows.append(
            [
                f"{case} ({key.replace('_per_cpu_s', ' per CPU-second')})",
                _fmt(floor_a),
                _fmt(floor_t) if case.endswith("yield") else "same",
                _pct(ref, floor_a),
                _pct(ours, floor_a),
                _pct(trio, floor_t),
                _fmt(handoff_a),
                _fmt(handoff_t),
                _pct(ref, handoff_a),
                _pct(ours, handoff_a),
                _pct(trio, handoff_t),
            ]
        )
    return _table(
        [
            "workload",
            "floor (asyncio)",
            "floor (trio)",
            "0.0.36 % of floor",
            "ours asyncio % of floor",
            "ours trio % of floor",
            "hand-off floor (asyncio)",
            "hand-off floor (trio)",
            "0.0.36 % of hand-off floor",
            "ours asyncio % of hand-off floor",
            "ours trio % of hand-off floor",
        ],
        rows,
    )


def _http_table(results: dict[str, Any]) -> str:
    sizes = results["http_sizes"]
    floors = [stack for stack, _ in HTTP_COLUMNS if f"bare/{stack}" in results["http"]]
    header = ["measure"]
    for stack, has_ref in HTTP_COLUMNS:
        header += [f"0.0.36 {stack}", f"ours {stack}", "ours ÷ 0.0.36"] if has_ref else [f"ours {stack}"]
        header += [f"server floor {stack}"] if stack in floors else []
    rows = []
    for section, key, label, better in http_rows(sizes["concurrency"]):
        row = [label.format(deltas=sizes["deltas"])]
        for stack, has_ref in HTTP_COLUMNS:
            ours_figures = _http(results, "ours", stack, section)
            ours = ours_figures.get(key)
            if has_ref:
                ref_figures = _http(results, "ref", stack, section)
                ref = ref_figures.get(key)
                row += [
                    _http_value(ref, ref_figures, key),
                    _http_value(ours, ours_figures, key),
                    _ratio(advantage(ours, ref, better)),
                ]
            else:
                row.append(_http_value(ours, ours_figures, key))
            if stack in floors:
                row.append(_fmt(_http(results, "bare", stack, section).get(key)))
        rows.append(row)
    return _table(header, rows)


def _http_value(value: float | None, figures: dict[str, Any], key: str) -> str:
    if value is None and key.startswith("cleanup") and figures.get("not_cleaned"):
        return "never (> 1 s)"
    return _fmt(value)


def _rounds(sizes: dict[str, Any]) -> str:
    """How many rounds each number of concurrent streams ran (keys are strings once read from JSON)."""
    return ", ".join(f"{rounds} rounds at {int(streams):,} streams" for streams, rounds in sizes["rounds"].items())


def _machine(results: dict[str, Any]) -> str:
    m = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in m["packages"].items())
    return "\n".join(
        [
            f"- CPU: {m['cpu']}, {m['cores']} logical cores",
            f"- RAM: {m['memory_gb']} GB",
            f"- OS: {m['os']}",
            f"- Python: {m['python']}",
            f"- Packages: {packages}",
            f"- Run: {m['date']}, {results['seconds']:.0f} s in all"
            + (", **--quick sizes**" if results["quick"] else ""),
            f"- Load average (1 min) at the start: {m['load']}, at the end: {results.get('load_end', '?')}; other "
            "processes on the machine share its cores, so wall-clock figures carry their noise (CPU-time figures "
            "much less).",
        ]
    )


def markdown(results: dict[str, Any], analysis: str | None) -> str:
    goal_rows = [
        [g.goal, g.measured, "—" if g.met is None else ("met" if g.met else "**not met**")] for g in goals(results)
    ]
    sizes = results["http_sizes"]
    parts = [
        "# Benchmarks: assistant-stream-ce beside assistant-stream 0.0.36",
        "",
        "Generated by `bash benchmarks/run.sh` (see `benchmarks/README.md`); every figure below comes from the "
        "same run on the same machine. Raw figures: `results.json`.",
        "",
        "![ratios](ratios.png)",
        "",
        "## Machine",
        "",
        _machine(results),
        "",
        "## Goals",
        "",
        _table(["goal", "measured", "status"], goal_rows),
        "",
        "## In-process",
        "",
        "The producer is the run's callback; the consumer reads the data-stream wire bytes, each library through "
        "the path its own HTTP response takes (0.0.36: `DataStreamEncoder.encode_stream` then `str.encode`; ours: "
        "the structured `async with create_run(...)` and the encoder's frame writer). *Tight*: writes back to back, "
        "never yielding (our engine coalesces them while the consumer lags, hence the few frames). *Yielding*: one "
        "`anyio.lowlevel.checkpoint()` (asyncio: `sleep(0)`) after each write, as a producer awaiting a model "
        "does. Every figure comes from a fresh process (text: the best of three by CPU time); memory figures are "
        "its RSS. Rates are given per wall-clock second and per CPU-second of the process: on a shared machine the "
        "latter is the steadier one, and the goals use it. Ratios: how many times better ours is (above 1: better).",
        "",
        _inprocess_table(results),
        "",
        "### Against the floor",
        "",
        "The floor is the same data-stream frames (0.0.36's frames, one per write) built directly with "
        "`msgspec.json.encode` in a loop: no run, no queue, no event loop. For the yielding rows the floor also "
        "takes the producer's checkpoint per write on the same backend, the part no library can remove. The "
        "*hand-off floor* (yielding text) adds the least a streaming layer must do when frames leave the producer's "
        "task: the producer appends each delta to a list and takes the same checkpoint, a second task takes what "
        "is pending, builds one frame and sleeps until the next delta on the cheapest wake-up of its backend "
        "(asyncio: a bare future; trio: `wait_task_rescheduled`/`reschedule`). With a checkpoint after every delta "
        "that task wakes once per delta, as 0.0.36's and ours do; on trio its scheduler sometimes runs the "
        "producer twice before the consumer, hence fewer frames than deltas there.",
        "",
        _floor_table(results),
    ]
    if results["http"]:
        parts += [
            "",
            "## HTTP over 127.0.0.1",
            "",
            "One server process per library and stack, the servers of one stack all up at once (uvicorn with "
            "h11 on asyncio's loop; uvicorn with httptools on uvloop, what production deployments run; hypercorn "
            "0.x on asyncio and on trio; listen backlog 4,096 on all), the client a raw-socket "
            "HTTP/1.1 client in another process (2 cores: "
            "one each; for the concurrent streams an `asyncio.Protocol` client, timed from just before connecting, "
            "so that the client's own work on the burst does not count as server latency). Routes return each "
            "library's `DataStreamResponse(create_run(callback))`. The *server floor* is the same Starlette app "
            "answering with a hand-written ASGI response that sends the same bytes (one `0:` frame per delta, "
            "then the `d:` finish frame, same headers) at the same pace, and nothing else: no run, no disconnect "
            "watching (so no disconnect rows), no heartbeat; it writes one frame per delta even when the socket "
            "lags, where our run coalesces the deltas it has not sent yet, so on one unpaced stream ours can be "
            "faster than this floor. Throughput: one "
            f"stream of {sizes['deltas']:,} deltas with a checkpoint after each. Concurrent streams: all opened at "
            f"once, {sizes['stream_deltas']} deltas each, {sizes['pace'] * 1000:g} ms apart (a model at "
            f"{1 / sizes['pace']:g} tokens/s); each figure is the median of {_rounds(sizes)} in "
            "which the libraries take turns, so that the machine's drift over minutes falls on all of them alike. "
            "Disconnect: the client closes the socket after the first bytes of a "
            "stream that sends a delta every 5 ms; the server records `time.monotonic()` in the callback's "
            f"`finally` ({sizes['disconnects']} trials); in the cooperative rows the callback also checks "
            "`is_cancelled` before each delta and stops by itself (both libraries give such a callback up to "
            "50 ms to do so). 0.0.36 has no trio support.",
            "",
            _http_table(results),
        ]
    else:
        parts += ["", "## HTTP", "", "Not run (`--no-http`)."]
    if analysis:
        parts += ["", "## What the profiles say", "", analysis.strip()]
    if results["profiles"]:
        parts += [
            "",
            "## Profiles",
            "",
            "In-process: pyinstrument (wall clock), our library on asyncio, a quarter of the case's size. "
            "HTTP: cProfile with CPU time in the server process, our library on each stack with an HTTP goal "
            "not met, the smallest concurrent-streams workload. Full text in `profiles/`; the top of each:",
        ]
        for name, text in results["profiles"].items():
            top = "\n".join(text.strip().splitlines()[:45])
            parts += ["", f"### {name}", "", "```", top, "```"]
    return "\n".join(parts) + "\n"


# -- chart ---------------------------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inproc = [
        ("text, tight", "text-tight", "deltas_per_cpu_s", "higher"),
        ("text, yielding", "text-yield", "deltas_per_cpu_s", "higher"),
        ("tool calls, tight", "tools-tight", "calls_per_cpu_s", "higher"),
        ("tool calls, yielding", "tools-yield", "calls_per_cpu_s", "higher"),
        ("state +=, tight", "state-tight", "updates_per_cpu_s", "higher"),
        ("state +=, yielding", "state-yield", "updates_per_cpu_s", "higher"),
        ("concurrent runs: time", "concurrent", "seconds", "lower"),
        ("concurrent runs: memory", "concurrent", "peak_rss_growth_mb", "lower"),
        ("stalled consumer: memory", "stalled", "peak_rss_growth_mb", "lower"),
        ("aclose → cleanup p50", "aclose", "finally_ms_p50", "lower"),
    ]
    series = {
        "ours asyncio ÷ 0.0.36": [
            advantage(_get(results, c, OURS, k), _get(results, c, REF, k), b) for _, c, k, b in inproc
        ],
        "ours trio ÷ 0.0.36": [
            advantage(_get(results, c, TRIO, k), _get(results, c, REF, k), b) for _, c, k, b in inproc
        ],
    }
    labels = [label for label, *_ in inproc]
    http_series: dict[str, list[float | None]] = {}
    http_labels: list[str] = []
    lower_bounds: set[tuple[str, int]] = set()
    if results["http"]:
        biggest = max(results["http_sizes"]["concurrency"])
        http_rows = [
            ("one stream throughput", "throughput", "deltas_per_s", "higher"),
            ("first byte p50", "first_byte", "ttfb_ms_p50", "lower"),
            (f"{biggest:,} streams: first byte p99", f"concurrent_{biggest}", "ttfb_ms_p99", "lower"),
            (f"{biggest:,} streams: stream p99", f"concurrent_{biggest}", "stream_ms_p99", "lower"),
            (f"{biggest:,} streams: server RSS", f"concurrent_{biggest}", "server_rss_peak_mb", "lower"),
            (f"{biggest:,} streams: server CPU", f"concurrent_{biggest}", "server_cpu_ms_per_stream", "lower"),
            ("disconnect → cleanup p50", "disconnect", "cleanup_ms_p50", "lower"),
        ]
        http_labels = [label for label, *_ in http_rows]
        for stack in (stack for stack, has_ref in HTTP_COLUMNS if has_ref):
            values: list[float | None] = []
            for _, section, key, better in http_rows:
                ref_figures = _http(results, "ref", stack, section)
                ref = ref_figures.get(key)
                if ref is None and key.startswith("cleanup") and ref_figures.get("not_cleaned"):
                    ref = 1000.0 * ref_figures["not_cleaned_within_s"]  # never cleaned up: a lower bound
                    lower_bounds.add((f"ours ÷ 0.0.36, {stack}", len(values)))
                values.append(advantage(_http(results, "ours", stack, section).get(key), ref, better))
            http_series[f"ours ÷ 0.0.36, {stack}"] = values

    panels = [("in-process", labels, series)] + ([("HTTP", http_labels, http_series)] if http_series else [])
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(9, 4 + 2.6 * len(panels)), gridspec_kw={"height_ratios": [len(p[1]) for p in panels]}
    )
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (title, names, data) in zip(axes, panels, strict=True):
        height = 0.8 / len(data)
        for i, (name, values) in enumerate(data.items()):
            ys = [y + i * height for y in range(len(names))]
            xs = [v if v is not None else 0 for v in values]
            bars = ax.barh(ys, xs, height=height, label=name)
            for j, (bar, value) in enumerate(zip(bars, values, strict=True)):
                if value:
                    text = f" {'≥ ' if (name, j) in lower_bounds else ''}{value:.1f}x"
                    ax.text(value, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=7)
        ax.set_yticks([y + 0.4 - height / 2 for y in range(len(names))], names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_title(
            f"{title}: how many times better than assistant-stream 0.0.36 (log scale; > 1 is better)", fontsize=9
        )
        known = [v for values in data.values() for v in values if v]
        if known:
            ax.set_xlim(min(0.5, min(known) / 2), max(2.0, max(known) * 6))
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(data), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> None:
    analysis_path = out / ANALYSIS
    analysis = analysis_path.read_text() if analysis_path.exists() else None
    (out / "RESULTS.md").write_text(markdown(results, analysis))
    chart(results, out / "ratios.png")
