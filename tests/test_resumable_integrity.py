"""Resumable streams on Redis never serve a gap: lost frames and dead producers end readers with an error.

Against a real redis-server that the tests flush, SIGKILL and restart: the
store on coredis (asyncio, trio) and redis-py (asyncio), then two app
instances sharing the Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, aclosing
from typing import Any

import anyio
import httpx
import pytest
import redis
from http_servers.launch import Server
from resumable.harness import read_frames, redis_server, running_instances, wait_for_event
from resumable.servers import RedisServer

from assistant_stream_ce.resumable import (
    ResumableStreamError,
    create_redis_resumable_stream_store,
    create_resumable_stream_context,
)
from assistant_stream_ce.resumable.context import Emit
from assistant_stream_ce.resumable.types import ResumableStreamStore

pytestmark = pytest.mark.anyio

__all__ = ["redis_server"]  # the fixture, for this module

CLIENTS = [("coredis", "asyncio"), ("coredis", "trio"), ("redis-py", "asyncio")]

MakeStore = Callable[..., Awaitable[ResumableStreamStore]]


@pytest.fixture(params=CLIENTS, ids=[f"{kind}-{backend}" for kind, backend in CLIENTS])
def client_kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    return tuple(request.param)  # type: ignore[return-value]


@pytest.fixture
def anyio_backend(client_kind: tuple[str, str]) -> str:
    return client_kind[1]


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """The operator's client: flushes and deletes keys behind the stores' backs."""
    with redis.Redis(port=redis_server.port) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    return uuid.uuid4().hex


@pytest.fixture
async def make_store(client_kind: tuple[str, str], redis_server: RedisServer, prefix: str) -> AsyncIterator[MakeStore]:
    """Stores on one key prefix, each on a client of its own, like instances sharing the Redis."""
    async with AsyncExitStack() as stack:

        async def make(**options: Any) -> ResumableStreamStore:
            if client_kind[0] == "coredis":
                import coredis

                client: Any = await stack.enter_async_context(coredis.Redis(port=redis_server.port))
            else:
                import redis.asyncio

                client = redis.asyncio.Redis(port=redis_server.port)
                stack.push_async_callback(client.aclose)
            options.setdefault("poll_interval_ms", 50)
            return create_redis_resumable_stream_store(client, key_prefix=prefix, **options)

        yield make


async def _follow(store: ResumableStreamStore, stream_id: str, frames: list[bytes], cursor: str = "") -> None:
    async for frame in create_resumable_stream_context(store=store).read(stream_id, cursor):
        frames.append(frame)


async def _replay_fails(
    store: ResumableStreamStore, stream_id: str, cursor: str, before_loss: list[bytes]
) -> ResumableStreamError:
    """Replay after ``cursor``: at most frames stored before the loss, then an error."""
    frames: list[bytes] = []
    with pytest.raises(ResumableStreamError) as info:
        await _follow(store, stream_id, frames, cursor)
    assert frames == before_loss[int(cursor or 0) :][: len(frames)], frames
    return info.value


LOSSES = ["flushall", "sigkill-restart", "evict-meta", "evict-data", "failover-lost-tail"]


def _lose(loss: str, server: RedisServer, admin: redis.Redis, prefix: str) -> None:
    """Make Redis lose (some of) a stream's keys, as an operator, a crash or an eviction would."""
    if loss == "flushall":
        admin.flushall()
    elif loss == "sigkill-restart":
        server.kill()
        server.start().wait_ready()  # same port, no persistence: empty
    elif loss == "evict-meta":
        admin.delete(f"{prefix}:meta")
    elif loss == "evict-data":
        admin.delete(f"{prefix}:data")
    else:  # the replica that took over had not received the last two frames
        entries = admin.xrevrange(f"{prefix}:data", count=2)
        admin.xdel(f"{prefix}:data", *[identifier for identifier, _ in entries])


@pytest.mark.parametrize("loss", LOSSES)
async def test_frames_lost_by_redis_end_the_stream_with_an_error(
    make_store: MakeStore, redis_server: RedisServer, admin: redis.Redis, prefix: str, loss: str
) -> None:
    producer_store, reader_store = await make_store(), await make_store()
    finalized: list[tuple[str, str, str | None]] = []
    ended = anyio.Event()

    def on_finalize(stream_id: str, status: str, error: str | None) -> None:
        finalized.append((stream_id, status, error))
        ended.set()

    wrote_five, go_on = anyio.Event(), anyio.Event()

    async def source(emit: Emit) -> None:
        for i in range(5):
            await emit(f'0:"w{i}"\n'.encode())
        wrote_five.set()
        await go_on.wait()
        for i in range(5, 10):
            await emit(f'0:"w{i}"\n'.encode())

    live: list[bytes] = []
    live_error: list[Exception] = []
    context = create_resumable_stream_context(store=producer_store, on_finalize=on_finalize)
    with anyio.fail_after(10):
        async with context, anyio.create_task_group() as tg:
            assert await context.start("s", source) == "producer"
            await wrote_five.wait()
            got_five = anyio.Event()

            async def follow_live() -> None:
                # A reader on another instance, attached before the loss: it ends with an error, not a gap.
                try:
                    async for frame in create_resumable_stream_context(store=reader_store).read("s"):
                        live.append(frame)
                        if len(live) == 5:
                            got_five.set()
                except Exception as exc:  # a store error, or the Redis client's connection error
                    live_error.append(exc)

            tg.start_soon(follow_live)
            await got_five.wait()
            _lose(loss, redis_server, admin, f"{prefix}:{{s}}")
            if loss in ("flushall", "sigkill-restart", "evict-meta"):
                # While the run is live after the loss, there is nothing to resume: a 404.
                assert await context.resume("s", "5") is None
            go_on.set()
            await ended.wait()
    before_loss = [f'0:"w{i}"\n'.encode() for i in range(5)]
    assert live == before_loss
    assert live_error, "the live reader ended without an error"
    [(stream_id, status, error)] = finalized
    assert (stream_id, status) == ("s", "error")
    assert error is not None
    assert "lost" in error, error
    # After the run: a replay from the start, or from where a client left, is an error, never frames 5-9 and a "done".
    for cursor in ("", "5"):
        failure = await _replay_fails(reader_store, "s", cursor, before_loss)
        assert "lost" in str(failure), failure
    assert await reader_store.status("s") == "error"


async def test_a_dead_producer_ends_readers_and_a_new_start_takes_over(make_store: MakeStore) -> None:
    # The producer's instance never renews its lease: its process died.
    dead, other = await make_store(lease_ms=300), await make_store(lease_ms=300)
    assert await dead.acquire("d") == "producer"
    frames = [f'0:"w{i}"\n'.encode() for i in range(3)]
    for frame in frames:
        await dead.append("d", frame)
    seen: list[bytes] = []
    with anyio.fail_after(5), pytest.raises(ResumableStreamError) as info:
        await _follow(other, "d", seen)
    assert seen == frames
    assert info.value.code == "lost"
    assert "lease" in str(info.value)
    # A new start with the same id does not attach to the dead stream: it becomes its producer.
    assert await other.acquire("d") == "producer"
    await other.append("d", b'0:"again"\n')
    # The old producer, had it only stalled, can no longer write into the stream.
    with pytest.raises(ResumableStreamError, match="restarted"):
        await dead.append("d", b'0:"late"\n')
    await other.finalize("d", "done")
    with anyio.fail_after(5):
        again: list[bytes] = []
        await _follow(dead, "d", again)
    assert again == [b'0:"again"\n']


async def test_a_live_producer_renews_its_lease(make_store: MakeStore) -> None:
    producer_store, reader_store = await make_store(lease_ms=300), await make_store(lease_ms=300)
    finalized: list[tuple[str, str, str | None]] = []
    context = create_resumable_stream_context(
        store=producer_store, on_finalize=lambda *outcome: finalized.append(outcome)
    )

    async def slow_model(emit: Emit) -> None:
        # Paced like a model answering, for about three leases.
        for i in range(9):
            await emit(f'0:"w{i}"\n'.encode())
            await anyio.sleep(0.1)

    seen: list[bytes] = []
    with anyio.fail_after(10):
        async with context:
            await context.start("r", slow_model)
            await _follow(reader_store, "r", seen)
    assert seen == [f'0:"w{i}"\n'.encode() for i in range(9)]
    assert finalized == [("r", "done", None)]


# -- end to end: two instances, one Redis ------------------------------------------------------

# The HTTP client runs on asyncio; the instances on asyncio (uvicorn) and trio (hypercorn -k trio).
E2E = pytest.mark.parametrize("anyio_backend", ["asyncio"])
LEASE_MS = 1000


@pytest.fixture(scope="module")
def app_env(redis_server: RedisServer) -> dict[str, str]:
    port = str(redis_server.port)
    return {
        "STORE": "redis",
        "REDIS_PORT": port,
        "KEY_PREFIX": "integrity",
        "POLL_MS": "200",
        "LEASE_MS": str(LEASE_MS),
    }


@pytest.fixture(scope="module")
def instances(app_env: dict[str, str]) -> Iterator[list[Server]]:
    with running_instances(("uvicorn", "hypercorn-trio"), app_env) as servers:
        yield servers


async def _read_body(client: httpx.AsyncClient, method: str, url: str, marker: bytes, reached: anyio.Event) -> bytes:
    """The whole body; ``reached`` is set once ``marker`` arrived."""
    body = b""
    async with client.stream(method, url) as response:
        assert response.status_code == 200, await response.aread()
        async with aclosing(response.aiter_raw()) as chunks:
            async for data in chunks:
                body += data
                if marker in body:
                    reached.set()
    return body


def _ends_with_an_error(body: bytes) -> None:
    lines = body.splitlines()
    assert lines[-1].startswith(b'd:{"finishReason":"error"'), lines[-3:]
    assert lines[-2].startswith(b"3:"), lines[-3:]


@E2E
@pytest.mark.parametrize("loss", ["flushall", "sigkill-restart"])
async def test_a_stream_redis_lost_ends_with_an_error_on_both_instances(
    instances: list[Server], redis_server: RedisServer, admin: redis.Redis, loss: str
) -> None:
    first, second = instances
    stream_id = f"lost-{loss}-{uuid.uuid4().hex}"
    bodies: dict[str, bytes] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def read(name: str, method: str, url: str, reached: anyio.Event) -> None:
                    bodies[name] = await _read_body(client, method, url, b"word4", reached)

                started, following = anyio.Event(), anyio.Event()
                tg.start_soon(read, "started", "POST", f"{first.url}/runs/{stream_id}?scenario=gated", started)
                await started.wait()
                tg.start_soon(read, "following", "GET", f"{second.url}/runs/{stream_id}", following)
                await following.wait()
                _lose(loss, redis_server, admin, f"integrity:{{{stream_id}}}")
                assert (await client.post(f"{first.url}/_release/{stream_id}")).status_code == 200
            await wait_for_event(client, first, {"event": "on_finalize", "stream": stream_id, "status": "error"})
            await wait_for_event(client, first, {"event": "on_finish", "stream": stream_id, "status": "error"})
            for cursor in ("0", "5"):
                bodies[cursor] = await _read_body(
                    client, "GET", f"{second.url}/runs/{stream_id}?cursor={cursor}", b"", anyio.Event()
                )
    for name, body in bodies.items():
        assert b"word5" not in body, (name, body)
        _ends_with_an_error(body)


@E2E
async def test_a_producer_that_died_ends_readers_on_the_other_instance(
    instances: list[Server], app_env: dict[str, str]
) -> None:
    _, second = instances
    stream_id = f"died-{uuid.uuid4().hex}"
    # uvicorn: one process (hypercorn serves from a worker process that a SIGKILL of its parent leaves running).
    with running_instances(("uvicorn",), app_env) as [doomed]:
        async with httpx.AsyncClient(timeout=10) as client:
            with anyio.fail_after(30):
                started = await read_frames(client, "POST", f"{doomed.url}/runs/{stream_id}?scenario=forever", b"\n", 1)
                assert started
                body = b""
                response = client.stream("GET", f"{second.url}/runs/{stream_id}")
                async with response as opened, aclosing(opened.aiter_raw()) as chunks:
                    async for data in chunks:
                        body += data
                        # At most 100 ticks a second: the producer renewed its lease for more than one lease.
                        if body.count(b"tick") >= LEASE_MS // 10 * 1.2 and doomed.running:
                            doomed.kill()
                _ends_with_an_error(body)
                assert b"lease" in body.splitlines()[-2]
                # A new start with the same id is a new run, not the dead stream.
                again = await read_frames(client, "POST", f"{second.url}/runs/{stream_id}", b"\n", None)
    assert b"tick" not in b"".join(again)
    assert any(b"tail9" in frame for frame in again)
    assert again[-1].startswith(b'd:{"finishReason":"stop"')


async def test_a_finalize_from_another_task_waits_for_the_write_in_flight(make_store: MakeStore) -> None:
    """A reader that ends the stream as soon as it sees a frame, while that frame's write has not returned yet:
    the end goes after the frame, and the stream ends done."""
    store = await make_store()
    signal = anyio.Event()
    with anyio.fail_after(20):
        for _ in range(100):  # the reader sees the frame before its write returns in some of these
            stream_id = f"race-{uuid.uuid4().hex}"
            assert await store.acquire(stream_id) == "producer"
            await store.append(stream_id, b"one")
            seen: list[bytes] = []
            waiting = anyio.Event()

            async def read_and_end(
                stream_id: str = stream_id, seen: list[bytes] = seen, waiting: anyio.Event = waiting
            ) -> None:
                async for entry in store.read(stream_id, "", signal):
                    seen.append(bytes(entry.chunk))
                    waiting.set()  # the next read blocks in Redis until the next frame lands
                    if len(seen) == 2:
                        await store.finalize(stream_id, "done")

            async with anyio.create_task_group() as tg:
                tg.start_soon(read_and_end)
                await waiting.wait()
                await store.append(stream_id, b"two")
            assert seen == [b"one", b"two"]
            assert await store.status(stream_id) == "done"
