"""Two rounds of a decision through the real clients (tests/conformance/approval.mjs) against a live server."""

from __future__ import annotations

import http.client
import json
import subprocess
from typing import Any

from conformance_helpers import NODE_DIR
from http_servers.launch import Server
from server_process import HOST


def get_json(server: Server, path: str) -> Any:
    """GET ``path`` from ``server`` and decode its JSON body."""
    connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def two_rounds(server: Server, *args: str) -> dict[str, Any]:
    """What each client showed and sent (``node approval.mjs <server> ARGS``); none warned or failed."""
    done = subprocess.run(
        ["node", "approval.mjs", f"http://{HOST}:{server.port}", *args],
        cwd=NODE_DIR,
        capture_output=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    assert result.pop("warnings") == []
    for name, client in result.items():
        assert "error" not in client or client["error"] is None, f"{name}: {client}"
    return result
