"""The demo command in a subprocess, and small stdlib HTTP helpers to talk to it over loopback."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

#: Seconds the demo may take to print its URL (imports are slow on a busy CI machine).
START_TIMEOUT = 60.0
#: Seconds any one HTTP exchange with the demo may take.
HTTP_TIMEOUT = 30.0

_URL = re.compile(r"demo: (http://\S+)")


class DemoProcess:
    """``python -m assistant_stream_ce demo --port 0 ARGS``; stopped with Ctrl+C (SIGINT).

    ``with DemoProcess(...) as demo`` starts it and waits for its URL; or ``start()`` several
    first (they start in parallel), then ``wait_ready()`` each, and ``stop()``.
    """

    def __init__(self, log_path: Path, *args: str) -> None:
        self.args = ["--port", "0", *args]
        self.log_path = log_path
        self.url = ""
        self.returncode: int | None = None
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> DemoProcess:
        with self.log_path.open("w") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "assistant_stream_ce", "demo", *self.args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def wait_ready(self) -> DemoProcess:
        """Read the URL the demo prints once it listens."""
        assert self._proc is not None
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT)
        line = self._proc.stdout.readline() if ready else ""
        match = _URL.search(line)
        if match is None:
            raise AssertionError(f"the demo printed {line!r} instead of its URL; its log:\n{self.log()}")
        self.url = match.group(1)
        return self

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        """Ctrl+C, then its exit status (killed if it does not stop within 20 s)."""
        proc = self._proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        self.returncode = proc.returncode
        return proc.returncode

    @contextlib.contextmanager
    def showing_log(self) -> Iterator[None]:
        """Print the demo's log if the block fails (pytest shows it with the failure)."""
        try:
            yield
        except BaseException:
            print(f"--- the demo's log ({' '.join(self.args)}):\n{self.log()}")
            raise

    def __enter__(self) -> DemoProcess:
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
            print(f"--- the demo's log ({' '.join(self.args)}):\n{self.log()}")


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    assert parts.hostname is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT)


def _request_json(method: str, url: str) -> Any:
    parts = urlsplit(url)
    conn = _connection(url)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""))
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def get_json(url: str) -> Any:
    """GET ``url`` and decode its JSON body."""
    return _request_json("GET", url)


def get_json_post(url: str) -> Any:
    """POST to ``url`` (no body) and decode its JSON body."""
    return _request_json("POST", url)


def chat_body(run_id: str, prompt: str) -> bytes:
    return json.dumps({"runId": run_id, "messages": [{"role": "user", "content": prompt}]}).encode()


@contextlib.contextmanager
def open_chat(base_url: str, fmt: str, run_id: str, prompt: str) -> Iterator[http.client.HTTPResponse]:
    """POST a chat request; the response's body streams line by line (``for line in response``).

    Leaving the block closes the connection: if the body has not ended, the server sees a disconnect.
    """
    conn = _connection(base_url)
    try:
        conn.request(
            "POST",
            f"/api/chat?format={fmt}",
            body=chat_body(run_id, prompt),
            headers={"content-type": "application/json"},
        )
        yield conn.getresponse()
    finally:
        conn.close()
