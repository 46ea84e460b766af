"""Resumable streams: a run's frames go to a store, clients reconnect and resume.

Mirrors the ``assistant_stream.resumable`` API of assistant-stream 0.0.36, on
asyncio and trio, with an in-memory store and a Redis Streams store (coredis).
"""

from .context import ProducerTask, ResumableStreamContext, create_resumable_stream_context
from .errors import DEFAULT_TTL_MS, ResumableStreamError, ResumableStreamErrorCode, validate_stream_id
from .response import (
    RESUMABLE_STREAM_ID_HEADER,
    ResumableStreamResponse,
    create_cancel_assistant_stream_response,
    create_resumable_assistant_stream_response,
    create_resume_assistant_stream_response,
    resume_cursor,
)
from .stores._redis_clients import RedisLikeClient
from .stores.in_memory import InMemoryResumableStreamStore, create_in_memory_resumable_stream_store
from .stores.redis import RedisResumableStreamStore, create_redis_resumable_stream_store
from .types import (
    CancellationSignal,
    ResumableStreamEntry,
    ResumableStreamRole,
    ResumableStreamStatus,
    ResumableStreamStore,
    SupportsCancel,
)

__all__ = [
    "DEFAULT_TTL_MS",
    "RESUMABLE_STREAM_ID_HEADER",
    "CancellationSignal",
    "InMemoryResumableStreamStore",
    "ProducerTask",
    "RedisLikeClient",
    "RedisResumableStreamStore",
    "ResumableStreamContext",
    "ResumableStreamEntry",
    "ResumableStreamError",
    "ResumableStreamErrorCode",
    "ResumableStreamResponse",
    "ResumableStreamRole",
    "ResumableStreamStatus",
    "ResumableStreamStore",
    "SupportsCancel",
    "create_cancel_assistant_stream_response",
    "create_in_memory_resumable_stream_store",
    "create_redis_resumable_stream_store",
    "create_resumable_assistant_stream_response",
    "create_resumable_stream_context",
    "create_resume_assistant_stream_response",
    "resume_cursor",
    "validate_stream_id",
]
