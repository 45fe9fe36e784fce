"""Rate limits and a concurrency cap for the unauthenticated login path.

- :class:`TokenBucket`: ``rate`` tokens per second, at most ``burst`` saved up.
- :class:`RateLimiter`: what the login path needs (``check``); :class:`LoginRateLimiter`
  (in process) and :class:`~aws_iam_backend.cache.redis.RedisRateLimiter` (shared by
  every process on one Redis) satisfy it.
- :class:`LoginRateLimiter`: one bucket per source address and one per requested role
  name (lower-cased; no role is its own bucket), each table bounded (LRU); raises
  :class:`~aws_iam_backend.errors.RateLimitedError` (429 with ``Retry-After``).
- :class:`ConcurrencyLimiter`: at most ``max_concurrent_sts_calls`` outbound STS calls at
  once; a login that cannot get a slot within ``wait`` seconds gets a 429.

Settings live in :class:`RateLimits` (``BackendSettings.rate_limits``). A rate or
concurrency of 0 disables that limit.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import attrs
from cachetools import LRUCache

from .errors import RateLimitedError

__all__ = [
    "ConcurrencyLimiter",
    "LoginRateLimiter",
    "RateLimiter",
    "RateLimits",
    "TokenBucket",
]


def _not_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


@attrs.frozen
class RateLimits:
    """Limits on logins (per backend, i.e. per mount). 0 disables a limit.

    The defaults admit 500 logins at once from one address (instances booting behind one
    NAT), then 20 per second; and 2000 at once for one role, then 200 per second.
    """

    per_source_rate: float = attrs.field(default=20.0, validator=_not_negative)
    per_source_burst: int = attrs.field(default=500, validator=_not_negative)
    per_role_rate: float = attrs.field(default=200.0, validator=_not_negative)
    per_role_burst: int = attrs.field(default=2000, validator=_not_negative)
    max_concurrent_sts_calls: int = attrs.field(default=64, validator=_not_negative)
    sts_slot_wait: float = attrs.field(default=1.0, validator=_not_negative)
    max_tracked_keys: int = attrs.field(default=100_000, validator=_not_negative)


class RateLimiter(Protocol):
    """Spends one login per call, per source address and per role."""

    def check(self, remote_addr: str | None, role: str | None) -> None:
        """Spend one login from ``remote_addr`` (skipped when None) and for ``role``.

        Raises :class:`~aws_iam_backend.errors.RateLimitedError`; a refused login spends
        nothing (a login the role bucket refuses gives its source token back).
        """
        ...


class TokenBucket:
    """A token bucket; not thread-safe on its own (:class:`LoginRateLimiter` locks)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.tokens = self.burst
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there will be."""
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class _BucketTable:
    def __init__(self, rate: float, burst: int, maxsize: int) -> None:
        self.rate = rate
        self.burst = burst
        self.buckets: LRUCache[str, TokenBucket] = LRUCache(maxsize=max(maxsize, 1))

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, now: float) -> float:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            self.buckets[key] = bucket
        return bucket.take(now)


class LoginRateLimiter:
    """Per-source and per-role token buckets. Thread-safe.

    Each table holds at most ``max_tracked_keys`` buckets; the least recently used is
    dropped first (it comes back full). ``clock`` is a monotonic clock in seconds.
    """

    def __init__(
        self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sources = _BucketTable(
            limits.per_source_rate, limits.per_source_burst, limits.max_tracked_keys
        )
        self._roles = _BucketTable(
            limits.per_role_rate, limits.per_role_burst, limits.max_tracked_keys
        )

    def check(self, remote_addr: str | None, role: str | None) -> None:
        """Spend one login from ``remote_addr`` (skipped when None) and for ``role``.

        Raises :class:`RateLimitedError`; a refused login spends nothing.
        """
        with self._lock:
            now = self._clock()
            if self._sources.enabled and remote_addr is not None:
                wait = self._sources.take(remote_addr, now)
                if wait > 0:
                    raise RateLimitedError(
                        "too many login attempts from this address; retry later",
                        retry_after=math.ceil(wait),
                    )
            if self._roles.enabled:
                wait = self._roles.take((role or "").lower(), now)
                if wait > 0:
                    if remote_addr is not None and self._sources.enabled:
                        self._sources.buckets[remote_addr].tokens += 1.0  # give it back
                    raise RateLimitedError(
                        "too many login attempts for this role; retry later",
                        retry_after=math.ceil(wait),
                    )


class ConcurrencyLimiter:
    """At most ``limit`` holders at once (0: unlimited); waiting at most ``wait`` seconds."""

    def __init__(self, limit: int, wait: float = 1.0) -> None:
        self._semaphore = threading.BoundedSemaphore(limit) if limit > 0 else None
        self._wait = wait

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the duration; :class:`RateLimitedError` if none frees up in time."""
        if self._semaphore is None:
            yield
            return
        if not self._semaphore.acquire(timeout=self._wait):
            raise RateLimitedError("too many logins in progress; retry later", retry_after=1)
        try:
            yield
        finally:
            self._semaphore.release()
