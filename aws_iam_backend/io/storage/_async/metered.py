"""A storage that reports each call's latency and errors to a
:class:`~aws_iam_backend.drivers.metrics.Metrics` (:class:`AsyncMeteredStorage`)."""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from types import TracebackType

from aws_iam_backend.drivers.metrics import Metrics, outcome_of
from aws_iam_backend.io import protocols
from aws_iam_backend.io.protocols import Document, Operation


class _Timed:
    """Reports the call it wraps (``with``) as ``metrics.storage(op, seconds, error)``."""

    __slots__ = ("_metrics", "_op", "_started")

    def __init__(self, metrics: Metrics, op: str) -> None:
        self._metrics = metrics
        self._op = op
        self._started = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        error = "" if exc is None else outcome_of(exc)
        self._metrics.storage(self._op, time.perf_counter() - self._started, error)


class AsyncMeteredStorage:
    """``inner`` with every call reported as ``metrics.storage(op, seconds, error)``: ``op``
    is the method's name, ``error`` "" or the class of the error it raised (a
    ``ConflictError`` is a conditional write that lost its race, not a fault).

    Put it under any cache, so that only calls that reach the store are measured.
    """

    def __init__(self, inner: protocols.AsyncStorage, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    async def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        with _Timed(self._metrics, "read"):
            return await self.inner.read(key)

    async def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply ``operations`` atomically; the new version of each (0 for a delete)."""
        with _Timed(self._metrics, "commit"):
            return await self.inner.commit(operations)

    async def list(self, prefix: str) -> builtins.list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        with _Timed(self._metrics, "list"):
            return await self.inner.list(prefix)

    async def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """At most ``limit`` documents under ``prefix`` whose ``expires_at`` <= ``before``."""
        with _Timed(self._metrics, "expired"):
            return await self.inner.expired(prefix, before, limit)


__all__ = ["AsyncMeteredStorage"]
