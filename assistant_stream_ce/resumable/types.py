"""The store protocol that resumable streams are built on.

A reader is stopped with a :class:`CancellationSignal`, the engine's protocol (a run's
``cancelled_event`` is one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from .._run import CancellationSignal

__all__ = [
    "CancellationSignal",
    "ResumableStreamEntry",
    "ResumableStreamRole",
    "ResumableStreamStatus",
    "ResumableStreamStore",
    "SupportsCancel",
    "SupportsLease",
]

ResumableStreamRole = Literal["producer", "consumer"]
ResumableStreamStatus = Literal["streaming", "done", "error", "missing"]


@dataclass(frozen=True)
class ResumableStreamEntry:
    """One stored frame; ``cursor`` is what a client resumes after."""

    cursor: str
    chunk: bytes


class ResumableStreamStore(Protocol):
    """Where a stream's frames live while producers write and readers follow."""

    async def acquire(self, stream_id: str, *, ttl_ms: int | None = None) -> ResumableStreamRole: ...

    async def append(self, stream_id: str, chunk: bytes) -> None: ...

    async def finalize(self, stream_id: str, status: Literal["done", "error"], error: str | None = None) -> None: ...

    def read(self, stream_id: str, cursor: str, signal: CancellationSignal) -> AsyncIterator[ResumableStreamEntry]: ...

    async def status(self, stream_id: str) -> ResumableStreamStatus: ...

    async def delete(self, stream_id: str) -> None: ...


@runtime_checkable
class SupportsCancel(Protocol):
    """Stores that carry cancel requests between instances."""

    async def request_cancel(self, stream_id: str) -> None: ...

    async def wait_cancel(self, stream_id: str) -> None: ...


@runtime_checkable
class SupportsLease(Protocol):
    """Stores whose producers hold a lease, so that readers notice a producer that died."""

    async def hold_lease(self, stream_id: str) -> None:
        """Renew the lease of ``stream_id`` until cancelled; raise once it is lost."""
        ...
