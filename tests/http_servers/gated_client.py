"""The client side of :mod:`gated`: read a held run through whatever is on the way, and what it should show."""

from __future__ import annotations

import uuid
import zlib
from typing import Any

import anyio
import httpx
from conformance_helpers import adecode, client_view, expected_view

from assistant_stream_ce import RunOutcome, create_run

from .apps import FORMATS
from .gated import FIRST_WORDS, gated


async def expected_message() -> RunOutcome:
    """The outcome of the gated run, run in process with nothing to wait for."""
    released = anyio.Event()
    released.set()
    outcomes: list[RunOutcome] = []
    async with create_run(gated(released), on_finish=outcomes.append) as chunks:
        async for _ in chunks:
            pass
    return outcomes[0]


async def read_gated(client: httpx.AsyncClient, fmt: str) -> tuple[httpx.Headers, bytes]:
    """Read until the first words arrive (decompressing as the bytes come), release the run, read the rest.

    The run cannot end before the release: if anything held the first words
    back until the end of the response, they never come before the bound.
    """
    run = f"gated-{fmt}-{uuid.uuid4().hex[:8]}"
    async with client.stream("POST", f"/gated/{fmt}?run={run}", headers={"accept-encoding": "gzip"}) as response:
        assert response.status_code == 200
        gzipped = response.headers.get("content-encoding") == "gzip"
        decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        body = b""
        pieces = response.aiter_raw()
        with anyio.move_on_after(10) as waited:
            while FIRST_WORDS.encode() not in body:
                piece = await anext(pieces)
                body += decompressor.decompress(piece) if gzipped else piece
        assert not waited.cancelled_caught, f"{fmt}: the first words were held back while the run went on"
        assert (await client.post(f"/release/{run}")).status_code == 200
        async for piece in pieces:
            body += decompressor.decompress(piece) if gzipped else piece
        if gzipped:
            body += decompressor.flush()
            assert decompressor.eof, "the gzip stream was not closed"
        return response.headers, body


async def read_every_format(client: httpx.AsyncClient) -> dict[str, tuple[httpx.Headers, bytes]]:
    """:func:`read_gated` for every format at once."""
    received: dict[str, tuple[httpx.Headers, bytes]] = {}

    async def one(fmt: str) -> None:
        received[fmt] = await read_gated(client, fmt)

    async with anyio.create_task_group() as tg:
        for fmt in FORMATS:  # the wire formats the test apps serve
            tg.start_soon(one, fmt)
    return received


async def assert_decodes_as_the_run(fmt: str, body: bytes) -> None:
    """``body`` shows, in the format's real client, what the gated run sends."""
    expected = await expected_message()
    assert expected.status == "completed"
    (decoded,) = await adecode(fmt, [body])
    shown: dict[str, Any] = client_view(fmt, decoded)
    assert shown == expected_view(fmt, expected.message, expected.status), fmt
