"""Rate limits and a concurrency cap for the unauthenticated login path.

- :class:`TokenBucket`: ``rate`` tokens per second, at most ``burst`` saved up.
- :class:`RateLimiter`: what the login path needs (``check``); :class:`LoginRateLimiter`
  (in process) and :class:`~aws_iam_backend.io.cache.RedisRateLimiter` (shared by
  every process on one Redis) satisfy it.
- :class:`LoginRateLimiter`: one bucket per source (an IPv4 address, an IPv6 /64: see
  :func:`source_group`) and one per requested role name (lower-cased; no role is its own
  bucket), each table bounded (LRU); raises
  :class:`~aws_iam_backend.errors.RateLimitedError` (429 with ``Retry-After``).
- :class:`ConcurrencyLimiter`: at most ``max_concurrent_sts_calls`` outbound STS calls at
  once; a login that cannot get a slot within ``wait`` seconds gets a 429.

Settings live in :class:`RateLimits` (``BackendSettings.rate_limits``). A rate or
concurrency of 0 disables that limit.

Memory: buckets are keyed by a truncated SHA-256 digest (:data:`KEY_BYTES` bytes) of the
grouped source or the lower-cased role name, never by the text the caller sent, so every
entry has the same size whatever the request carries, and ``max_tracked_keys`` bounds each
table in bytes (:data:`BUCKET_BYTES` per entry; :attr:`RateLimits.max_tracked_bytes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final, Protocol

import attrs

from aws_iam_backend.drivers.metrics import NO_METRICS, STS_BUSY, Metrics
from aws_iam_backend.errors import RateLimitedError

__all__ = [
    "BUCKET_BYTES",
    "KEY_BYTES",
    "AsyncConcurrencyLimiter",
    "AsyncLoginRateLimiter",
    "AsyncRateLimiter",
    "ConcurrencyLimiter",
    "LoginRateLimiter",
    "RateLimiter",
    "RateLimits",
    "TokenBucket",
    "source_group",
]

KEY_BYTES: Final = 16  # a bucket's key: the first 16 bytes of a SHA-256 digest

# What one bucket costs in a table of :class:`LoginRateLimiter`, at most, in bytes as
# tracemalloc counts them on CPython 3.11: its key (a 16-byte ``bytes``: 49), its
# :class:`TokenBucket` (64) and the two floats of its own (48; rate and burst are the
# table's), and its share of the table, an ``OrderedDict`` (hash index, entry, order node:
# 63 to 183, depending on how many slots are free or deleted since it last grew or
# compacted). Measured on tables of 1,000 to 174,763 buckets, filled and then replacing
# their oldest buckets three times over: 224 to 265 per bucket just filled, at most 328
# while replacing, 344 at the peak of a compaction; the same for a 60,000-character role
# name or address as for "dev" (tests/test_login_memory_bounds.py checks it). At the
# default ``max_tracked_keys`` (100,000): measured at most 31.3 MiB per table (62.5 MiB
# for both), bounded by 34.3 MiB per table (68.7 MiB for both).
BUCKET_BYTES: Final = 360

# Longer than any IPv6 address with a zone index (45 characters, "%", an interface name).
_MAX_ADDRESS_LENGTH: Final = 100


def _not_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


@attrs.frozen
class RateLimits:
    """Limits on logins (per backend, i.e. per mount). 0 disables a limit.

    The defaults admit 500 logins at once from one address (instances booting behind one
    NAT), then 20 per second; and 2000 at once for one role, then 200 per second.
    ``max_tracked_keys`` is the number of buckets each table of :class:`LoginRateLimiter`
    keeps (sources; roles), which bounds its memory: see :attr:`max_tracked_bytes`.
    """

    per_source_rate: float = attrs.field(default=20.0, validator=_not_negative)
    per_source_burst: int = attrs.field(default=500, validator=_not_negative)
    per_role_rate: float = attrs.field(default=200.0, validator=_not_negative)
    per_role_burst: int = attrs.field(default=2000, validator=_not_negative)
    max_concurrent_sts_calls: int = attrs.field(default=64, validator=_not_negative)
    sts_slot_wait: float = attrs.field(default=1.0, validator=_not_negative)
    max_tracked_keys: int = attrs.field(default=100_000, validator=_not_negative)

    @property
    def max_tracked_bytes(self) -> int:
        """At most this many bytes in each bucket table of :class:`LoginRateLimiter`
        (``max_tracked_keys`` entries of :data:`BUCKET_BYTES`; at least one entry)."""
        return max(self.max_tracked_keys, 1) * BUCKET_BYTES


class RateLimiter(Protocol):
    """Spends one login per call, per source address and per role."""

    def check(self, remote_addr: str | None, role: str | None) -> None:
        """Spend one login from ``remote_addr`` (skipped when None) and for ``role``.

        Raises :class:`~aws_iam_backend.errors.RateLimitedError`; a refused login spends
        nothing (a login the role bucket refuses gives its source token back).
        """
        ...


class AsyncRateLimiter(Protocol):
    """:class:`RateLimiter` for asyncio: the same contract, awaitable."""

    async def check(self, remote_addr: str | None, role: str | None) -> None:
        """Spend one login from ``remote_addr`` (skipped when None) and for ``role``."""
        ...


class TokenBucket:
    """A token bucket; not thread-safe on its own (:class:`LoginRateLimiter` locks)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))  # the same object when already a float >= 1
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


def source_group(remote_addr: str) -> str:
    """The address a source bucket is keyed by: IPv4 per address, IPv6 per /64.

    An IPv4-mapped IPv6 address counts as its IPv4 address. An address that does not
    parse is used as it is (it is hashed before it is stored).
    """
    if len(remote_addr) > _MAX_ADDRESS_LENGTH:
        return remote_addr  # no address is this long: not worth parsing
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return remote_addr
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        bits = int(address) >> 64 << 64
        return str(ipaddress.IPv6Network((bits, 64)))
    return str(address)


def _digest(text: str) -> bytes:
    # surrogatepass: any str encodes (a lone surrogate from JSON, say), nothing raises.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:KEY_BYTES]


class _BucketTable:
    """At most ``maxsize`` buckets by fixed-size key; the least recently used goes first."""

    def __init__(self, rate: float, burst: int, maxsize: int) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))  # one float shared by every bucket of the table
        self.maxsize = max(maxsize, 1)
        self.buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: bytes, now: float) -> float:
        bucket = self.buckets.get(key)
        if bucket is None:
            while len(self.buckets) >= self.maxsize:
                self.buckets.popitem(last=False)
            bucket = TokenBucket(self.rate, self.burst, now)
            self.buckets[key] = bucket
        else:
            self.buckets.move_to_end(key)
        return bucket.take(now)


class LoginRateLimiter:
    """Per-source and per-role token buckets. Thread-safe.

    A source bucket is keyed by a digest of :func:`source_group` (IPv4 address, IPv6 /64),
    a role bucket by a digest of the lower-cased role name (see :meth:`source_key`,
    :meth:`role_key`): :data:`KEY_BYTES` bytes whatever the caller sends. Each table holds
    at most ``max_tracked_keys`` buckets (:attr:`RateLimits.max_tracked_bytes`); the least
    recently used is dropped first (it comes back full). ``clock`` is a monotonic clock in
    seconds.
    """

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sources = _BucketTable(
            limits.per_source_rate, limits.per_source_burst, limits.max_tracked_keys
        )
        self._roles = _BucketTable(
            limits.per_role_rate, limits.per_role_burst, limits.max_tracked_keys
        )

    @staticmethod
    def source_key(remote_addr: str) -> bytes:
        """The key of the bucket ``remote_addr`` spends from."""
        return _digest(source_group(remote_addr))

    @staticmethod
    def role_key(role: str | None) -> bytes:
        """The key of the bucket of ``role`` (lower-cased; None is "")."""
        return _digest((role or "").lower())

    def check(self, remote_addr: str | None, role: str | None) -> None:
        """Spend one login from ``remote_addr`` (skipped when None) and for ``role``.

        Raises :class:`RateLimitedError`; a refused login spends nothing.
        """
        use_source = self._sources.enabled and remote_addr is not None
        source = self.source_key(remote_addr) if use_source and remote_addr is not None else b""
        role_key = self.role_key(role) if self._roles.enabled else b""
        with self._lock:
            now = self._clock()
            if use_source:
                wait = self._sources.take(source, now)
                if wait > 0:
                    raise RateLimitedError(
                        "too many login attempts from this address; retry later",
                        retry_after=math.ceil(wait),
                    )
            if self._roles.enabled:
                wait = self._roles.take(role_key, now)
                if wait > 0:
                    if use_source:
                        self._sources.buckets[source].tokens += 1.0  # give it back
                    raise RateLimitedError(
                        "too many login attempts for this role; retry later",
                        retry_after=math.ceil(wait),
                    )


def _busy() -> RateLimitedError:
    """No concurrency slot freed up in time (the same answer from both limiters)."""
    return RateLimitedError("too many logins in progress; retry later", retry_after=1)


class ConcurrencyLimiter:
    """At most ``limit`` holders at once (0: unlimited); waiting at most ``wait`` seconds.

    ``metrics`` hears of each slot taken and given back (calls in flight) and of each
    refusal (:data:`~aws_iam_backend.drivers.metrics.STS_BUSY`).
    """

    def __init__(self, limit: int, wait: float = 1.0, *, metrics: Metrics = NO_METRICS) -> None:
        self._semaphore = threading.BoundedSemaphore(limit) if limit > 0 else None
        self._wait = wait
        self._metrics = metrics

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the duration; :class:`RateLimitedError` if none frees up in time."""
        metrics, semaphore = self._metrics, self._semaphore
        if semaphore is not None and not semaphore.acquire(timeout=self._wait):
            metrics.refused(STS_BUSY)
            raise _busy()
        metrics.outbound(1)
        try:
            yield
        finally:
            metrics.outbound(-1)
            if semaphore is not None:
                semaphore.release()


class AsyncLoginRateLimiter:
    """:class:`LoginRateLimiter` for asyncio (it never blocks: the same buckets, awaitable)."""

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limiter = LoginRateLimiter(limits, clock=clock)

    async def check(self, remote_addr: str | None, role: str | None) -> None:
        self.limiter.check(remote_addr, role)


class AsyncConcurrencyLimiter:
    """:class:`ConcurrencyLimiter` for asyncio: a slot is awaited, never a thread blocked."""

    def __init__(self, limit: int, wait: float = 1.0, *, metrics: Metrics = NO_METRICS) -> None:
        self._semaphore = asyncio.BoundedSemaphore(limit) if limit > 0 else None
        self._wait = wait
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the duration; :class:`RateLimitedError` if none frees up in time."""
        metrics, semaphore = self._metrics, self._semaphore
        if semaphore is not None:
            try:
                if semaphore.locked():  # only a wait needs a deadline (and its task)
                    await asyncio.wait_for(semaphore.acquire(), self._wait)
                else:
                    await semaphore.acquire()
            except TimeoutError:
                metrics.refused(STS_BUSY)
                raise _busy() from None
        metrics.outbound(1)
        try:
            yield
        finally:
            metrics.outbound(-1)
            if semaphore is not None:
                semaphore.release()
