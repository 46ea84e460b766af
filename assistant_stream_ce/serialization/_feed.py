"""An async iterator fed by a task that the iterator owns.

For the plain ``async for`` forms that give the library no scope of the
consumer's to start a task group in (a response's ``body_iterator``,
``add_keepalive``): the producer runs in a detached task (as a run's own
``async for`` does), hands an item over only when one is asked for, and is
cancelled and waited for when the consumer stops: ``aclose()``, a cancelled
``__anext__``, or dropping the iterator.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import _detached

T = TypeVar("T")

Put = Callable[[T], Awaitable[None]]
Produce = Callable[[Put[T]], Awaitable[None]]


class _Producer(Generic[T]):
    """The detached task's side; it holds no reference to the iterator, so dropping that cancels it."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.error: Exception | None = None

    async def run(self, produce: Produce[T], send: MemoryObjectSendStream[T]) -> None:
        try:
            with self.scope, send:
                await produce(send.send)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the consumer stopped reading
        except Exception as exc:
            self.error = exc  # raised to the consumer after the items sent before it
        finally:
            self.done.set()


class DetachedFeed(Generic[T]):
    """``async for item in DetachedFeed(produce)``: the items ``await produce(put)`` puts."""

    def __init__(self, produce: Produce[T], grace_period: float) -> None:
        self._produce = produce
        self._grace_period = grace_period
        self._producer: _Producer[T] | None = None
        self._receive: MemoryObjectReceiveStream[T] | None = None

    def __aiter__(self) -> DetachedFeed[T]:
        return self

    async def __anext__(self) -> T:
        if self._receive is None:
            send, self._receive = anyio.create_memory_object_stream[T](0)
            self._producer = producer = _Producer[T]()
            _detached.spawn(functools.partial(producer.run, self._produce, send))
        assert self._producer is not None
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._receive.close()
            error, self._producer.error = self._producer.error, None
            if error is not None:
                raise error from None
            raise StopAsyncIteration from None
        except BaseException:
            self._stop()
            raise

    def _stop(self) -> None:
        if self._producer is not None and self._receive is not None:
            self._producer.scope.cancel()
            self._receive.close()

    async def aclose(self) -> None:
        """Stop the producer and wait (up to the grace period) for its cleanup."""
        self._stop()
        if self._producer is not None:
            with anyio.move_on_after(self._grace_period, shield=True):
                await self._producer.done.wait()

    def __del__(self) -> None:
        if self._receive is not None:
            with contextlib.suppress(Exception):  # the event loop may be gone already
                self._stop()
