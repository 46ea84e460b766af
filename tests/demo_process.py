"""The demo command in a subprocess, and small stdlib HTTP helpers to talk to it over loopback."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import sys
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from server_process import ServerProcess

#: Seconds any one HTTP exchange with the demo may take.
HTTP_TIMEOUT = 30.0


class DemoProcess(ServerProcess):
    """``python -m assistant_stream_ce demo ARGS`` on a free port, stopped with Ctrl+C (SIGINT) as a user stops it."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "assistant_stream_ce", "demo", *args]
        super().__init__(
            " ".join(["demo", *args]),
            lambda port: [*command, "--port", str(port)],
            env=env,
            stop_signal=signal.SIGINT,
        )


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
