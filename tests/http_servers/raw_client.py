"""A bare HTTP/1.1 client over an AnyIO socket, for what a library client hides.

It can stop reading (and keep the connection open), or close the socket in
the middle of a chunked body, at exactly the point a test chooses.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from anyio.abc import SocketStream


def request_bytes(path: str, body: Any) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


class RawResponse:
    """Reads the status, headers and then the chunked body of one response, piece by piece."""

    def __init__(self, stream: SocketStream) -> None:
        self._stream = stream
        self._buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self._ended = False

    @classmethod
    async def open(cls, stream: SocketStream, path: str, body: Any) -> RawResponse:
        await stream.send(request_bytes(path, body))
        response = cls(stream)
        head = await response._read_until(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        response.status = int(status_line.split()[1])
        response.headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines if line)}
        assert response.headers.get("transfer-encoding") == "chunked", response.headers
        return response

    async def _fill(self) -> None:
        self._buffer += await self._stream.receive()

    async def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            await self._fill()
        data, self._buffer = self._buffer.split(marker, 1)
        return data

    async def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    async def next_piece(self) -> bytes | None:
        """The next piece of the body as sent (one HTTP chunk), or None at its end."""
        if self._ended:
            return None
        size = int((await self._read_until(b"\r\n")).split(b";")[0], 16)
        data = await self._read_exactly(size)
        await self._read_until(b"\r\n")
        if size == 0:
            self._ended = True
            return None
        return data


async def connect(port: int) -> SocketStream:
    return await anyio.connect_tcp("127.0.0.1", port)
