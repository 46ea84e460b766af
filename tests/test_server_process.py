"""The launcher the end-to-end tests run their servers with: it fails with the server's log, survives
losing its port, and leaves no process behind."""

from __future__ import annotations

import os
import select
import socket
import sys

import pytest
import server_process
from server_process import HOST, ServerProcess, accepts_connections

# Listens on the port it is given, ignores SIGTERM, and starts a child in its process group.
_STUBBORN = """
import signal, socket, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("child", child.pid, flush=True)
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    server.accept()[0].close()
"""


def _exits_within(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not a child of ours) has exited or exits within ``timeout`` seconds."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([handle], [], [], timeout)[0])  # readable once it has exited
    finally:
        os.close(handle)


def test_a_server_that_exits_before_it_is_ready_fails_with_its_log() -> None:
    server = ServerProcess("broken", lambda port: [sys.executable, "-c", "print('no such app'); raise SystemExit(3)"])
    server.start()
    with pytest.raises(RuntimeError, match=r"(?s)broken exited with 3 before it was ready.*no such app"):
        server.wait_ready()
    assert server.stop() == 3


def test_a_port_taken_before_the_server_binds_it_moves_the_server_to_another() -> None:
    server = ServerProcess("http.server", lambda port: [sys.executable, "-m", "http.server", "-b", HOST, str(port)])
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind((HOST, taken))  # bound, not listening: the server's bind fails, a connect is refused
        with server:
            assert server.port != taken
            assert accepts_connections(server.port)
            assert "already in use" not in server.log(), "the failed start's output is not the server's log"


def test_stop_sigkills_a_server_that_ignores_sigterm_and_what_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_process, "STOP_TIMEOUT", 0.5)
    server = ServerProcess(
        "stubborn", lambda port: [sys.executable, "-c", _STUBBORN, str(port)], probe=accepts_connections
    )
    with server:
        child = int(server.log().split()[1])
    assert server.stop() == -9
    assert _exits_within(child, 10), f"the server's child {child} outlived it"


def test_wait_exit_gives_the_exit_status_or_fails_with_the_log_of_a_server_that_keeps_running() -> None:
    server = ServerProcess(
        "stubborn", lambda port: [sys.executable, "-c", _STUBBORN, str(port)], probe=accepts_connections
    )
    with server:
        with pytest.raises(RuntimeError, match=r"(?s)stubborn still ran 0.1 s later.*child \d+"):
            server.wait_exit(0.1)
        server.kill()
        assert server.wait_exit(10) == -9
