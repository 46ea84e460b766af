"""HTTP workloads over 127.0.0.1: a server process per (library, stack), a raw-socket client here.

The client speaks just enough HTTP/1.1 (``Connection: close``, read to EOF)
to time the first body byte and the end of each response without a client
library's own overhead in the figures. The concurrent-streams workload opens
up to 1,000 connections at once from this one process, so it uses the leanest
client asyncio has (:class:`_TimedGet`, an ``asyncio.Protocol``: no stream
objects, no task per read): otherwise the client's own work on the burst
would be counted as the server's first-byte latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio

from ._proc import cpu_seconds, rss

Figures = dict[str, Any]


@dataclass
class Fetch:
    first_byte: float  # seconds from connect to the first body byte
    total: float  # seconds from connect to the end of the response
    body: int  # bytes after the headers (chunked framing included)


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


class _Timing:
    """One response as its bytes arrive: when the first body byte came, and how many body bytes."""

    def __init__(self, path: str, start: float) -> None:
        self.path = path
        self.start = start
        self.head = b""
        self.body = -1  # bytes after the headers; -1 until the headers are in
        self.first = 0.0

    def feed(self, data: bytes) -> None:
        """Take the next bytes read; RuntimeError if the status is not 200."""
        if self.body < 0:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"GET {self.path}: {self.head[:200]!r}")
            self.body = len(self.head) - end - 4
        else:
            self.body += len(data)
        if self.body > 0 and not self.first:
            self.first = time.perf_counter() - self.start

    def result(self) -> Fetch:
        return Fetch(self.first, time.perf_counter() - self.start, self.body)


async def fetch(port: int, path: str) -> Fetch:
    """GET ``path`` and read the response to its end."""
    timing = _Timing(path, time.perf_counter())
    async with await anyio.connect_tcp("127.0.0.1", port) as sock:
        await sock.send(_request(path))
        while True:
            try:
                data = await sock.receive(65536)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
            timing.feed(data)
    return timing.result()


class _TimedGet(asyncio.Protocol):
    """One GET on a fresh connection: times the first body byte and the end of the response (the server closes)."""

    def __init__(self, path: str, start: float, done: asyncio.Future[Fetch]) -> None:
        self._path = path
        self._timing = _Timing(path, start)
        self._done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(_request(self._path))

    def data_received(self, data: bytes) -> None:
        try:
            self._timing.feed(data)
        except RuntimeError as exc:
            if not self._done.done():
                self._done.set_exception(exc)
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done.done():
            return
        if exc is not None:
            self._done.set_exception(exc)
        elif self._timing.body < 0:
            self._done.set_exception(RuntimeError(f"GET {self._path}: closed before the headers ended"))
        else:
            self._done.set_result(self._timing.result())


async def lean_fetch(port: int, path: str) -> Fetch:
    """:func:`fetch` with :class:`_TimedGet`: the clock starts just before connecting (asyncio only)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Fetch] = loop.create_future()
    start = time.perf_counter()
    await loop.create_connection(lambda: _TimedGet(path, start, done), "127.0.0.1", port)
    return await done


async def get_json(port: int, path: str) -> Any:
    async with await anyio.connect_tcp("127.0.0.1", port) as sock:
        await sock.send(_request(path))
        data = b""
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                data += await sock.receive(65536)
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


async def disconnect_after_first_byte(port: int, key: str, cooperative: bool) -> float:
    """Open ``/forever``, read its first body bytes, close the socket: the time.monotonic() of the close."""
    async with await anyio.connect_tcp("127.0.0.1", port) as sock:
        await sock.send(_request(f"/forever?id={key}&cooperative={int(cooperative)}"))
        head = b""
        while (end := head.find(b"\r\n\r\n")) < 0 or len(head) <= end + 4:
            head += await sock.receive(65536)
        closed = time.monotonic()
    return closed


# -- the server process --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def server(lib: str, stack: str, profile: str | None = None) -> Iterator[tuple[int, int]]:
    """Start a benchmark server (profiled into ``profile`` if given); yields (port, pid) once it accepts connections."""
    port = _free_port()
    cmd = [sys.executable, "-m", "benchmarks.server", "--lib", lib, "--stack", stack, "--port", str(port)]
    if profile:
        cmd += ["--profile", profile]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        output = log.read().decode()[-3000:]
                        raise RuntimeError(f"server {lib}/{stack} did not start:\n{output}") from None
                    time.sleep(0.05)
            yield port, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(30 if profile else 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- workloads -----------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def throughput(port: int, pid: int, deltas: int) -> Figures:
    """One stream of ``deltas`` deltas, each followed by a checkpoint on the server."""
    cpu = cpu_seconds(pid)
    got = await fetch(port, f"/stream?deltas={deltas}&pace=0")
    cpu = cpu_seconds(pid) - cpu
    return {
        "deltas_per_s": deltas / got.total,
        "mb_per_s": got.body / got.total / 2**20,
        "seconds": got.total,
        "server_cpu_us_per_delta": cpu / deltas * 1e6,
    }


async def first_byte(port: int, requests: int) -> Figures:
    """Sequential short streams: connect to first body byte."""
    times = [(await fetch(port, "/stream?deltas=5&pace=0")).first_byte * 1000 for _ in range(requests)]
    return {"ttfb_ms_p50": statistics.median(times), "ttfb_ms_p99": _pct(times, 0.99)}


async def concurrent(port: int, pid: int, streams: int, deltas: int, pace: float) -> Figures:
    """``streams`` streams at once, ``deltas`` deltas ``pace`` seconds apart each; server RSS sampled.

    The client is :func:`lean_fetch`, so this runs on asyncio only.
    """
    path = f"/stream?deltas={deltas}&pace={pace}"
    results: list[Fetch] = []
    before = peak = rss(pid)
    done = anyio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss(pid))
            await anyio.sleep(0.01)

    async def one() -> None:
        results.append(await lean_fetch(port, path))

    cpu = cpu_seconds(pid)
    start = time.perf_counter()
    async with anyio.create_task_group() as outer:
        outer.start_soon(sample)
        async with anyio.create_task_group() as tg:
            for _ in range(streams):
                tg.start_soon(one)
        done.set()
    firsts = [r.first_byte * 1000 for r in results]
    totals = [r.total * 1000 for r in results]
    return {
        "streams": streams,
        "seconds": time.perf_counter() - start,
        "ttfb_ms_p50": statistics.median(firsts),
        "ttfb_ms_p99": _pct(firsts, 0.99),
        "stream_ms_p50": statistics.median(totals),
        "stream_ms_p99": _pct(totals, 0.99),
        "server_rss_mb": before / 2**20,
        "server_rss_peak_mb": peak / 2**20,
        "server_cpu_ms_per_stream": (cpu_seconds(pid) - cpu) / streams * 1000,
    }


async def disconnect(port: int, trials: int, *, cooperative: bool = False, timeout: float = 1.0) -> Figures:
    """Close the socket mid-stream; time until the server's run ran its ``finally`` (up to ``timeout``).

    ``cooperative``: the callback also stops by itself once it sees ``is_cancelled``.
    """
    latencies: list[float] = []
    missed = 0
    for i in range(trials):
        key = f"d{i}-{time.monotonic_ns()}"
        closed = await disconnect_after_first_byte(port, key, cooperative)
        while (at := (await get_json(port, f"/cleanup?id={key}"))["at"]) is None:
            if time.monotonic() - closed > timeout:
                break
            await anyio.sleep(0.002)
        if at is None:
            missed += 1
        else:
            latencies.append((at - closed) * 1000)
    figures: Figures = {"trials": trials, "not_cleaned_within_s": timeout, "not_cleaned": missed}
    if latencies:
        figures |= {
            "cleanup_ms_p50": statistics.median(latencies),
            "cleanup_ms_p99": _pct(latencies, 0.99),
            "cleanup_ms_max": max(latencies),
        }
    return figures


def _median_figures(rounds: list[Figures]) -> Figures:
    """Each figure's median over the rounds."""
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]} | {"rounds": len(rounds)}


def run_stack(libs: list[str], stack: str, sizes: dict[str, Any]) -> dict[str, Figures]:
    """Every HTTP workload against one fresh server per library on ``stack``, all of them up at once.

    The concurrent-streams workloads run ``sizes["rounds"][streams]`` times, the libraries
    taking turns (who goes first rotates), and each figure is the median over
    the rounds: this machine's speed drifts over minutes, and taking turns
    spreads the drift over every library alike.
    """
    with contextlib.ExitStack() as servers_up:
        servers = {lib: servers_up.enter_context(server(lib, stack)) for lib in libs}

        async def main() -> dict[str, Figures]:
            figures: dict[str, Figures] = {lib: {} for lib in libs}
            for lib, (port, pid) in servers.items():
                figures[lib]["throughput"] = await throughput(port, pid, sizes["deltas"])
                figures[lib]["first_byte"] = await first_byte(port, sizes["ttfb_requests"])
            for streams in sizes["concurrency"]:
                rounds: dict[str, list[Figures]] = {lib: [] for lib in libs}
                for n in range(sizes["rounds"][streams]):
                    for lib in libs[n % len(libs) :] + libs[: n % len(libs)]:
                        port, pid = servers[lib]
                        rounds[lib].append(await concurrent(port, pid, streams, sizes["stream_deltas"], sizes["pace"]))
                for lib in libs:
                    figures[lib][f"concurrent_{streams}"] = _median_figures(rounds[lib])
            for lib, (port, _) in servers.items():
                if lib != "bare":  # the server floor does not watch for disconnects: nothing to time
                    figures[lib]["disconnect"] = await disconnect(port, sizes["disconnects"])
                    figures[lib]["disconnect-cooperative"] = await disconnect(
                        port, sizes["disconnects"], cooperative=True
                    )
            return figures

        return anyio.run(main, backend="asyncio")


def profile_server(lib: str, stack: str, streams: int, sizes: dict[str, Any], path: Path) -> None:
    """Run the concurrent-streams workload against a server that writes a CPU-time profile to ``path``."""
    with server(lib, stack, str(path)) as (port, pid):
        anyio.run(concurrent, port, pid, streams, sizes["stream_deltas"], sizes["pace"], backend="asyncio")
