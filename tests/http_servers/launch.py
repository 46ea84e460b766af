"""The test apps served by a real server (uvicorn, hypercorn on asyncio, hypercorn on trio) in a subprocess.

A :class:`Server` serves one of the apps of :mod:`apps` (or any ``module:attribute`` under tests/)
on one of ``STACKS``; it is a :class:`~server_process.ServerProcess` (start, wait, stop, log).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping

import server_process
from server_process import HOST, ServerProcess

STACKS = ("uvicorn", "hypercorn-asyncio", "hypercorn-trio")
APPS = ("fastapi", "starlette")
_TARGETS = {"fastapi": "http_servers.fastapi_app:app", "starlette": "http_servers.apps:starlette_app"}


def _command(stack: str, target: str, port: int) -> list[str]:
    if stack == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            HOST,
            "--port",
            str(port),
            "--loop",
            "asyncio",
            "--http",
            "h11",  # the stack these tests name "uvicorn", also where httptools is installed
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
        f"{HOST}:{port}",
        "-k",
        worker,
        "--backlog",
        "1024",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "1",
    ]


class Server(ServerProcess):
    """``app`` (a name of ``APPS`` or a ``module:attribute``) served by ``stack``, with ``env`` added."""

    def __init__(self, stack: str, app: str, env: Mapping[str, str] | None = None) -> None:
        target = _TARGETS.get(app, app)
        super().__init__(f"{stack}/{app}", lambda port: _command(stack, target, port), env=env)
        self.stack = stack
        self.app = app


def start_all(pairs: list[tuple[str, str]]) -> list[Server]:
    """A ready server for every (stack, app), started side by side."""
    servers = [Server(stack, app) for stack, app in pairs]
    server_process.start_all(servers)
    return servers


def stop(server: Server) -> str:
    """Stop the server; its log."""
    server.stop()
    return server.log()


@contextlib.contextmanager
def serving(pairs: list[tuple[str, str]]) -> Iterator[list[Server]]:
    """:func:`start_all`, then stop them after the block and fail if any logged a traceback."""
    started = start_all(pairs)
    try:
        yield started
    finally:
        outputs = {server.name: stop(server) for server in started}
    for name, output in outputs.items():
        assert "Traceback" not in output, f"{name} logged a traceback:\n{output}"
