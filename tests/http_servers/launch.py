"""Start a real server (uvicorn, hypercorn on asyncio, hypercorn on trio) in a subprocess.

Each server listens on a free 127.0.0.1 port and serves one of the apps of
:mod:`apps` (or any ``module:attribute`` under tests/ that answers ``/health``).
``wait_ready`` returns once ``/health`` answers; ``stop`` ends the process and
returns what it wrote to stderr.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

TESTS_DIR = Path(__file__).resolve().parent.parent

_PR_SET_PDEATHSIG = 1

STACKS = ("uvicorn", "hypercorn-asyncio", "hypercorn-trio")
APPS = ("fastapi", "starlette")


@dataclass
class Server:
    stack: str
    app: str
    port: int
    process: subprocess.Popen[bytes]
    stderr: IO[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        return f"{self.stack}/{self.app}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _command(stack: str, app: str, port: int) -> list[str]:
    target = {"fastapi": "http_servers.fastapi_app:app", "starlette": "http_servers.apps:starlette_app"}.get(app, app)
    if stack == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "asyncio",
            "--backlog",
            "1024",
            "--log-level",
            "warning",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "1",
        ]
    worker = stack.removeprefix("hypercorn-")
    return [
        sys.executable,
        "-m",
        "hypercorn",
        target,
        "--bind",
        f"127.0.0.1:{port}",
        "-k",
        worker,
        "--backlog",
        "1024",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "1",
    ]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no server outlives a killed test run."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(stack: str, app: str, env: dict[str, str] | None = None) -> Server:
    """Start the server process (it is not ready yet: see :func:`wait_ready`), with ``env`` added."""
    port = free_port()
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(TESTS_DIR)}
    process = subprocess.Popen(
        _command(stack, app, port),
        cwd=TESTS_DIR,
        stdout=stderr,
        stderr=stderr,
        env=env,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    return Server(stack, app, port, process, stderr)


def wait_ready(server: Server, timeout: float = 90.0) -> None:
    """Wait until ``/health`` answers (a bounded wait: the process has to import and bind)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{read_output(server)}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not answer within {timeout}s:\n{read_output(server)}")
        time.sleep(0.05)


def start_all(pairs: list[tuple[str, str]]) -> list[Server]:
    """Start every (stack, app) server at once and wait for all; one that exits early (its port was
    taken between probing and binding) is started again once."""
    servers = [spawn(stack, app) for stack, app in pairs]
    try:
        for i, server in enumerate(servers):
            try:
                wait_ready(server)
            except RuntimeError:
                if server.process.poll() is None:
                    raise
                stop(server)
                servers[i] = spawn(server.stack, server.app)
                wait_ready(servers[i])
    except BaseException:
        for server in servers:
            stop(server)
        raise
    return servers


def read_output(server: Server) -> str:
    server.stderr.seek(0)
    return server.stderr.read().decode(errors="replace")


def stop(server: Server) -> str:
    """Terminate the server and return its output."""
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    output = read_output(server)
    server.stderr.close()
    return output
