# Generated from ../_async/cached.py by scripts/unasync.py: do not edit.
"""A per-process read cache for rarely changing documents, coherent across processes.

Mounts, roles and client/identity/STS config are read on every login but written by
an administrator now and then. :class:`CachedStorage` serves them from memory and
stays coherent with every other process on the same store through one change counter:
each commit that touches a cached key also rewrites ``epoch_key`` in the same atomic
commit, and readers compare that document's version with the one they saw at most
every ``interval`` seconds, dropping the whole cache when it moved. A change made
anywhere is therefore seen everywhere within ``interval`` plus one read; a change made
in this process is seen at once. No lock is held around a storage read.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Sequence

from aws_iam_backend.io import protocols
from aws_iam_backend.io.protocols import Check, Document, Operation, Put

EPOCH_KEY = "sys/epoch"


class CachedStorage:
    """``inner`` with reads of ``cacheable`` keys cached (absent ones too).

    Every process sharing ``inner`` must write through :class:`CachedStorage` with
    the same ``epoch_key`` (the reference server does), or its changes to cached keys
    go unnoticed elsewhere. ``maxsize`` bounds the entries kept.
    """

    def __init__(
        self,
        inner: protocols.Storage,
        *,
        cacheable: Callable[[str], bool],
        epoch_key: str = EPOCH_KEY,
        interval: float = 0.25,
        maxsize: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self._cacheable = cacheable
        self._epoch_key = epoch_key
        self._interval = interval
        self._maxsize = maxsize
        self._clock = clock
        self._lock = threading.Lock()  # guards the fields below, never held during I/O
        self._checking = threading.Lock()
        self._entries: dict[str, Document | None] = {}
        self._generation = 0
        self._epoch: int | None = None
        self._checked_at = float("-inf")

    def _check_epoch(self) -> None:
        """Drop the cache if another process changed a cached key (one check at a time)."""
        if self._clock() - self._checked_at < self._interval:
            return
        if not self._checking.acquire(blocking=False):
            return  # another task is checking: the cache is at most one interval old
        try:
            started = self._clock()
            epoch = self.inner.read(self._epoch_key)
            version = 0 if epoch is None else epoch.version
            with self._lock:
                if version != self._epoch:
                    self._entries.clear()
                    self._generation += 1
                    self._epoch = version
                self._checked_at = started
        finally:
            self._checking.release()

    def read(self, key: str) -> Document | None:
        """The document at ``key``: from the cache when ``key`` is cacheable."""
        if not self._cacheable(key):
            return self.inner.read(key)
        self._check_epoch()
        with self._lock:
            if key in self._entries:
                return self._entries[key]
            generation = self._generation
        document = self.inner.read(key)
        with self._lock:
            # A commit or an epoch change since the read began may have made it stale.
            if generation == self._generation and len(self._entries) < self._maxsize:
                self._entries[key] = document
        return document

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Commit ``operations``, bumping the epoch in the same commit if a cached key is in it."""
        touched = [
            op.key for op in operations if not isinstance(op, Check) and self._cacheable(op.key)
        ]
        if not touched:
            return self.inner.commit(operations)
        stamped = [*operations, Put(self._epoch_key, {"changed_at": time.time()})]
        try:
            versions = self.inner.commit(stamped)
        finally:
            self.invalidate()  # applied, refused or unknown: read it afresh
        return versions[: len(operations)]

    def invalidate(self) -> None:
        """Forget every cached document (the next reads go to storage)."""
        with self._lock:
            self._entries.clear()
            self._generation += 1

    def list(self, prefix: str) -> list[str]:
        """Sorted keys under ``prefix`` (never cached)."""
        return self.inner.list(prefix)

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """Expired documents under ``prefix`` (never cached)."""
        return self.inner.expired(prefix, before, limit)


def uncached(storage: protocols.Storage) -> protocols.Storage:
    """The storage wrapped by :class:`CachedStorage` (``storage`` itself otherwise)."""
    return storage.inner if isinstance(storage, CachedStorage) else storage
