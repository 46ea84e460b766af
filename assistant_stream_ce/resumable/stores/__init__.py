"""Stores for resumable streams: in memory (embedded) and Redis Streams."""

from .in_memory import InMemoryResumableStreamStore, create_in_memory_resumable_stream_store
from .redis import RedisResumableStreamStore, create_redis_resumable_stream_store

__all__ = [
    "InMemoryResumableStreamStore",
    "RedisResumableStreamStore",
    "create_in_memory_resumable_stream_store",
    "create_redis_resumable_stream_store",
]
