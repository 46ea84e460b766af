"""Resumable streams behave as assistant-stream 0.0.36's do, and fail safely and with the right status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import msgspec
import pytest
from starlette.responses import JSONResponse, Response, StreamingResponse

from assistant_stream_ce.resumable import (
    create_in_memory_resumable_stream_store,
    create_resumable_stream_context,
)
from assistant_stream_ce.resumable.types import CancellationSignal, ResumableStreamStore

pytestmark = pytest.mark.anyio


class ModelWentAway(Exception):
    pass


async def _drain(store: ResumableStreamStore, stream_id: str, signal: CancellationSignal) -> list[bytes]:
    return [entry.chunk async for entry in store.read(stream_id, "", signal)]


async def _extend(seen: list[bytes], frames: AsyncIterator[bytes]) -> None:
    """Collect frames into ``seen`` (which keeps them when the stream then raises)."""
    async for frame in frames:
        seen.append(frame)


async def _body(response: Response) -> bytes:
    assert isinstance(response, StreamingResponse)
    parts = []
    async with aclosing(response.body_iterator) as chunks:  # type: ignore[type-var]
        async for part in chunks:
            parts.append(part if isinstance(part, bytes) else str(part).encode())
    return b"".join(parts)


def _json(response: Response) -> Any:
    assert isinstance(response, JSONResponse)
    return msgspec.json.decode(bytes(response.body))


# -- the context: producer errors, wait_until --------------------------------------------------


@pytest.mark.parametrize("entered", [False, True], ids=["not-entered", "entered"])
async def test_producer_error_reaches_readers_and_hooks_as_itself(entered: bool) -> None:
    errors: list[object] = []
    finals: list[tuple[str, str, str | None]] = []
    finalized = anyio.Event()

    def on_finalize(stream_id: str, status: str, error: str | None) -> None:
        finals.append((stream_id, status, error))
        finalized.set()

    context = create_resumable_stream_context(
        store=create_in_memory_resumable_stream_store(),
        on_error=lambda stream_id, err: errors.append(err),
        on_finalize=on_finalize,
    )

    async def failing() -> AsyncIterator[bytes]:
        yield b"partial\n"
        raise ModelWentAway("the model went away")

    async def read_it() -> list[bytes]:
        seen: list[bytes] = []
        body = await context.run("s", failing)
        with pytest.raises(RuntimeError) as info:
            await _extend(seen, body)
        assert str(info.value) == "the model went away"
        await finalized.wait()
        return seen

    with anyio.fail_after(5):
        if entered:
            async with context:
                seen = await read_it()
        else:
            seen = await read_it()
    assert seen == [b"partial\n"]
    assert len(errors) == 1
    assert type(errors[0]) is ModelWentAway
    assert finals == [("s", "error", "the model went away")]


async def test_wait_until_receives_the_producer(anyio_backend: str) -> None:
    producers: list[Any] = []
    finals: list[tuple[str, str, str | None]] = []
    context = create_resumable_stream_context(
        store=create_in_memory_resumable_stream_store(),
        wait_until=producers.append,
        on_finalize=lambda stream_id, status, error: finals.append((stream_id, status, error)),
    )
    release = anyio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"x\n"
        await release.wait()
        yield b"y\n"

    with anyio.fail_after(5):
        body = await context.run("s", slow)
        assert len(producers) == 1
        producer = producers[0]
        assert not producer.done()
        # Only the producer's role gets one: a second caller reads what the first one produces.
        consumer_body = await context.run("s", slow)
        assert len(producers) == 1
        release.set()
        await producer
        assert producer.done()
        assert finals == [("s", "done", None)]
        if anyio_backend == "asyncio":
            import asyncio

            await asyncio.gather(*producers)  # what 0.0.36's code does with its tasks
        assert [frame async for frame in body] == [b"x\n", b"y\n"]
        assert [frame async for frame in consumer_body] == [b"x\n", b"y\n"]
