"""Resumable streams: stores on both backends, and two app instances sharing a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import anyio
import httpx
import pytest
from conformance_helpers import adecode
from http_servers.launch import Server
from resumable.harness import APP, read_frames, recorded_events, redis_server, running_instances, wait_for_event
from resumable.servers import RedisServer

from assistant_stream_ce.resumable import (
    ResumableStreamError,
    create_in_memory_resumable_stream_store,
    create_redis_resumable_stream_store,
    create_resumable_stream_context,
    validate_stream_id,
)
from assistant_stream_ce.resumable.types import ResumableStreamStore

pytestmark = pytest.mark.anyio

__all__ = ["redis_server"]  # the fixture, for this module


# Every store on every backend it supports: redis-py is asyncio-only, coredis covers trio.
STORES = [
    ("memory", "asyncio"),
    ("memory", "trio"),
    ("coredis", "asyncio"),
    ("coredis", "trio"),
    ("redis-py", "asyncio"),
]


@pytest.fixture(params=STORES, ids=[f"{kind}-{backend}" for kind, backend in STORES])
def store_kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    return tuple(request.param)  # type: ignore[return-value]


@pytest.fixture
def anyio_backend(store_kind: tuple[str, str]) -> str:
    return store_kind[1]


@pytest.fixture
async def store(store_kind: tuple[str, str], redis_server: RedisServer) -> AsyncIterator[ResumableStreamStore]:
    prefix = uuid.uuid4().hex
    if store_kind[0] == "memory":
        yield create_in_memory_resumable_stream_store()
    elif store_kind[0] == "coredis":
        import coredis

        async with coredis.Redis(port=redis_server.port) as client:
            yield create_redis_resumable_stream_store(client, key_prefix=prefix, poll_interval_ms=200)
    else:
        import redis.asyncio

        client = redis.asyncio.Redis(port=redis_server.port)
        try:
            yield create_redis_resumable_stream_store(client, key_prefix=prefix, poll_interval_ms=200)
        finally:
            await client.aclose()


async def _collect(store: ResumableStreamStore, stream_id: str, cursor: str = "") -> list[bytes]:
    context = create_resumable_stream_context(store=store)
    return [frame async for frame in context.read(stream_id, cursor)]


async def test_roles_append_resume_exactly_once(store: ResumableStreamStore) -> None:
    assert await store.acquire("s1") == "producer"
    assert await store.acquire("s1") == "consumer"
    frames = [f'0:"{i}"\n'.encode() for i in range(7)]
    for frame in frames:
        await store.append("s1", frame)
    await store.finalize("s1", "done")
    assert await store.status("s1") == "done"
    with anyio.fail_after(5):
        assert await _collect(store, "s1") == frames
        for k in range(len(frames) + 1):
            assert await _collect(store, "s1", str(k)) == frames[k:]


async def test_reader_follows_live_frames(store: ResumableStreamStore) -> None:
    await store.acquire("live")
    seen: list[bytes] = []
    got_first = anyio.Event()

    async def reader() -> None:
        async for frame in create_resumable_stream_context(store=store).read("live"):
            seen.append(frame)
            got_first.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await store.append("live", b"a\n")
            await got_first.wait()
            await store.append("live", b"b\n")
            await store.finalize("live", "done")
    assert seen == [b"a\n", b"b\n"]


async def test_failed_stream_raises_for_readers(store: ResumableStreamStore) -> None:
    await store.acquire("bad")
    await store.append("bad", b"a\n")
    await store.finalize("bad", "error", "upstream died")
    assert await store.status("bad") == "error"
    with anyio.fail_after(5), pytest.raises(ResumableStreamError, match="upstream died"):
        await _collect(store, "bad")


async def test_cancel_request_reaches_waiter(store: ResumableStreamStore) -> None:
    await store.acquire("c1")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.wait_cancel, "c1")  # type: ignore[attr-defined]
            await anyio.wait_all_tasks_blocked()
            await store.request_cancel("c1")  # type: ignore[attr-defined]


async def test_missing_and_deleted(store: ResumableStreamStore) -> None:
    assert await store.status("nope") == "missing"
    context = create_resumable_stream_context(store=store)
    assert await context.resume("nope") is None
    await store.acquire("gone")
    await store.delete("gone")
    assert await store.status("gone") == "missing"


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 257, "a b", "{x}", "key\n", "../../etc"])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ResumableStreamError) as info:
        validate_stream_id(bad)
    assert info.value.code == "invalid-id"


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_in_memory_ttl_expiry() -> None:
    clock = [0.0]
    store = create_in_memory_resumable_stream_store(default_ttl_ms=1000, now=lambda: clock[0])
    await store.acquire("t")
    await store.append("t", b"x\n")
    clock[0] = 999
    assert await store.status("t") == "streaming"
    clock[0] = 2000
    assert await store.status("t") == "missing"
    assert await store.acquire("t") == "producer"


# -- end to end: two instances, one Redis ------------------------------------------------------

STACKS = [("uvicorn", "hypercorn-trio"), ("hypercorn-trio", "hypercorn-asyncio")]


@pytest.fixture(scope="module", params=STACKS, ids=["uvicorn+hypercorn-trio", "hypercorn-trio+hypercorn-asyncio"])
def instances(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[tuple[Server, Server]]:
    env = {"STORE": "redis", "REDIS_PORT": str(redis_server.port), "KEY_PREFIX": "e2e"}
    with running_instances(request.param, env) as (first, second):
        yield first, second


# The HTTP client runs on asyncio (its backend is not what is tested); the
# instances run on asyncio (uvicorn, hypercorn -k asyncio) and trio (hypercorn -k trio).
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(("fmt", "separator"), [("data-stream", b"\n"), ("ui-message-stream", b"\n\n")])
@pytest.mark.parametrize("k", [1, 12])
async def test_resume_on_another_instance_is_exactly_once(
    instances: tuple[Server, Server], fmt: str, separator: bytes, k: int
) -> None:
    first, second = instances
    stream_id = f"resume-{fmt}-{k}-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(timeout=10) as client:
        with anyio.fail_after(20):
            head = await read_frames(client, "POST", f"{first.url}/runs/{stream_id}?format={fmt}", separator, k)
            tail = await read_frames(
                client, "GET", f"{second.url}/runs/{stream_id}?format={fmt}&cursor={k}", separator, None
            )
            whole = await read_frames(client, "GET", f"{first.url}/runs/{stream_id}?format={fmt}", separator, None)
    assert len(head) == k
    assert b"".join(head + tail) == b"".join(whole)
    assert any(b"tail9" in frame for frame in whole)
    # The real client decodes the two halves, as they arrived, into the message of the whole stream.
    resumed, uninterrupted = await adecode(fmt, [[b"".join(head), b"".join(tail)], b"".join(whole)])
    assert resumed.clean() == uninterrupted.clean()
    assert "tail9" in str(uninterrupted.clean())


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_validation_and_missing(instances: tuple[Server, Server]) -> None:
    first, _ = instances
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{first.url}/runs/unknown-id")).status_code == 404
        assert (await client.get(f"{first.url}/runs/bad%7Bid%7D")).status_code == 404  # nothing exists there
        assert (await client.post(f"{first.url}/runs/bad%7Bid%7D")).status_code == 400
        assert (await client.post(f"{first.url}/runs/bad%7Bid%7D/cancel")).status_code == 400
        assert (await client.get(f"{first.url}/runs/x?cursor=-1")).status_code == 400
        assert (await client.get(f"{first.url}/runs/x?cursor=abc")).status_code == 400
        assert (await client.post(f"{first.url}/runs/unknown-id/cancel")).status_code == 404


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cancel_through_the_other_instance_stops_the_producer(instances: tuple[Server, Server]) -> None:
    first, second = instances
    stream_id = f"cancel-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(timeout=10) as client:
        with anyio.fail_after(20):
            frames = await read_frames(client, "POST", f"{first.url}/runs/{stream_id}?scenario=forever", b"\n", 3)
            assert len(frames) == 3
            response = await client.post(f"{second.url}/runs/{stream_id}/cancel")
            assert response.status_code == 204
            await wait_for_event(client, first, {"event": "finally", "stream": stream_id, "cancelled": True})
            await wait_for_event(client, first, {"event": "on_finish", "stream": stream_id, "status": "cancelled"})
            # The stream ends for readers, well-formed, once the producer stopped.
            rest = await read_frames(client, "GET", f"{second.url}/runs/{stream_id}?cursor=3", b"\n", None)
            events = await recorded_events(client, first)
    assert rest[-1].startswith(b"d:"), (rest[-3:], events[-4:])


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_run_can_be_tied_to_its_first_client(instances: tuple[Server, Server]) -> None:
    first, _ = instances
    stream_id = f"tied-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(timeout=10) as client:
        url = f"{first.url}/runs/{stream_id}?scenario=forever&detach=no"
        frames = await read_frames(client, "POST", url, b"\n", 2)
        assert len(frames) == 2
        await wait_for_event(client, first, {"event": "finally", "stream": stream_id, "cancelled": True})
        await wait_for_event(client, first, {"event": "on_finish", "stream": stream_id, "status": "cancelled"})


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_other_tenants_and_expired_streams_are_not_found(
    instances: tuple[Server, Server], redis_server: RedisServer
) -> None:
    import coredis

    first, _ = instances
    env = {"STORE": "redis", "REDIS_PORT": str(redis_server.port), "KEY_PREFIX": "other"}
    stream_id = f"tenant-{uuid.uuid4().hex}"
    with Server("uvicorn", APP, env) as other_tenant:
        async with httpx.AsyncClient(timeout=10) as client:
            whole = await read_frames(client, "POST", f"{first.url}/runs/{stream_id}", b"\n", None)
            assert whole
            assert (await client.get(f"{other_tenant.url}/runs/{stream_id}")).status_code == 404
            async with coredis.Redis(port=redis_server.port) as redis:
                # The TTL runs out now: an expiry time in the past removes the keys at once.
                for part in ("meta", "data"):
                    assert await redis.pexpireat(f"e2e:{{{stream_id}}}:{part}", 1)
            response = await client.get(f"{first.url}/runs/{stream_id}")
            assert response.status_code == 404
            assert "expired" in response.json()["error"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_going_away_ends_streams_with_an_error_frame() -> None:
    with (
        RedisServer() as redis,
        Server("hypercorn-trio", APP, {"STORE": "redis", "REDIS_PORT": str(redis.port), "KEY_PREFIX": "outage"}) as app,
    ):
        async with httpx.AsyncClient(timeout=15) as client:
            with anyio.fail_after(30):
                async with client.stream("POST", f"{app.url}/runs/outage-1?scenario=forever") as response:
                    buffer = b""
                    async with aclosing(response.aiter_raw()) as chunks:
                        async for data in chunks:
                            buffer += data
                            if buffer.count(b"\n") >= 3 and redis.running:
                                redis.kill()
                    # the reader ends the body well-formed: an error frame, then the finish frame
                lines = buffer.splitlines()
                assert any(line.startswith(b"3:") and b"unavailable" in line for line in lines), lines[-3:]
                assert lines[-1].startswith(b"d:")
                await wait_for_event(client, app, {"event": "log", "level": "ERROR"})
                redis.start().wait_ready()  # same port: Redis is back
                whole = await read_frames(client, "POST", f"{app.url}/runs/outage-2", b"\n", None)
                assert any(b"tail9" in frame for frame in whole)
