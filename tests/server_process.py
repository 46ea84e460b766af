"""The one way tests run a server in a subprocess: on a free loopback port, ready once it answers,
stopped with a signal and SIGKILL after a bound, its output kept as its log.

``ServerProcess(name, command)`` runs ``command(port)``. ``start()`` spawns it (several can start
side by side: starting Python is the slow part); ``wait_ready()`` returns once it answers on its
port (``answers_http``, or ``accepts_connections`` for a server that does not speak HTTP) or fails
with its log; ``wait_exit()`` waits for it to exit on its own (after a signal the test sent);
``stop()`` ends it for good and returns its exit status; ``kill()`` SIGKILLs it as a crash would,
and ``start()`` runs it again on the same port. ``with ServerProcess(...) as server``
starts it, waits, and stops it, printing its log if the block failed (pytest shows it).

Every process gets its own process group, so a SIGKILL reaches what it started too (hypercorn's
worker), and gets SIGTERM if the test process dies, so none outlives a killed test run.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

TESTS_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
#: Seconds a server may take to import and start answering on a busy machine.
READY_TIMEOUT = 90.0
#: Seconds between the stop signal and SIGKILL.
STOP_TIMEOUT = 10.0
#: Seconds one readiness probe may wait for an answer (a server may take a queued connection late).
PROBE_TIMEOUT = 5.0
#: Seconds between readiness probes (the pause ends early when the process exits).
PROBE_INTERVAL = 0.05
#: Ports a first start may try: another process can take a probed free port before the server binds it.
PORT_ATTEMPTS = 3

_PR_SET_PDEATHSIG = 1

_Server = TypeVar("_Server", bound="ServerProcess")


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False


def answers_http(port: int) -> bool:
    """Whether ``GET /`` gets any response: the app is loaded and served (hypercorn listens before
    its worker has loaded the app, so a connection alone says too little)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def _die_with_parent() -> None:
    """In the child: SIGTERM when the thread that started it ends (the test process's main thread)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerProcess:
    """A server in a subprocess (see the module docstring); ``url`` and ``port`` say where it listens.

    Its working directory is tests/ and tests/ is on its ``PYTHONPATH``, so it can serve any
    ``module:attribute`` there; ``env`` is added to the environment.
    """

    def __init__(
        self,
        name: str,
        command: Callable[[int], Sequence[str]],
        *,
        env: Mapping[str, str] | None = None,
        probe: Callable[[int], bool] = answers_http,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.port = free_port()
        self._command = command
        self._env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), "PYTHONUNBUFFERED": "1", **(env or {})}
        self._probe = probe
        self._stop_signal = stop_signal
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._final_log: str | None = None
        self._was_ready = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self._started().pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Spawn it (on the same port as before, after a ``kill()``); it is not ready yet."""
        if self._final_log is not None:
            raise RuntimeError(f"{self.name} was stopped for good")
        if self._log is None:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
            # Appending: the process writes at the end while the test reads from the start.
            fcntl.fcntl(self._log, fcntl.F_SETFL, fcntl.fcntl(self._log, fcntl.F_GETFL) | os.O_APPEND)
        self._process = subprocess.Popen(
            self._command(self.port),
            cwd=TESTS_DIR,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Self:
        """Return once it answers on its port; raise with its log if it exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        attempts = 1
        while True:
            ready = self._probe(self.port)
            process = self._started()
            if process.poll() is not None:  # an answer then came from some other process
                log = self.log()
                if not self._was_ready and attempts < PORT_ATTEMPTS and "address already in use" in log.lower():
                    attempts += 1
                    self._move_to_a_new_port()
                    continue
                raise RuntimeError(f"{self.name} exited with {process.returncode} before it was ready; its log:\n{log}")
            if ready:
                self._was_ready = True
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready after {timeout} s; its log:\n{self.log()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(PROBE_INTERVAL)

    def _move_to_a_new_port(self) -> None:
        assert self._log is not None
        self._log.truncate(0)  # the failed bind's traceback is not the server's
        self.port = free_port()
        self.start()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._process

    def kill(self) -> None:
        """SIGKILL it and whatever it started, as a crash would (no shutdown runs)."""
        process = self._started()
        if process.poll() is None:  # not reaped yet, so its process group still exists
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Its exit status once it exits on its own; raise with its log if it still runs after ``timeout``."""
        try:
            return self._started().wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.name} still ran {timeout} s later; its log:\n{self.log()}") from None

    def stop(self) -> int:
        """Send the stop signal, SIGKILL after ``STOP_TIMEOUT`` s; its exit status. Final; ``log()`` still works."""
        process = self._started()
        if process.poll() is None:
            process.send_signal(self._stop_signal)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._final_log = self.log()
            self._log.close()
            self._log = None
        return process.returncode

    def log(self) -> str:
        """What it wrote to stdout and stderr so far."""
        if self._log is None:
            return self._final_log or ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    @contextlib.contextmanager
    def showing_log(self) -> Iterator[None]:
        """Print its log if the block fails (pytest shows it with the failure)."""
        try:
            yield
        except BaseException:
            print(f"--- the log of {self.name}:\n{self.log()}")
            raise

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc is not None:
            print(f"--- the log of {self.name}:\n{self.log()}")


def start_all(servers: Sequence[ServerProcess]) -> None:
    """Start every server at once, then wait for each; if one fails, stop them all."""
    started: list[ServerProcess] = []
    try:
        for server in servers:
            started.append(server.start())
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in started:
            server.stop()
        raise


@contextlib.contextmanager
def running(servers: Sequence[_Server]) -> Iterator[list[_Server]]:
    """The servers, started side by side and ready; stopped after the block (their logs printed if it failed)."""
    start_all(servers)
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.push(server.__exit__)
        yield list(servers)
