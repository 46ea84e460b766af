"""Real processes for end-to-end tests: redis-server and app instances on free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Block until something accepts connections on ``port`` (bounded; fails if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class RedisServer:
    """A throwaway redis-server (Debian's package) with its own port and directory."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed: run scripts/test.sh, which installs it with apt")
        self.executable = executable
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class AppServer:
    """One instance of an ASGI app served by uvicorn or hypercorn (asyncio or trio)."""

    def __init__(self, app: str, server: str, env: dict[str, str]) -> None:
        self.port = free_port()
        bind = f"127.0.0.1:{self.port}"
        commands: dict[str, Sequence[str]] = {
            "uvicorn": ["-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port),
                        "--log-level", "warning"],
            "hypercorn-asyncio": ["-m", "hypercorn", app, "--bind", bind, "-k", "asyncio"],
            "hypercorn-trio": ["-m", "hypercorn", app, "--bind", bind, "-k", "trio"],
        }
        environment = {**os.environ, **env, "PYTHONPATH": str(TESTS)}
        self.process = subprocess.Popen([sys.executable, *commands[server]], env=environment, cwd=TESTS)
        wait_for_port(self.port, self.process)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
