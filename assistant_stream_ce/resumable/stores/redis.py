"""Redis Streams store: any number of instances share one Redis.

Each stream has three keys, all under ``{key_prefix}:{<stream id>}`` (one
Redis Cluster hash slot): ``meta`` (status, TTL), ``data`` (a Redis Stream of
frames with ids ``0-1``, ``0-2``, ... so a frame's id is its cursor) and
``ctl`` (cancel requests, read with a blocking XREAD by the producer's
instance). Takes a ``coredis`` client (asyncio and trio) or a redis-py
asyncio client (asyncio only), entered or connected by the application.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
import msgspec

from ..errors import DEFAULT_TTL_MS, ResumableStreamError, parse_cursor, validate_stream_id
from ..types import CancellationSignal, ResumableStreamEntry, ResumableStreamRole, ResumableStreamStatus
from ._redis_clients import RedisCommands, Write, commands_for

__all__ = ["RedisResumableStreamStore", "create_redis_resumable_stream_store"]

DEFAULT_KEY_PREFIX = "aui:resumable"
DEFAULT_POLL_INTERVAL_MS = 1000


class _Meta(msgspec.Struct, omit_defaults=True):
    status: Literal["streaming", "done", "error"]
    ttlSec: int
    error: str | None = None


def _ttl_sec(ttl_ms: int) -> int:
    return max(1, math.ceil(ttl_ms / 1000))


class RedisResumableStreamStore:
    """A store on Redis Streams."""

    def __init__(
        self,
        redis: RedisCommands,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        default_ttl_ms: int = DEFAULT_TTL_MS,
        poll_interval_ms: int = DEFAULT_POLL_INTERVAL_MS,
        max_chunk_bytes: int | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._ttl_ms = default_ttl_ms
        self._block_ms = poll_interval_ms
        self._max_chunk_bytes = max_chunk_bytes
        self._next: dict[str, tuple[int, int]] = {}  # streams produced here: next frame number, TTL

    def _key(self, stream_id: str, part: str) -> str:
        validate_stream_id(stream_id)
        return f"{self._prefix}:{{{stream_id}}}:{part}"

    async def _meta(self, stream_id: str) -> _Meta | None:
        raw = await self._redis.get(self._key(stream_id, "meta"))
        return None if raw is None else msgspec.json.decode(raw, type=_Meta)

    async def acquire(self, stream_id: str, *, ttl_ms: int | None = None) -> ResumableStreamRole:
        ttl = _ttl_sec(self._ttl_ms if ttl_ms is None else ttl_ms)
        meta = msgspec.json.encode(_Meta("streaming", ttl))
        if not await self._redis.set_nx(self._key(stream_id, "meta"), meta, ttl):
            return "consumer"
        await self._redis.delete([self._key(stream_id, "data"), self._key(stream_id, "ctl")])
        self._next[stream_id] = (1, ttl)
        return "producer"

    async def _add(self, stream_id: str, fields: dict[str, bytes], meta: _Meta | None = None) -> None:
        number, ttl = self._next[stream_id]
        self._next[stream_id] = (number + 1, ttl)
        data, meta_key = self._key(stream_id, "data"), self._key(stream_id, "meta")
        writes: list[Write] = [("xadd", data, f"0-{number}", fields), ("expire", data, ttl)]
        writes.append(("expire", meta_key, ttl) if meta is None else ("set", meta_key, msgspec.json.encode(meta), ttl))
        # Shielded: a write cancelled after Redis took it would leave this instance's count behind.
        with anyio.CancelScope(shield=True):
            await self._redis.transaction(writes)

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
            entries = await self._redis.xread(data, last, 256, None if finished else self._block_ms)
            if not entries:
                if finished:
                    return  # a cursor at or past the end of a finished stream
                meta = await self._meta(stream_id)
                if meta is None:
                    raise ResumableStreamError("missing", f"resumable stream expired: {stream_id}")
                finished = meta.status != "streaming"  # read once more: frames may have landed meanwhile
                continue
            for identifier, fields in entries:
                last = identifier.decode()
                if b"fin" in fields:
                    if fields[b"fin"] == b"error":
                        raise ResumableStreamError("failed", fields.get(b"error", b"stream failed").decode())
                    return
                yield ResumableStreamEntry(last.partition("-")[2], fields[b"c"])
                if signal.is_set():
                    return

    async def status(self, stream_id: str) -> ResumableStreamStatus:
        meta = await self._meta(stream_id)
        return "missing" if meta is None else meta.status

    async def delete(self, stream_id: str) -> None:
        await self._redis.delete([self._key(stream_id, part) for part in ("meta", "data", "ctl")])

    async def request_cancel(self, stream_id: str) -> None:
        """Ask the producer of ``stream_id``, on whichever instance it runs, to stop."""
        meta = await self._meta(stream_id)
        if meta is None:
            raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
        ctl = self._key(stream_id, "ctl")
        await self._redis.transaction([("xadd", ctl, "*", {"cancel": b"1"}), ("expire", ctl, meta.ttlSec)])

    async def wait_cancel(self, stream_id: str) -> None:
        """Return once a cancel was requested for ``stream_id``."""
        ctl = self._key(stream_id, "ctl")
        while not await self._redis.xread(ctl, "0-0", 1, self._block_ms):
            await anyio.lowlevel.checkpoint()


def create_redis_resumable_stream_store(
    client: Any,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    default_ttl_ms: int = DEFAULT_TTL_MS,
    poll_interval_ms: int = DEFAULT_POLL_INTERVAL_MS,
    max_chunk_bytes: int | None = None,
) -> RedisResumableStreamStore:
    """A Redis store on a ``coredis.Redis`` client (asyncio or trio) or a redis-py asyncio client.

    ``poll_interval_ms`` is how long one blocking read waits before checking
    whether the stream still exists. Give each tenant its own ``key_prefix``.
    """
    return RedisResumableStreamStore(
        commands_for(client),
        key_prefix=key_prefix,
        default_ttl_ms=default_ttl_ms,
        poll_interval_ms=poll_interval_ms,
        max_chunk_bytes=max_chunk_bytes,
    )
