"""One-time use of signed login requests and challenge nonces.

A :class:`ReplayCache` remembers keys (``sig:<signature>``, ``nonce:<nonce>``) until they
expire. :meth:`ReplayCache.claim` is the only operation that matters: it is atomic, and
answers True exactly once per unexpired key.

- :class:`MemoryReplayCache`: one process; bounded (cachetools, per-entry expiry).
- :class:`AsyncMemoryReplayCache`: the same for asyncio.
- ``StorageReplayCache`` / ``AsyncStorageReplayCache`` (the drivers): on the backend's
  storage (conditional writes), so every process sharing the store agrees. This is the
  :class:`~aws_iam_backend.Backend` default.
- ``RedisReplayCache`` (:mod:`aws_iam_backend.io.cache`): in Redis, shared by every server.

Keys are hashed (SHA-256) before they are stored, so neither signatures nor nonces are
written anywhere.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from typing import Protocol

from cachetools import TLRUCache

from aws_iam_backend.io.clock import Clock, SystemClock

__all__ = [
    "REPLAY_PREFIX",
    "AsyncMemoryReplayCache",
    "AsyncReplayCache",
    "MemoryReplayCache",
    "ReplayCache",
    "digest",
    "epoch",
    "expired",
]

REPLAY_PREFIX = "replay/"


class AsyncReplayCache(Protocol):
    """:class:`ReplayCache` for asyncio: the same contract, awaitable."""

    async def claim(self, key: str, expires_at: datetime) -> bool:
        """True the first time ``key`` is claimed; False while an earlier claim is unexpired."""
        ...

    async def release(self, key: str) -> None:
        """Forget a claim this caller made (the request it guarded was never accepted)."""
        ...


class ReplayCache(Protocol):
    """A set of one-time keys, each remembered until its expiry."""

    def claim(self, key: str, expires_at: datetime) -> bool:
        """True the first time ``key`` is claimed; False while an earlier claim is unexpired."""
        ...

    def release(self, key: str) -> None:
        """Forget a claim this caller made (the request it guarded was never accepted)."""
        ...


def digest(key: str) -> str:
    """SHA-256 hex of ``key`` (claims and bucket keys never store the key itself)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def epoch(when: datetime) -> float:
    """``when`` in epoch seconds (naive datetimes taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class MemoryReplayCache:
    """An in-process :class:`ReplayCache`, thread-safe, holding at most ``maxsize`` keys.

    When full, the entry closest to expiry is evicted (cachetools ``TLRUCache``): under a
    flood of distinct signatures, the oldest claims are forgotten early, so a replay of one
    of those could be accepted again within its window. Memory stays flat. Size ``maxsize``
    above the logins you expect in the longest window (15 minutes by default); rate
    limiting bounds what an attacker can add.
    """

    def __init__(self, maxsize: int = 100_000, *, clock: Clock | None = None) -> None:
        self._now = (clock or SystemClock()).now
        self._lock = threading.Lock()
        self._cache: TLRUCache[str, float] = TLRUCache(
            maxsize=maxsize,
            ttu=lambda _key, expires, _now: expires,
            timer=lambda: epoch(self._now()),
        )

    def claim(self, key: str, expires_at: datetime) -> bool:
        hashed = digest(key)
        expires = epoch(expires_at)
        with self._lock:
            self._cache.expire()
            if hashed in self._cache:
                return False
            if expires <= epoch(self._now()):
                return True  # already expired: nothing to remember
            self._cache[hashed] = expires
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._cache.pop(digest(key), None)

    def __len__(self) -> int:
        with self._lock:
            self._cache.expire()
            return len(self._cache)


def expired(doc: dict[str, object], now: float) -> bool:
    expires = doc.get("expires")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        return True
    return expires <= now


class AsyncMemoryReplayCache:
    """:class:`MemoryReplayCache` for asyncio (it never blocks: the same object, awaitable)."""

    def __init__(self, maxsize: int = 100_000, *, clock: Clock | None = None) -> None:
        self.cache = MemoryReplayCache(maxsize, clock=clock)

    async def claim(self, key: str, expires_at: datetime) -> bool:
        return self.cache.claim(key, expires_at)

    async def release(self, key: str) -> None:
        self.cache.release(key)

    def __len__(self) -> int:
        return len(self.cache)
