"""The shared cache: ephemeral state that every server process must agree on.

Three things live in the cache, none of them worth keeping across a restart of it:

- replay claims (``sig:<signature>``): each signed login request is accepted once;
- challenge nonces (``nonce:<nonce>``): each server challenge is answered once;
- rate-limit buckets: logins per source address and per role, across every process.

Each expires by itself (a claim when its request or nonce would be refused as too old
anyway, a bucket when it would be full again), so the cache needs no persistence and no
tidying. Keys are digests, never a signature, nonce, address or role name.

Without a cache, claims and nonces live in the durable storage
(:class:`~aws_iam_backend.StorageReplayCache`, or in process memory with
:class:`~aws_iam_backend.drivers.replay.MemoryReplayCache`), and rate-limit buckets in process
memory (:class:`~aws_iam_backend.drivers.ratelimit.LoginRateLimiter`, one set per process, so
``N`` processes admit ``N`` times the configured rates).

The one implementation is Redis (needs the ``redis`` extra):
:class:`~aws_iam_backend.io.cache._sync.redis.RedisCache` for threads and
:class:`~aws_iam_backend.io.cache._async.redis.AsyncRedisCache` (``redis.asyncio``) for an
event loop, generated from one source. A cache that cannot be reached fails closed: logins
get a 503 (:class:`~aws_iam_backend.errors.StorageUnavailableError`) rather than skipping a
check.
"""

from __future__ import annotations

from aws_iam_backend.io.cache._async.redis import (
    AsyncRedisCache,
    AsyncRedisRateLimiter,
    AsyncRedisReplayCache,
)
from aws_iam_backend.io.cache._sync.redis import (
    SCHEMES,
    RedisCache,
    RedisRateLimiter,
    RedisReplayCache,
    source_group,
)

__all__ = [
    "SCHEMES",
    "AsyncRedisCache",
    "AsyncRedisRateLimiter",
    "AsyncRedisReplayCache",
    "RedisCache",
    "RedisRateLimiter",
    "RedisReplayCache",
    "open_async_cache",
    "open_cache",
    "source_group",
]


def open_cache(url: str, *, prefix: str | None = None, socket_timeout: float = 2.0) -> RedisCache:
    """The cache at ``url``: ``redis://[:password@]host[:port][/db]`` or ``rediss://`` (TLS).

    Nothing connects until the first use (:meth:`RedisCache.ping` checks). Raises
    :class:`ValueError` for any other scheme (the message names the accepted ones) or a
    malformed URL; no message repeats the URL, which may hold a password.
    """
    if prefix is None:
        return RedisCache(url, socket_timeout=socket_timeout)
    return RedisCache(url, prefix=prefix, socket_timeout=socket_timeout)


def open_async_cache(
    url: str, *, prefix: str | None = None, socket_timeout: float = 2.0
) -> AsyncRedisCache:
    """:func:`open_cache` for asyncio: the same URLs and errors, an :class:`AsyncRedisCache`
    (nothing connects until the first use, which must be in the event loop that uses it)."""
    if prefix is None:
        return AsyncRedisCache(url, socket_timeout=socket_timeout)
    return AsyncRedisCache(url, prefix=prefix, socket_timeout=socket_timeout)
