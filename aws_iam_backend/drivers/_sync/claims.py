# Generated from ../_async/claims.py by scripts/unasync.py: do not edit.
"""Replay claims kept in the backend's storage, shared by every process on it."""

from __future__ import annotations

from datetime import datetime

from aws_iam_backend.drivers.replay import REPLAY_PREFIX, digest, epoch, expired
from aws_iam_backend.errors import ConflictError
from aws_iam_backend.io.clock import Clock, SystemClock
from aws_iam_backend.io.protocols import ABSENT, Storage, Delete, Put


class StorageReplayCache:
    """The :class:`~aws_iam_backend.drivers.replay.ReplayCache` over
    :class:`~aws_iam_backend.io.protocols.Storage`.

    Each claim is a create-if-absent of ``replay/<sha256(key)>`` carrying its expiry (also
    its ``expires_at`` index). A claim found expired is replaced by a write conditioned on
    its version, so two processes racing for it cannot both win. Processes sharing the
    storage see each other's claims. Expired entries are removed by :meth:`tidy`, in
    batches by expiry index, off the login path (the server runs it periodically).
    """

    def __init__(self, storage: Storage, *, clock: Clock | None = None) -> None:
        self._storage = storage
        self._now = (clock or SystemClock()).now

    def claim(self, key: str, expires_at: datetime) -> bool:
        path = REPLAY_PREFIX + digest(key)
        expires = epoch(expires_at)
        document = {"expires": expires}
        try:
            self._storage.commit([Put(path, document, expect=ABSENT, expires_at=expires)])
            return True
        except ConflictError:
            pass
        existing = self._storage.read(path)
        if existing is not None and not expired(existing.value, epoch(self._now())):
            return False
        # Expired (or just tidied): a request past its window is refused by the freshness
        # check before it gets here, so reusing the key is safe.
        expect = ABSENT if existing is None else existing.version
        try:
            self._storage.commit([Put(path, document, expect=expect, expires_at=expires)])
        except ConflictError:
            return False  # another claimant replaced it first
        return True

    def release(self, key: str) -> None:
        self._storage.commit([Delete(REPLAY_PREFIX + digest(key))])

    def tidy(self, now: datetime | None = None, *, batch: int = 500) -> int:
        """Delete expired entries, ``batch`` at a time; returns how many."""
        cutoff = epoch(now if now is not None else self._now())
        removed = 0
        while True:
            due = self._storage.expired(REPLAY_PREFIX, cutoff, batch)
            for doc in due:
                try:
                    self._storage.commit([Delete(doc.key, expect=doc.version)])
                except ConflictError:
                    continue  # claimed again meanwhile
                removed += 1
            if len(due) < batch:
                return removed


__all__ = ["StorageReplayCache"]
