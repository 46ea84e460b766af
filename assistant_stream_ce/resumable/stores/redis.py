"""Redis Streams store: any number of instances share one Redis.

Each stream has three keys, all under ``{key_prefix}:{<stream id>}`` (one
Redis Cluster hash slot): ``meta`` (status, TTL), ``data`` (a Redis Stream of
frames with ids ``0-1``, ``0-2``, ... so a frame's id is its cursor) and
``ctl`` (cancel requests, read with a blocking XREAD by the producer's
instance). Works with a ``coredis`` client on asyncio and trio; the client is
entered (``async with client:``) by the application.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
import msgspec

from ..errors import DEFAULT_TTL_MS, ResumableStreamError, parse_cursor, validate_stream_id
from ..types import CancellationSignal, ResumableStreamEntry, ResumableStreamRole, ResumableStreamStatus

__all__ = ["RedisResumableStreamStore", "create_redis_resumable_stream_store"]

DEFAULT_KEY_PREFIX = "aui:resumable"
DEFAULT_POLL_INTERVAL_MS = 1000


class _Meta(msgspec.Struct, omit_defaults=True):
    status: Literal["streaming", "done", "error"]
    ttlSec: int
    error: str | None = None


def _ttl_sec(ttl_ms: int) -> int:
    return max(1, math.ceil(ttl_ms / 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisResumableStreamStore:
    """A store on Redis Streams through a coredis client."""

    def __init__(
        self,
        client: Any,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        default_ttl_ms: int = DEFAULT_TTL_MS,
        poll_interval_ms: int = DEFAULT_POLL_INTERVAL_MS,
        max_chunk_bytes: int | None = None,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._ttl_ms = default_ttl_ms
        self._block_ms = poll_interval_ms
        self._max_chunk_bytes = max_chunk_bytes
        self._next: dict[str, tuple[int, int]] = {}  # streams produced here: next frame number, TTL

    def _key(self, stream_id: str, part: str) -> str:
        validate_stream_id(stream_id)
        return f"{self._prefix}:{{{stream_id}}}:{part}"

    async def _meta(self, stream_id: str) -> _Meta | None:
        raw = await self._client.get(self._key(stream_id, "meta"))
        return None if raw is None else msgspec.json.decode(raw, type=_Meta)

    async def acquire(self, stream_id: str, *, ttl_ms: int | None = None) -> ResumableStreamRole:
        from coredis import PureToken

        ttl = _ttl_sec(self._ttl_ms if ttl_ms is None else ttl_ms)
        meta = msgspec.json.encode(_Meta("streaming", ttl))
        if not await self._client.set(self._key(stream_id, "meta"), meta, condition=PureToken.NX, ex=ttl):
            return "consumer"
        await self._client.delete([self._key(stream_id, "data"), self._key(stream_id, "ctl")])
        self._next[stream_id] = (1, ttl)
        return "producer"

    async def _add(self, stream_id: str, fields: dict[str, bytes], meta: _Meta | None = None) -> None:
        number, ttl = self._next[stream_id]
        self._next[stream_id] = (number + 1, ttl)
        data, meta_key = self._key(stream_id, "data"), self._key(stream_id, "meta")
        # Shielded: a write cancelled after Redis took it would leave this instance's count behind.
        with anyio.CancelScope(shield=True):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xadd(data, fields, identifier=f"0-{number}")
                pipe.expire(data, ttl)
                if meta is None:
                    pipe.expire(meta_key, ttl)
                else:
                    pipe.set(meta_key, msgspec.json.encode(meta), ex=ttl)

    async def append(self, stream_id: str, chunk: bytes) -> None:
        if stream_id not in self._next:
            raise ResumableStreamError("finalized", f"stream {stream_id} is not being produced by this store")
        if self._max_chunk_bytes is not None and len(chunk) > self._max_chunk_bytes:
            raise ResumableStreamError("unavailable", f"frame of {len(chunk)} bytes exceeds {self._max_chunk_bytes}")
        await self._add(stream_id, {"c": bytes(chunk)})

    async def finalize(self, stream_id: str, status: Literal["done", "error"], error: str | None = None) -> None:
        if stream_id not in self._next:
            return
        _, ttl = self._next[stream_id]
        message = (error or "stream failed") if status == "error" else None
        fields = {"fin": status.encode()} | ({"error": message.encode()} if message else {})
        await self._add(stream_id, fields, _Meta(status, ttl, message))
        del self._next[stream_id]

    async def read(
        self, stream_id: str, cursor: str, signal: CancellationSignal
    ) -> AsyncIterator[ResumableStreamEntry]:
        last = f"0-{parse_cursor(cursor)}"
        data = self._key(stream_id, "data")
        if await self._meta(stream_id) is None:
            raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
        finished = False
        while not signal.is_set():
            reply = await self._client.xread({data: last}, count=256, block=None if finished else self._block_ms)
            if not reply:
                if finished:
                    return  # a cursor at or past the end of a finished stream
                meta = await self._meta(stream_id)
                if meta is None:
                    raise ResumableStreamError("missing", f"resumable stream expired: {stream_id}")
                finished = meta.status != "streaming"  # read once more: frames may have landed meanwhile
                continue
            for entry in next(iter(reply.values())):
                last = _text(entry.identifier)
                fields = {_text(key): value for key, value in entry.field_values.items()}
                if "fin" in fields:
                    if _text(fields["fin"]) == "error":
                        raise ResumableStreamError("failed", _text(fields.get("error", b"stream failed")))
                    return
                yield ResumableStreamEntry(last.partition("-")[2], bytes(fields["c"]))
                if signal.is_set():
                    return

    async def status(self, stream_id: str) -> ResumableStreamStatus:
        meta = await self._meta(stream_id)
        return "missing" if meta is None else meta.status

    async def delete(self, stream_id: str) -> None:
        await self._client.delete([self._key(stream_id, part) for part in ("meta", "data", "ctl")])

    async def request_cancel(self, stream_id: str) -> None:
        """Ask the producer of ``stream_id``, on whichever instance it runs, to stop."""
        meta = await self._meta(stream_id)
        if meta is None:
            raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
        ctl = self._key(stream_id, "ctl")
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(ctl, {"cancel": b"1"})
            pipe.expire(ctl, meta.ttlSec)

    async def wait_cancel(self, stream_id: str) -> None:
        """Return once a cancel was requested for ``stream_id``."""
        ctl = self._key(stream_id, "ctl")
        while not await self._client.xread({ctl: "0-0"}, count=1, block=self._block_ms):
            await anyio.lowlevel.checkpoint()


def create_redis_resumable_stream_store(
    client: Any,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    default_ttl_ms: int = DEFAULT_TTL_MS,
    poll_interval_ms: int = DEFAULT_POLL_INTERVAL_MS,
    max_chunk_bytes: int | None = None,
) -> RedisResumableStreamStore:
    """A Redis store on a ``coredis.Redis`` client (asyncio or trio).

    Give each tenant its own ``key_prefix`` to keep their streams apart.
    """
    try:
        import coredis
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("the Redis store needs coredis: pip install 'assistant-stream-ce[redis]'") from exc
    if not isinstance(client, coredis.Redis):
        raise TypeError(f"expected a coredis.Redis client, not {type(client).__name__}")
    return RedisResumableStreamStore(
        client,
        key_prefix=key_prefix,
        default_ttl_ms=default_ttl_ms,
        poll_interval_ms=poll_interval_ms,
        max_chunk_bytes=max_chunk_bytes,
    )
