"""Resumable streams behave as assistant-stream 0.0.36's do, and fail safely and with the right status."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, Literal

import anyio
import anyio.lowlevel
import msgspec
import pytest
import test_resumable
from resumable.servers import RedisServer
from starlette.responses import JSONResponse, Response, StreamingResponse

from assistant_stream_ce import RunController, RunOutcome
from assistant_stream_ce.resumable import (
    ResumableStreamContext,
    ResumableStreamEntry,
    ResumableStreamError,
    ResumableStreamRole,
    ResumableStreamStatus,
    create_in_memory_resumable_stream_store,
    create_redis_resumable_stream_store,
    create_resumable_assistant_stream_response,
    create_resumable_stream_context,
    create_resume_assistant_stream_response,
)
from assistant_stream_ce.resumable.stores.in_memory import InMemoryResumableStreamStore
from assistant_stream_ce.resumable.types import CancellationSignal, ResumableStreamStore

pytestmark = pytest.mark.anyio

redis_server = test_resumable.redis_server  # the same fixture: one redis-server for this module


class ModelWentAway(Exception):
    pass


class Abort(BaseException):
    """An application's own BaseException: neither an Exception nor a cancellation."""


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


def _ends_with_error(body: bytes, text: bytes) -> bool:
    """The data stream ends with an error frame carrying ``text``, then the finish frame for an error."""
    lines = body.splitlines()
    return lines[-2] == b'3:"' + text + b'"' and lines[-1].startswith(b'd:{"finishReason":"error"')


def _json(response: Response) -> Any:
    assert isinstance(response, JSONResponse)
    return msgspec.json.decode(bytes(response.body))


# -- the context: producer errors, wait_until --------------------------------------------------


@pytest.mark.parametrize("raised", [ModelWentAway, Abort], ids=["exception", "base-exception"])
@pytest.mark.parametrize("entered", [False, True], ids=["not-entered", "entered"])
async def test_producer_error_reaches_readers_and_hooks_as_itself(entered: bool, raised: type[BaseException]) -> None:
    """Also a BaseException: nobody awaits a producer, and leaving its task it would end the event loop."""
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
        raise raised("the model went away")

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
    assert type(errors[0]) is raised
    assert finals == [("s", "error", "the model went away")]


async def test_a_run_ended_by_a_base_exception_is_stored_with_one_error_ending(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def callback(controller: RunController) -> None:
        controller.append_text("x")
        await anyio.lowlevel.checkpoint()
        raise Abort("stop")

    with anyio.fail_after(5), caplog.at_level(logging.ERROR, logger="assistant_stream_ce"):
        async with create_resumable_stream_context(store=create_in_memory_resumable_stream_store()) as context:
            body = await _body(
                await create_resumable_assistant_stream_response(context=context, stream_id="s", callback=callback)
            )
            replay = await _body(await create_resume_assistant_stream_response(context=context, stream_id="s"))
    assert body.startswith(b'0:"x"\n')
    assert _ends_with_error(body, b"stop")
    assert body.count(b'"finishReason"') == 1
    assert replay == body


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


# -- the in-memory store ---------------------------------------------------------------------


async def test_in_memory_errors_are_0_0_36s_runtime_errors() -> None:
    store = create_in_memory_resumable_stream_store(max_chunk_bytes=4, max_entries_per_stream=2, max_streams=2)
    signal = anyio.Event()

    async def message(operation: Any) -> str:
        with pytest.raises(RuntimeError) as info:
            await operation
        return str(info.value)

    assert await message(store.append("nope", b"x")) == "Stream not found: nope"
    assert await message(store.finalize("nope", "done")) == "Stream not found: nope"
    assert await message(_drain(store, "nope", signal)) == "Stream not found: nope"
    await store.acquire("a")
    assert await message(store.append("a", b"12345")) == "Chunk exceeds maxChunkBytes: 5"
    await store.append("a", b"1")
    await store.append("a", b"2")
    assert await message(store.append("a", b"3")) == "Stream exceeded maxEntriesPerStream: a"
    await store.acquire("b")
    assert await message(store.acquire("c")) == "maxStreams exceeded"
    await store.finalize("b", "error")
    assert await message(_drain(store, "b", signal)) == "Stream errored"
    await store.finalize("a", "done")
    with pytest.raises(ResumableStreamError) as finalized:
        await store.append("a", b"4")
    assert isinstance(finalized.value, RuntimeError)
    assert finalized.value.code == "finalized"
    assert str(finalized.value) == "Stream already finalized: a"


async def test_in_memory_read_ends_when_its_signal_is_set() -> None:
    store = create_in_memory_resumable_stream_store()
    await store.acquire("a")
    await store.append("a", b"x")
    signal = anyio.Event()
    seen: list[bytes] = []

    async def reader() -> None:
        seen.extend(await _drain(store, "a", signal))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            signal.set()
    assert seen == [b"x"]
    assert await store.status("a") == "streaming"


async def test_in_memory_delete_ends_open_reads() -> None:
    store = create_in_memory_resumable_stream_store()
    await store.acquire("a")
    await store.append("a", b"x")
    seen: list[list[bytes]] = []

    async def reader() -> None:
        seen.append(await _drain(store, "a", anyio.Event()))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await store.delete("a")
    assert seen == [[b"x"], [b"x"]]
    assert await store.status("a") == "missing"
    with pytest.raises(RuntimeError, match="Stream not found: a"):
        await store.append("a", b"y")


async def test_in_memory_reader_ends_when_its_stream_expires() -> None:
    store = create_in_memory_resumable_stream_store(default_ttl_ms=50)
    await store.acquire("a")
    await store.append("a", b"x")
    seen: list[bytes] = []
    with anyio.fail_after(5), pytest.raises(RuntimeError) as info:
        await _extend(seen, (entry.chunk async for entry in store.read("a", "", anyio.Event())))
    assert str(info.value) == "Stream expired"
    assert seen == [b"x"]
    assert await store.status("a") == "missing"


async def test_in_memory_gc_interval_sweeps_streams_nobody_touches() -> None:
    clock = [0.0]
    store = create_in_memory_resumable_stream_store(default_ttl_ms=10**9, gc_interval_ms=50, now=lambda: clock[0])
    await store.acquire("idle")
    await store.append("idle", b"x")
    outcome: list[str] = []

    async def reader() -> None:
        try:
            await _drain(store, "idle", anyio.Event())
        except RuntimeError as err:
            outcome.append(str(err))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            clock[0] = 2.0 * 10**9
            # Any use of the store after the interval sweeps every expired stream, not just the one used.
            assert await store.status("other") == "missing"
    assert outcome == ["Stream expired"]


async def test_in_memory_dispose() -> None:
    for gc_interval_ms in (50, None):
        store = create_in_memory_resumable_stream_store(gc_interval_ms=gc_interval_ms)
        await store.acquire("a")
        store.dispose()
        store.dispose()
        assert await store.status("a") == "streaming"


# -- the Redis store with redis-py-compatible clients ------------------------------------------


class Wrapped:
    """A client wrapped by the application (instrumentation, retries, ...): forwards every attribute."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.used: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.used.add(name)
        return getattr(self.inner, name)


def _redis_py_client(kind: str, port: int, **options: Any) -> Any:
    import redis.asyncio

    class AppRedis(redis.asyncio.Redis):  # type: ignore[misc]
        """An application's own subclass."""

    if kind == "subclass":
        return AppRedis(port=port, **options)
    if kind == "resp3":
        return redis.asyncio.Redis(port=port, protocol=3, **options)
    return Wrapped(redis.asyncio.Redis(port=port, **options))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", ["subclass", "wrapped", "resp3"])
async def test_redis_store_takes_any_redis_py_compatible_client(kind: str, redis_server: RedisServer) -> None:
    client = _redis_py_client(kind, redis_server.port)
    try:
        store = create_redis_resumable_stream_store(client, key_prefix=uuid.uuid4().hex, poll_interval_ms=100)
        assert await store.acquire("s") == "producer"
        assert await store.acquire("s") == "consumer"
        frames = [bytes([i]) * 3 + b"\n" for i in range(256)]
        seen: list[bytes] = []

        async def reader() -> None:
            seen.extend([frame async for frame in create_resumable_stream_context(store=store).read("s")])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                for frame in frames:
                    await store.append("s", frame)
                await store.finalize("s", "done")
        assert seen == frames
        assert await store.status("s") == "done"
        if isinstance(client, Wrapped):
            assert client.used
    finally:
        await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", ["subclass", "wrapped"])
async def test_redis_store_refuses_a_client_that_decodes_responses(kind: str, redis_server: RedisServer) -> None:
    client = _redis_py_client(kind, redis_server.port, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            create_redis_resumable_stream_store(client)
    finally:
        await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", ["subclass", "wrapped", "resp3"])
async def test_redis_like_client_is_a_protocol_of_redis_py_compatible_clients(kind: str) -> None:
    from assistant_stream_ce.resumable import RedisLikeClient

    assert getattr(RedisLikeClient, "_is_protocol", False)
    client = _redis_py_client(kind, 1)  # never connects
    try:
        assert isinstance(client, RedisLikeClient)
        assert not isinstance(object(), RedisLikeClient)
    finally:
        await client.aclose()


# -- HTTP: status codes ------------------------------------------------------------------------


async def test_resume_with_a_malformed_id_is_not_found() -> None:
    context = create_resumable_stream_context(store=create_in_memory_resumable_stream_store())
    for stream_id in ("x" * 300, "bad{id}", "a/b", ""):
        response = await create_resume_assistant_stream_response(context=context, stream_id=stream_id)
        assert response.status_code == 404
        assert _json(response)["error"].startswith("stream not found")
        custom = await create_resume_assistant_stream_response(
            context=context, stream_id=stream_id, missing_response=lambda: Response("gone", status_code=410)
        )
        assert (custom.status_code, custom.body) == (410, b"gone")


async def _forever(controller: RunController, *, finished: list[bool], stopped: anyio.Event) -> None:
    try:
        while True:
            controller.append_text("tick ")
            await anyio.sleep(0.005)
    finally:
        finished.append(controller.is_cancelled)
        stopped.set()


async def test_start_and_cancel_answer_400_and_404() -> None:
    from assistant_stream_ce.resumable import create_cancel_assistant_stream_response

    outcomes: list[RunOutcome] = []
    finished: list[bool] = []
    stopped, reported = anyio.Event(), anyio.Event()

    def on_finish(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        reported.set()

    async def callback(controller: RunController) -> None:
        await _forever(controller, finished=finished, stopped=stopped)

    with anyio.fail_after(5):
        async with create_resumable_stream_context(store=create_in_memory_resumable_stream_store()) as context:
            response = await create_resumable_assistant_stream_response(
                context=context, stream_id="bad{id}", callback=callback
            )
            assert response.status_code == 400
            assert "invalid stream id" in _json(response)["error"]

            response = await create_cancel_assistant_stream_response(context=context, stream_id="bad{id}")
            assert response.status_code == 400
            assert "invalid stream id" in _json(response)["error"]
            response = await create_cancel_assistant_stream_response(context=context, stream_id="unknown")
            assert response.status_code == 404
            assert _json(response)["error"].startswith("stream not found")

            started = await create_resumable_assistant_stream_response(
                context=context, stream_id="live", callback=callback, on_finish=on_finish
            )
            assert started.status_code == 200
            response = await create_cancel_assistant_stream_response(context=context, stream_id="live")
            assert response.status_code == 204
            await stopped.wait()
            await reported.wait()
    assert finished == [True]
    assert [outcome.status for outcome in outcomes] == ["cancelled"]


# -- error texts: one hook, a safe default for the store -------------------------------------


async def _failing_callback(controller: RunController) -> None:
    controller.append_text("working ")
    raise ModelWentAway("db password is hunter2")


async def test_error_message_hook_turns_run_errors_into_the_clients_text() -> None:
    seen: list[BaseException] = []

    def error_message(exc: BaseException) -> str:
        seen.append(exc)
        return "Something went wrong"

    with anyio.fail_after(5):
        async with create_resumable_stream_context(store=create_in_memory_resumable_stream_store()) as context:
            body = await _body(
                await create_resumable_assistant_stream_response(
                    context=context, stream_id="s", callback=_failing_callback, error_message=error_message
                )
            )
            replay = await _body(await create_resume_assistant_stream_response(context=context, stream_id="s"))
            default = await _body(
                await create_resumable_assistant_stream_response(
                    context=context, stream_id="t", callback=_failing_callback
                )
            )
    assert b'3:"Something went wrong"\n' in body
    assert b"hunter2" not in body
    assert replay == body
    assert [type(exc) for exc in seen] == [ModelWentAway]
    # The default is the run's: the exception's message.
    assert b'3:"db password is hunter2"\n' in default


class BrokenStore:
    """A store whose connection fails: reads after the first frame, or every call."""

    def __init__(self, inner: InMemoryResumableStreamStore, broken: Literal["reads", "everything"]) -> None:
        self.inner = inner
        self.broken = broken

    def _fail(self) -> None:
        raise ConnectionError("Error 111 connecting to 10.1.2.3:6379. Connection refused.")

    async def acquire(self, stream_id: str, *, ttl_ms: int | None = None) -> ResumableStreamRole:
        if self.broken == "everything":
            self._fail()
        return await self.inner.acquire(stream_id, ttl_ms=ttl_ms)

    async def append(self, stream_id: str, chunk: bytes) -> None:
        await self.inner.append(stream_id, chunk)

    async def finalize(self, stream_id: str, status: Literal["done", "error"], error: str | None = None) -> None:
        await self.inner.finalize(stream_id, status, error)

    async def read(
        self, stream_id: str, cursor: str, signal: CancellationSignal
    ) -> AsyncIterator[ResumableStreamEntry]:
        async with aclosing(self.inner.read(stream_id, cursor, signal)) as entries:
            async for entry in entries:
                yield entry
                self._fail()

    async def status(self, stream_id: str) -> ResumableStreamStatus:
        if self.broken == "everything":
            self._fail()
        return await self.inner.status(stream_id)

    async def delete(self, stream_id: str) -> None:
        await self.inner.delete(stream_id)


async def _hello(controller: RunController) -> None:
    controller.append_text("hello")


async def _started(context: ResumableStreamContext, **options: Any) -> Response:
    options.setdefault("callback", _hello)
    return await create_resumable_assistant_stream_response(context=context, stream_id="s", **options)


async def _resumed(context: ResumableStreamContext, **options: Any) -> Response:
    await _body(await _started(context))  # the run, read through the failing store
    return await create_resume_assistant_stream_response(context=context, stream_id="s", **options)


@pytest.mark.parametrize("respond", [_started, _resumed], ids=["start", "resume"])
async def test_store_failures_send_a_safe_text_and_log_the_real_one(
    respond: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(5):
        async with create_resumable_stream_context(
            store=BrokenStore(create_in_memory_resumable_stream_store(), "reads")
        ) as context:
            body = await _body(await respond(context))
            custom = await _body(
                await respond(context, error_message=lambda exc: f"try again later ({type(exc.__cause__).__name__})")
            )
    assert _ends_with_error(body, b"stream unavailable"), body
    assert b"10.1.2.3" not in body
    assert b'3:"try again later (ConnectionError)"\n' in custom
    assert any("10.1.2.3" in record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR)


@pytest.mark.parametrize("respond", [_started, _resumed], ids=["start", "resume"])
async def test_a_store_that_is_down_answers_503(respond: Any, caplog: pytest.LogCaptureFixture) -> None:
    store = BrokenStore(create_in_memory_resumable_stream_store(), "everything")
    context = create_resumable_stream_context(store=store)
    with anyio.fail_after(5):
        if respond is _started:
            response = await _started(context)
        else:
            response = await create_resume_assistant_stream_response(context=context, stream_id="s")
    assert response.status_code == 503
    assert _json(response) == {"error": "stream unavailable"}
    assert any("10.1.2.3" in record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR)


@pytest.mark.parametrize("max_entries", [0, 1], ids=["text-frame", "finish-frame"])
async def test_a_store_that_refuses_a_frame_fails_the_stream_instead_of_ending_it_early(max_entries: int) -> None:
    store = create_in_memory_resumable_stream_store(max_entries_per_stream=max_entries)
    with anyio.fail_after(5):
        async with create_resumable_stream_context(store=store) as context:
            body = await _body(await _started(context))
            replay = await _body(await create_resume_assistant_stream_response(context=context, stream_id="s"))
            assert await store.status("s") == "error"
    assert _ends_with_error(body, b"stream unavailable"), body
    assert (b'0:"hello"\n' in body) == (max_entries == 1)
    assert b"maxEntriesPerStream" not in body
    assert replay == body


class _StallingStore(InMemoryResumableStreamStore):
    """An in-memory store whose third write stalls until it is cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.stalled = anyio.Event()

    async def append(self, stream_id: str, chunk: bytes) -> None:
        self.writes += 1
        if self.writes == 3:
            self.stalled.set()
            await anyio.sleep_forever()
        await super().append(stream_id, chunk)


async def test_a_cancel_while_a_frame_is_being_stored_still_stores_the_finish_frames() -> None:
    async def talk(controller: RunController) -> None:
        while True:
            controller.append_text("word ")
            await anyio.lowlevel.checkpoint()

    store = _StallingStore()
    with anyio.fail_after(5):
        async with create_resumable_stream_context(store=store) as context:
            await _started(context, callback=talk)
            await store.stalled.wait()
            await context.cancel("s")
            replay = await _body(await create_resume_assistant_stream_response(context=context, stream_id="s"))
    assert replay.startswith(b'0:"word '), replay
    assert replay.splitlines()[-1].startswith(b"d:"), replay
