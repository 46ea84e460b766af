"""The few Redis commands the store needs, over coredis (asyncio, trio) or a redis-py-compatible client (asyncio)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

#: One entry of a Redis Stream: its id and its fields, as bytes.
Entry = tuple[bytes, dict[bytes, bytes]]
#: A write in a transaction: ("xadd", key, id, fields) or ("expire", key, seconds).
Write = tuple[Any, ...]


class RedisCommands(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def transaction(self, writes: Sequence[Write]) -> None: ...

    async def xread(self, key: str, after: str, count: int, block_ms: int | None) -> list[Entry]: ...

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any: ...


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class _Scripts:
    """Lua scripts run by their digest (EVALSHA); both clients reload one the server forgot."""

    _client: Any
    _scripts: dict[str, Any]

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
        if source not in self._scripts:
            self._scripts[source] = self._client.register_script(source)
        return await self._scripts[source](keys=list(keys), args=list(args))


class CoredisCommands(_Scripts):
    """A ``coredis.Redis`` client (entered by the application)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._scripts = {}

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(key)
        return None if value is None else _bytes(value)

    async def delete(self, keys: Sequence[str]) -> None:
        await self._client.delete(list(keys))

    async def transaction(self, writes: Sequence[Write]) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            for write in writes:
                if write[0] == "xadd":
                    pipe.xadd(write[1], write[3], identifier=write[2])
                else:
                    pipe.expire(write[1], write[2])

    async def xread(self, key: str, after: str, count: int, block_ms: int | None) -> list[Entry]:
        reply = await self._client.xread({key: after}, count=count, block=block_ms)
        if not reply:
            return []
        return [
            (_bytes(entry.identifier), {_bytes(k): _bytes(v) for k, v in entry.field_values.items()})
            for entry in next(iter(reply.values()))
        ]


@runtime_checkable
class RedisLikeClient(Protocol):
    """A client with redis-py's asyncio API: ``redis.asyncio.Redis``, a subclass, fakeredis, valkey, a wrapper.

    Only the methods the store calls are required; the client must not decode responses.
    """

    def get(self, *args: Any, **kwargs: Any) -> Any: ...

    def delete(self, *args: Any, **kwargs: Any) -> Any: ...

    def pipeline(self, *args: Any, **kwargs: Any) -> Any: ...

    def xread(self, *args: Any, **kwargs: Any) -> Any: ...

    def register_script(self, *args: Any, **kwargs: Any) -> Any: ...


class RedisPyCommands(_Scripts):
    """A :class:`RedisLikeClient` (asyncio only; made without ``decode_responses``)."""

    def __init__(self, client: RedisLikeClient) -> None:
        self._client = client
        self._scripts = {}

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(key)
        return None if value is None else _bytes(value)

    async def delete(self, keys: Sequence[str]) -> None:
        await self._client.delete(*keys)

    async def transaction(self, writes: Sequence[Write]) -> None:
        pipe = self._client.pipeline(transaction=True)
        for write in writes:
            if write[0] == "xadd":
                pipe.xadd(write[1], dict(write[3]), id=write[2])
            else:
                pipe.expire(write[1], write[2])
        await pipe.execute()

    async def xread(self, key: str, after: str, count: int, block_ms: int | None) -> list[Entry]:
        reply = await self._client.xread({key: after}, count=count, block=block_ms)
        if not reply:
            return []
        # RESP2 answers [[key, entries]], RESP3 (protocol=3) {key: [entries]}.
        entries = next(iter(reply.values()))[0] if isinstance(reply, dict) else reply[0][1]
        return [(_bytes(entry_id), {_bytes(k): _bytes(v) for k, v in fields.items()}) for entry_id, fields in entries]


def commands_for(client: Any) -> RedisCommands:
    """Wrap a coredis client (or a subclass of one), or else any client with redis-py's asyncio API."""
    if any(cls.__module__.partition(".")[0] == "coredis" for cls in type(client).__mro__):
        if client.decode_responses:
            raise ValueError("make the coredis client without decode_responses: frames are bytes")
        return CoredisCommands(client)
    if not isinstance(client, RedisLikeClient):
        raise TypeError(f"expected a coredis client or a redis.asyncio-compatible client, not {type(client).__name__}")
    options = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if isinstance(options, dict) and options.get("decode_responses"):
        raise ValueError("make the redis client without decode_responses: frames are bytes")
    return RedisPyCommands(client)
