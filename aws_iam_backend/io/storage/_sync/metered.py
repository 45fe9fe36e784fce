# Generated from ../_async/metered.py by scripts/unasync.py: do not edit.
"""A storage that reports each call's latency and errors to a
:class:`~aws_iam_backend.drivers.metrics.Metrics` (:class:`MeteredStorage`)."""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence

from aws_iam_backend.drivers.metrics import Metrics, outcome_of
from aws_iam_backend.io import protocols
from aws_iam_backend.io.protocols import Document, Operation


class MeteredStorage:
    """``inner`` with every call reported as ``metrics.storage(op, seconds, error)``: ``op``
    is the method's name, ``error`` "" or the class of the error it raised (a
    ``ConflictError`` is a conditional write that lost its race, not a fault).

    Put it under any cache, so that only calls that reach the store are measured.
    """

    def __init__(self, inner: protocols.Storage, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        started = time.perf_counter()
        try:
            document = self.inner.read(key)
        except BaseException as exc:
            self._metrics.storage("read", time.perf_counter() - started, outcome_of(exc))
            raise
        self._metrics.storage("read", time.perf_counter() - started, "")
        return document

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply ``operations`` atomically; the new version of each (0 for a delete)."""
        started = time.perf_counter()
        try:
            versions = self.inner.commit(operations)
        except BaseException as exc:
            self._metrics.storage("commit", time.perf_counter() - started, outcome_of(exc))
            raise
        self._metrics.storage("commit", time.perf_counter() - started, "")
        return versions

    def list(self, prefix: str) -> builtins.list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        started = time.perf_counter()
        try:
            keys = self.inner.list(prefix)
        except BaseException as exc:
            self._metrics.storage("list", time.perf_counter() - started, outcome_of(exc))
            raise
        self._metrics.storage("list", time.perf_counter() - started, "")
        return keys

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """At most ``limit`` documents under ``prefix`` whose ``expires_at`` <= ``before``."""
        started = time.perf_counter()
        try:
            documents = self.inner.expired(prefix, before, limit)
        except BaseException as exc:
            self._metrics.storage("expired", time.perf_counter() - started, outcome_of(exc))
            raise
        self._metrics.storage("expired", time.perf_counter() - started, "")
        return documents


__all__ = ["MeteredStorage"]
