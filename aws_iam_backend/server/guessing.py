"""Throttling of failed token checks per source, so tokens cannot be guessed quickly.

A failed check is a request whose token is neither the root token nor a live token.
Each source group (an IPv4 address, an IPv6 /64: :func:`~aws_iam_backend.drivers.ratelimit.
source_group`) may fail ``burst`` checks at once, then ``rate`` per second. Once it has
none left, its requests are refused with a 429 (``Retry-After``) *before* their token is
looked at: a throttled source learns nothing about any token, the root token included,
so guessing runs at ``rate`` per second and no faster. A successful check never spends
(or gives back) anything, so a source that presents valid tokens is never throttled
however busy it is; only a source that keeps failing checks is slowed down, and with it
whoever shares its address (a NAT, or a proxy that is not in ``trusted_proxies``).

Guessing means trying *different* tokens: a failed check with one of the last
:data:`RECENT_FAILURES` distinct tokens the source already failed with spends nothing
again (a client retrying with its expired or revoked token, several times over, costs
its address one failed check, not one per retry). Those tokens are kept as truncated
keyed digests (``token_digest``, computed by the caller), never in clear.

Memory: only sources that failed a check have an entry, keyed by a :data:`KEY_BYTES`
digest of the source group (whatever the address text was), at most ``max_sources`` of
them (the least recently seen goes first; it comes back with a full allowance). An entry
whose allowance is full again is dropped. The table is per process: with ``workers``
processes a source can fail up to ``workers`` times as many checks.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from aws_iam_backend.drivers.ratelimit import source_group
from aws_iam_backend.errors import RateLimitedError

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_MAX_SOURCES",
    "DEFAULT_RATE",
    "DIGEST_BYTES",
    "KEY_BYTES",
    "RECENT_FAILURES",
    "THROTTLED_MESSAGE",
    "FailedCheckThrottle",
]

DEFAULT_BURST: Final = 10  # failed checks a source may make at once
DEFAULT_RATE: Final = 1.0  # then this many per second
DEFAULT_MAX_SOURCES: Final = 65_536  # entries kept (a few hundred bytes each)
KEY_BYTES: Final = 16  # an entry's key: the first 16 bytes of a SHA-256 digest
RECENT_FAILURES: Final = 4  # distinct failed tokens remembered per source
DIGEST_BYTES: Final = 8  # of each, the first 8 bytes of the caller's keyed digest
THROTTLED_MESSAGE: Final = "too many failed token checks from this address; retry later"


class _Allowance:
    """How many failed checks a source has left (may dip below 0 under concurrency), and
    the digests of the last distinct tokens it failed with (concatenated, newest last)."""

    __slots__ = ("left", "recent", "stamp")

    def __init__(self, left: float, stamp: float) -> None:
        self.left = left
        self.stamp = stamp
        self.recent = b""

    def seen(self, digest: bytes) -> bool:
        """True if ``digest`` is one of the recent failed tokens; else remember it."""
        recent = self.recent
        for start in range(0, len(recent), DIGEST_BYTES):
            if hmac.compare_digest(recent[start : start + DIGEST_BYTES], digest):
                return True
        self.recent = (recent + digest)[-RECENT_FAILURES * DIGEST_BYTES :]
        return False


class FailedCheckThrottle:
    """Per-source allowance of failed token checks. Thread-safe.

    :meth:`check` before looking at a request's token (429 when the source has no failed
    check left), :meth:`failed` after a check failed. ``remote_addr`` None (the address is
    not known) is never throttled; ``rate`` or ``burst`` 0 disables the throttle.
    ``clock`` is a monotonic clock in seconds.
    """

    def __init__(
        self,
        *,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        max_sources: int = DEFAULT_MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0 or burst < 0 or max_sources < 0:
            raise ValueError("rate, burst and max_sources must not be negative")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_sources = max(int(max_sources), 1)
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: OrderedDict[bytes, _Allowance] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """False when ``rate`` or ``burst`` is 0."""
        return self.rate > 0 and self.burst > 0

    @staticmethod
    def key(remote_addr: str) -> bytes:
        """The key of the entry ``remote_addr`` counts against (a digest of its group)."""
        group = source_group(remote_addr).encode("utf-8", "surrogatepass")
        return hashlib.sha256(group).digest()[:KEY_BYTES]

    def _refill(self, key: bytes, now: float) -> _Allowance | None:
        """The source's entry brought up to ``now``; None (and dropped) once it is full."""
        entry = self._sources.get(key)
        if entry is None:
            return None
        entry.left = min(float(self.burst), entry.left + max(0.0, now - entry.stamp) * self.rate)
        entry.stamp = now
        if entry.left >= self.burst:
            del self._sources[key]
            return None
        return entry

    def check(self, remote_addr: str | None) -> None:
        """Raise :class:`~aws_iam_backend.errors.RateLimitedError` (429, ``Retry-After``)
        if ``remote_addr`` has no failed check left; spends nothing."""
        if remote_addr is None or not self.enabled:
            return
        key = self.key(remote_addr)
        with self._lock:
            entry = self._refill(key, self._clock())
            if entry is None or entry.left >= 1.0:
                return
            wait = (1.0 - entry.left) / self.rate
        raise RateLimitedError(THROTTLED_MESSAGE, retry_after=math.ceil(wait))

    def failed(self, remote_addr: str | None, token_digest: bytes = b"") -> None:
        """Count one failed check from ``remote_addr``, unless ``token_digest`` (a keyed
        digest of the token, of at least :data:`DIGEST_BYTES` bytes) is that of one of the
        source's last :data:`RECENT_FAILURES` distinct failed tokens."""
        if remote_addr is None or not self.enabled:
            return
        key = self.key(remote_addr)
        digest = token_digest[:DIGEST_BYTES]
        with self._lock:
            now = self._clock()
            entry = self._refill(key, now)
            if entry is None:
                while len(self._sources) >= self.max_sources:
                    self._sources.popitem(last=False)
                entry = _Allowance(float(self.burst), now)
                self._sources[key] = entry
            else:
                self._sources.move_to_end(key)
            if len(digest) == DIGEST_BYTES and entry.seen(digest):
                return
            entry.left -= 1.0

    def __len__(self) -> int:
        """How many sources have an entry (failed a check and are not full again)."""
        with self._lock:
            return len(self._sources)
