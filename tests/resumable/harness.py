"""What the resumable-stream tests share: a real Redis, app instances sharing it, an HTTP reader."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from typing import Any

import httpx
import pytest
from http_servers.launch import Server
from resumable.servers import RedisServer
from server_process import running

APP = "resumable.app:app"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test module's own (a module may kill, flush and restart it)."""
    with RedisServer() as server:
        yield server


@contextmanager
def running_instances(stacks: tuple[str, ...], env: dict[str, str]) -> Iterator[list[Server]]:
    """App instances (one process each, see resumable/app.py) on ``stacks``, ready, then stopped."""
    with running([Server(stack, APP, env) for stack in stacks]) as servers:
        yield servers


def split(data: bytes, separator: bytes) -> list[bytes]:
    """The whole frames of ``data``, each with its separator."""
    parts = data.split(separator)
    return [part + separator for part in parts[:-1]]


async def read_frames(
    client: httpx.AsyncClient, method: str, url: str, separator: bytes, limit: int | None
) -> list[bytes]:
    """Read whole frames; with ``limit``, hang up after that many (dropping any partial rest)."""
    buffer = b""
    async with client.stream(method, url) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["x-resumable-stream-id"]
        async with aclosing(response.aiter_raw()) as chunks:
            async for data in chunks:
                buffer += data
                if limit is not None and len(split(buffer, separator)) >= limit:
                    break
    frames = split(buffer, separator)
    return frames if limit is None else frames[:limit]


async def recorded_events(client: httpx.AsyncClient, server: Server) -> list[dict[str, Any]]:
    """What the instance recorded (see resumable/app.py)."""
    response = await client.get(f"{server.url}/_events")
    return list(response.json())


async def wait_for_event(client: httpx.AsyncClient, server: Server, wanted: dict[str, Any]) -> None:
    """Return once the instance recorded an event with the ``wanted`` fields."""
    response = await client.post(f"{server.url}/_events/wait", json=wanted, timeout=15)
    assert response.status_code == 200, response.json()
