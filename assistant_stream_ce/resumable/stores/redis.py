"""Redis Streams store: any number of instances share one Redis.

Each stream has four keys, all under ``{key_prefix}:{<stream id>}`` (one
Redis Cluster hash slot): ``meta`` (status, TTL, generation), ``data`` (a
Redis Stream of frames with ids ``<generation>-1``, ``<generation>-2``, ...
so a frame's sequence number is its cursor), ``lease`` (held by the live
producer) and ``ctl`` (cancel requests, read with a blocking XREAD by the
producer's instance). Takes a ``coredis`` client (asyncio and trio) or a
redis-py asyncio client (asyncio only), entered or connected by the
application.

Integrity: every write is a Lua script that checks the stream is still this
producer's, its lease is held and the last stored frame is the one before,
so frames lost by Redis (a restart without persistence, a failover, an
eviction, FLUSHALL) end the stream with an error instead of leaving a gap.
Readers check that frame numbers follow each other, and when idle, that the
producer's lease has not lapsed.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import msgspec

from ..errors import DEFAULT_TTL_MS, ResumableStreamError, parse_cursor, validate_stream_id
from ..types import CancellationSignal, ResumableStreamEntry, ResumableStreamRole, ResumableStreamStatus
from ._redis_clients import RedisCommands, RedisLikeClient, commands_for

__all__ = [
    "DEFAULT_LEASE_MS",
    "FIELD_CHUNK",
    "FIELD_ERROR",
    "FIELD_FIN",
    "FIN_DONE",
    "FIN_ERROR",
    "STREAM_START_ID",
    "RedisLikeClient",
    "RedisResumableStreamStore",
    "create_redis_resumable_stream_store",
]

#: The fields of a stored entry, as assistant-stream 0.0.36 names them: a frame, or the end of a stream.
FIELD_CHUNK = "c"
FIELD_FIN = "fin"
FIELD_ERROR = "error"
#: The values of ``FIELD_FIN``.
FIN_DONE = "done"
FIN_ERROR = "error"
#: The stream id before the first entry (XREAD from here reads everything).
STREAM_START_ID = "0-0"

logger = logging.getLogger("assistant_stream_ce.resumable")

DEFAULT_KEY_PREFIX = "aui:resumable"
DEFAULT_POLL_INTERVAL_MS = 1000
#: How long a producer's lease lasts unless renewed; it is renewed three times per lease.
DEFAULT_LEASE_MS = 10_000
_RENEWALS_PER_LEASE = 3
#: The sequence number of an error ending written without checks: after any frame of its generation.
_LAST_SEQ = 2**64 - 1

# KEYS: meta, data, ctl, lease. ARGV: meta, TTL (s), generation, lease (ms).
# A stream whose producer's lease lapsed while it was streaming is taken over.
_ACQUIRE = """
local meta = redis.call('GET', KEYS[1])
if meta and (cjson.decode(meta).status ~= 'streaming' or redis.call('EXISTS', KEYS[4]) == 1) then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])
return 1
"""

# KEYS: meta, data, lease. ARGV: generation, entry id, previous entry id ('' for none),
# checked ('1': the lease must be held and the previous entry the last one), TTL (s),
# final meta ('' while streaming), then the entry's fields and values. The entry already
# being the last one is this very write sent again by the client (a retry after a
# connection error): it is not written twice.
_WRITE = """
local meta = redis.call('GET', KEYS[1])
if meta and cjson.decode(meta).gen ~= ARGV[1] then return 'replaced' end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
last = last and last[1] or ''
if last == ARGV[2] then return 'ok' end
if ARGV[4] == '1' then
  if not meta then return 'lost' end
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 'lapsed' end
  if last ~= ARGV[3] then return 'lost' end
end
redis.call('XADD', KEYS[2], ARGV[2], unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[2], ARGV[5])
if ARGV[6] == '' then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[6], 'EX', ARGV[5])
  redis.call('DEL', KEYS[3])
end
return 'ok'
"""

# KEYS: meta, lease. One snapshot of both, for readers.
_STATE = "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}"

# KEYS: lease. ARGV: generation, lease (ms).
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_REFUSED = {
    b"lost": "the store lost frames of resumable stream {}",
    b"lapsed": "the producer of resumable stream {} lost its lease",
    b"replaced": "resumable stream {} was restarted by another producer",
}


class _Meta(msgspec.Struct, omit_defaults=True):
    status: Literal["streaming", "done", "error"]
    ttlSec: int
    error: str | None = None
    gen: str | None = None


@dataclass
class _Producing:
    """A stream this store produces: its generation, next frame number and TTL."""

    gen: str
    next: int
    ttl: int
    #: One write at a time: a frame's number and the check of the one before it go together.
    writing: anyio.Lock = field(default_factory=anyio.Lock)


def _ttl_sec(ttl_ms: int) -> int:
    return max(1, math.ceil(ttl_ms / 1000))


def _lost(template: str, stream_id: str) -> ResumableStreamError:
    return ResumableStreamError("lost", template.format(stream_id))


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
        lease_ms: int = DEFAULT_LEASE_MS,
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._ttl_ms = default_ttl_ms
        self._block_ms = poll_interval_ms
        self._max_chunk_bytes = max_chunk_bytes
        self._lease_ms = lease_ms
        self._producing: dict[str, _Producing] = {}

    def _key(self, stream_id: str, part: str) -> str:
        validate_stream_id(stream_id)
        return f"{self._prefix}:{{{stream_id}}}:{part}"

    async def _meta(self, stream_id: str) -> _Meta | None:
        raw = await self._redis.get(self._key(stream_id, "meta"))
        return None if raw is None else msgspec.json.decode(raw, type=_Meta)

    async def acquire(self, stream_id: str, *, ttl_ms: int | None = None) -> ResumableStreamRole:
        ttl = _ttl_sec(self._ttl_ms if ttl_ms is None else ttl_ms)
        gen = str(secrets.randbelow(2**48) + 1)
        keys = [self._key(stream_id, part) for part in ("meta", "data", "ctl", "lease")]
        args: list[str | bytes | int] = [
            msgspec.json.encode(_Meta("streaming", ttl, gen=gen)),
            ttl,
            gen,
            self._lease_ms,
        ]
        if not await self._redis.script(_ACQUIRE, keys, args):
            return "consumer"
        self._producing[stream_id] = _Producing(gen, 1, ttl)
        return "producer"

    async def _write(
        self, stream_id: str, producing: _Producing, fields: dict[str, bytes], final: _Meta | None = None
    ) -> None:
        """Store one entry; only an error ending (``final`` with status error) skips the checks."""
        checked = final is None or final.status != "error"
        keys = [self._key(stream_id, part) for part in ("meta", "data", "lease")]
        async with producing.writing:
            seq = producing.next if checked else _LAST_SEQ
            previous = f"{producing.gen}-{producing.next - 1}" if producing.next > 1 else ""
            args: list[str | bytes | int] = [producing.gen, f"{producing.gen}-{seq}", previous, "1" if checked else ""]
            args += [producing.ttl, b"" if final is None else msgspec.json.encode(final)]
            args += [item for pair in fields.items() for item in pair]
            # Shielded: a write cancelled after Redis took it would leave this store's count behind.
            with anyio.CancelScope(shield=True):
                reply = await self._redis.script(_WRITE, keys, args)
            if reply != b"ok":
                raise _lost(_REFUSED[reply], stream_id)
            producing.next += 1

    async def append(self, stream_id: str, chunk: bytes) -> None:
        producing = self._producing.get(stream_id)
        if producing is None:
            raise ResumableStreamError("finalized", f"stream {stream_id} is not being produced by this store")
        if self._max_chunk_bytes is not None and len(chunk) > self._max_chunk_bytes:
            raise ResumableStreamError("unavailable", f"frame of {len(chunk)} bytes exceeds {self._max_chunk_bytes}")
        await self._write(stream_id, producing, {FIELD_CHUNK: bytes(chunk)})

    async def finalize(self, stream_id: str, status: Literal["done", "error"], error: str | None = None) -> None:
        """End the stream. A "done" that finds frames lost ends it as an error instead, and raises."""
        producing = self._producing.pop(stream_id, None)
        if producing is None:
            return
        lost: ResumableStreamError | None = None
        if status == "done":
            try:
                await self._write(
                    stream_id,
                    producing,
                    {FIELD_FIN: FIN_DONE.encode()},
                    _Meta("done", producing.ttl, gen=producing.gen),
                )
                return
            except ResumableStreamError as err:
                lost, error = err, str(err)
        message = error or "stream failed"
        final = _Meta("error", producing.ttl, message, producing.gen)
        try:
            await self._write(
                stream_id, producing, {FIELD_FIN: FIN_ERROR.encode(), FIELD_ERROR: message.encode()}, final
            )
        except ResumableStreamError as err:
            lost = lost or err  # another producer took the stream over: its keys are not this one's to end
        if lost is not None:
            raise lost

    async def hold_lease(self, stream_id: str) -> None:
        """Renew the lease of a stream produced here until cancelled; raise once it is lost.

        A renewal that fails (Redis unreachable) is tried again at the next turn:
        the lease lapses only if none succeeds for a whole lease.
        """
        producing = self._producing.get(stream_id)
        if producing is None:
            return
        lease = self._key(stream_id, "lease")
        while True:
            await anyio.sleep(self._lease_ms / 1000 / _RENEWALS_PER_LEASE)
            try:
                renewed = await self._redis.script(_RENEW, [lease], [producing.gen, self._lease_ms])
            except Exception as exc:
                logger.warning("resumable stream %s: could not renew the producer's lease: %s", stream_id, exc)
                continue
            if not renewed:
                raise _lost(_REFUSED[b"lapsed"], stream_id)

    async def _still_streaming(self, stream_id: str, gen: str | None) -> bool:
        """Whether the stream a reader follows is still being produced; raise if it is gone or dead."""
        raw_meta, lease = await self._redis.script(_STATE, [self._key(stream_id, p) for p in ("meta", "lease")], [])
        if raw_meta is None:
            raise ResumableStreamError("missing", f"resumable stream expired or lost: {stream_id}")
        meta = msgspec.json.decode(raw_meta, type=_Meta)
        if meta.gen != gen:
            raise _lost(_REFUSED[b"replaced"], stream_id)
        if meta.status == "streaming" and lease != (gen or "").encode():
            raise _lost(_REFUSED[b"lapsed"], stream_id)
        return meta.status == "streaming"

    async def read(
        self, stream_id: str, cursor: str, signal: CancellationSignal
    ) -> AsyncIterator[ResumableStreamEntry]:
        position = parse_cursor(cursor)
        data = self._key(stream_id, "data")
        meta = await self._meta(stream_id)
        if meta is None:
            raise ResumableStreamError("missing", f"resumable stream not found: {stream_id}")
        gen = meta.gen
        last = f"{gen}-{position}"
        finished = False
        while not signal.is_set():
            entries = await self._redis.xread(data, last, 256, None if finished else self._block_ms)
            if not entries:
                if finished:
                    return  # a cursor at or past the end of a finished stream
                # read once more after the stream finished: frames may have landed meanwhile
                finished = not await self._still_streaming(stream_id, gen)
                continue
            for identifier, fields in entries:
                entry_gen, _, seq = identifier.decode().partition("-")
                if entry_gen != gen:
                    raise _lost(_REFUSED[b"replaced"], stream_id)
                if fields.get(FIELD_FIN.encode()) == FIN_ERROR.encode():
                    raise ResumableStreamError("failed", fields.get(FIELD_ERROR.encode(), b"stream failed").decode())
                if int(seq) != position + 1:
                    raise _lost(_REFUSED[b"lost"], stream_id)
                if FIELD_FIN.encode() in fields:
                    return
                position += 1
                last = identifier.decode()
                yield ResumableStreamEntry(seq, fields[FIELD_CHUNK.encode()])
                if signal.is_set():
                    return

    async def status(self, stream_id: str) -> ResumableStreamStatus:
        meta = await self._meta(stream_id)
        return "missing" if meta is None else meta.status

    async def delete(self, stream_id: str) -> None:
        await self._redis.delete([self._key(stream_id, part) for part in ("meta", "data", "ctl", "lease")])

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
        while not await self._redis.xread(ctl, STREAM_START_ID, 1, self._block_ms):
            await anyio.lowlevel.checkpoint()


def create_redis_resumable_stream_store(
    client: Any,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    default_ttl_ms: int = DEFAULT_TTL_MS,
    poll_interval_ms: int = DEFAULT_POLL_INTERVAL_MS,
    max_chunk_bytes: int | None = None,
    lease_ms: int = DEFAULT_LEASE_MS,
) -> RedisResumableStreamStore:
    """A Redis store on a ``coredis.Redis`` client (asyncio or trio) or a redis-py asyncio client.

    ``poll_interval_ms`` is how long one blocking read waits before checking
    whether the stream still exists and its producer still holds its lease.
    ``lease_ms``: a producer that has not renewed its lease for that long
    (its process died) is given up: readers end with an error, and a new
    start with the same id becomes its producer. Give each tenant its own
    ``key_prefix``.
    """
    return RedisResumableStreamStore(
        commands_for(client),
        key_prefix=key_prefix,
        default_ttl_ms=default_ttl_ms,
        poll_interval_ms=poll_interval_ms,
        max_chunk_bytes=max_chunk_bytes,
        lease_ms=lease_ms,
    )
