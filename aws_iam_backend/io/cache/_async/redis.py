"""Redis as the shared cache: replay claims, challenge nonces and rate-limit buckets.

:class:`AsyncRedisCache` owns one redis-py client (one connection pool) and hands out

- :meth:`AsyncRedisCache.replay_cache`: an
  :class:`~aws_iam_backend.drivers.replay.AsyncReplayCache` whose
  claim is one ``SET <prefix>replay:<sha256(key)> 1 NX PXAT <expiry>``. Claims are
  server-wide: two mounts never see the same signature or nonce, so the key has no mount.
- :meth:`AsyncRedisCache.rate_limiter`: an
  :class:`~aws_iam_backend.drivers.ratelimit.AsyncRateLimiter` with the semantics of
  :class:`~aws_iam_backend.drivers.ratelimit.AsyncLoginRateLimiter`, shared by every
  process using the same Redis and ``scope`` (one scope per mount). Each check is one Lua
  script, atomic in Redis, timed by the Redis server's clock.

Nothing sensitive reaches Redis: replay keys are SHA-256 digests of ``sig:<signature>`` or
``nonce:<nonce>`` and bucket keys are truncated digests of the (grouped) source address or
the lower-cased role name, so every key has a fixed size whatever the caller sends.

Failure is closed: when Redis cannot be reached or does not answer within
``socket_timeout``, every operation raises
:class:`~aws_iam_backend.errors.StorageUnavailableError` (503) naming only ``host:port``; a
login never proceeds without its replay claim or its rate check.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import urlsplit

import redis.asyncio
import redis.asyncio.retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, OutOfMemoryError, ReadOnlyError, TryAgainError

from aws_iam_backend.drivers.ratelimit import RateLimits, source_group
from aws_iam_backend.drivers.replay import digest, epoch
from aws_iam_backend.errors import InternalError, RateLimitedError, StorageUnavailableError
from aws_iam_backend.io.clock import Clock, SystemClock

__all__ = ["AsyncRedisCache", "AsyncRedisRateLimiter", "AsyncRedisReplayCache", "source_group"]

DEFAULT_PREFIX: Final = "aws-iam-backend:"
MAX_CONNECTIONS: Final = 256  # per process; callers past it wait (socket_timeout) for one
HEALTH_CHECK_INTERVAL: Final = 15  # seconds a pooled connection may idle before a PING
SCHEMES: Final = ("redis", "rediss")

# Error replies meaning "not now" rather than "never": a replica, a full server, a cluster
# failing over, a server busy with a script. Anything else Redis refuses (a missing ACL
# permission, say) is a fault on our side (500).
_TRANSIENT_ERRORS: Final = (ReadOnlyError, OutOfMemoryError, TryAgainError, ClusterDownError)

# Both token buckets of one login, taken atomically.
#
# KEYS: the source bucket (when ARGV[1] > 0), then the role bucket (when ARGV[3] > 0).
# ARGV: source rate, source burst, role rate, role burst (rates in tokens per second; a
#       rate of 0 skips that bucket; bursts at least 1).
# Returns {0, ""} when the login may go ahead, {1, wait} when the source bucket refuses it,
# {2, wait} when the role bucket does; wait is the seconds until a token, as a string
# (Lua numbers returned bare are truncated to integers).
#
# A bucket is a hash {tokens, stamp}: tokens after the last take, stamp its Redis TIME in
# microseconds (exact in a double). It expires when it would be full again, so an idle
# bucket vanishes and an absent one is full. Nothing is written unless the login passes
# both buckets: a login the role bucket refuses leaves the source bucket as it was (its
# token is given back), and one the source refuses never touches the role bucket. Not
# writing a refill is exact: refilling later from the older state gives the same tokens.
_TAKE_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local function refill(key, rate, burst)
  local state = redis.call('HMGET', key, 'tokens', 'stamp')
  local tokens = tonumber(state[1])
  local stamp = tonumber(state[2])
  if tokens == nil or stamp == nil then
    return burst
  end
  local elapsed = math.max(0, now - stamp) / 1000000
  return math.min(burst, tokens + elapsed * rate)
end

local function store(key, tokens, rate, burst)
  local ttl = math.ceil((burst - tokens) / rate * 1000)
  ttl = math.max(1, math.min(ttl, 1000000000000000))
  redis.call('HSET', key, 'tokens', string.format('%.17g', tokens),
             'stamp', string.format('%d', now))
  redis.call('PEXPIRE', key, string.format('%d', ttl))
end

local src_rate, src_burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local role_rate, role_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local index = 1
local src_key, src_tokens, role_key, role_tokens

if src_rate > 0 then
  src_key = KEYS[index]
  index = index + 1
  src_tokens = refill(src_key, src_rate, src_burst)
  if src_tokens < 1 then
    return {1, string.format('%.17g', (1 - src_tokens) / src_rate)}
  end
end
if role_rate > 0 then
  role_key = KEYS[index]
  role_tokens = refill(role_key, role_rate, role_burst)
  if role_tokens < 1 then
    return {2, string.format('%.17g', (1 - role_tokens) / role_rate)}
  end
end
if src_key then
  store(src_key, src_tokens - 1, src_rate, src_burst)
end
if role_key then
  store(role_key, role_tokens - 1, role_rate, role_burst)
end
return {0, ''}
"""


def _location(url: str) -> str:
    """``host:port`` of a Redis URL (never its credentials, path or query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        raise ValueError("invalid Redis URL: bad host or port") from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AsyncRedisCache:
    """One Redis client (connection pool) and the caches built on it.

    ``url`` is ``redis://`` or ``rediss://`` (TLS), with the password, database and TLS
    options in it as redis-py reads them (``rediss://:password@host:6380/0``). Every
    command waits at most ``socket_timeout`` seconds (connecting included). A connection
    error is retried once on a fresh connection; a timeout is not (the command may have
    run). Nothing connects until the first command; call :meth:`ping` to check at startup.
    Thread-safe when sync; share one per process (an async one per event loop), and
    :meth:`aclose` it at shutdown.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 2.0,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError:
            scheme = ""
        if scheme not in SCHEMES:
            raise ValueError("unsupported cache URL: the accepted schemes are redis://, rediss://")
        self.location = _location(url)
        self.prefix = prefix
        try:
            # A caller past ``max_connections`` waits (up to ``socket_timeout``) for a free
            # connection: the default pool would fail it at once, a 503 under a burst.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                socket_timeout=socket_timeout,
                health_check_interval=HEALTH_CHECK_INTERVAL,
                retry=redis.asyncio.retry.Retry(
                    ExponentialBackoff(cap=0.2, base=0.01),
                    retries=1,
                    supported_errors=(redis.ConnectionError,),
                ),
            )
            self._client = redis.asyncio.Redis(connection_pool=pool)
        except ValueError:
            raise ValueError("invalid Redis URL (check its port, database and options)") from None
        self._take = self._client.register_script(_TAKE_SCRIPT)

    @property
    def client(self) -> redis.asyncio.Redis:
        """The redis-py client (for operations and tests; keys under :attr:`prefix`)."""
        return self._client

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn redis-py errors into backend errors naming only ``host:port``."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._unavailable() from exc
        except redis.ResponseError as exc:
            if isinstance(exc, _TRANSIENT_ERRORS) or str(exc).startswith("BUSY"):
                raise self._unavailable() from exc
            raise InternalError(f"cache error: Redis at {self.location} refused a command") from exc
        except redis.RedisError as exc:
            raise self._unavailable() from exc

    def _unavailable(self) -> StorageUnavailableError:
        return StorageUnavailableError(f"cache error: Redis at {self.location} is unavailable")

    async def ping(self) -> None:
        """Check that Redis answers; :class:`StorageUnavailableError` if it does not."""
        with self.guard():
            await self._client.ping()

    async def aclose(self) -> None:
        """Disconnect every pooled connection (a later command connects again)."""
        await self._client.aclose()

    async def __aenter__(self) -> AsyncRedisCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def replay_cache(self, *, clock: Clock | None = None) -> AsyncRedisReplayCache:
        """An :class:`~aws_iam_backend.drivers.replay.AsyncReplayCache` in this Redis.

        ``clock`` only decides whether an ``expires_at`` is already past (then a claim
        stores nothing); Redis expires claims by its own clock.
        """
        return AsyncRedisReplayCache(self, clock=clock)

    def rate_limiter(self, limits: RateLimits, scope: str) -> AsyncRedisRateLimiter:
        """Login rate limits shared by every process using this Redis and ``scope``."""
        return AsyncRedisRateLimiter(self, limits, scope)

    async def run_take_script(self, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run the token-bucket script (EVALSHA, loading it on ``NOSCRIPT``)."""
        take = cast(Callable[..., Any], self._take)
        with self.guard():
            return await take(keys=list(keys), args=list(args))


class AsyncRedisReplayCache:
    """An :class:`~aws_iam_backend.drivers.replay.AsyncReplayCache` in Redis.

    A claim is ``SET <prefix>replay:<sha256(key)> 1 NX PXAT <expires_at in ms>``: true iff
    the key was set. Redis drops it at ``expires_at``, after which it can be claimed again.
    """

    def __init__(self, cache: AsyncRedisCache, *, clock: Clock | None = None) -> None:
        self._cache = cache
        self._now = (clock or SystemClock()).now

    def key(self, key: str) -> str:
        """The Redis key of a claim on ``key``."""
        return f"{self._cache.prefix}replay:{digest(key)}"

    async def claim(self, key: str, expires_at: datetime) -> bool:
        expires = epoch(expires_at)
        if expires <= epoch(self._now()):
            return True  # already expired: nothing to remember (as MemoryReplayCache)
        with self._cache.guard():
            done = await self._cache.client.set(
                self.key(key), b"1", nx=True, pxat=math.ceil(expires * 1000)
            )
        return bool(done)

    async def release(self, key: str) -> None:
        with self._cache.guard():
            await self._cache.client.delete(self.key(key))


class AsyncRedisRateLimiter:
    """:class:`~aws_iam_backend.drivers.ratelimit.AsyncLoginRateLimiter` semantics, in Redis.

    Buckets are shared by every process using the same Redis and ``scope`` (a mount's
    name, say); ``limits.max_tracked_keys`` does not apply (idle buckets expire instead).
    Keys are ``<prefix>rl:<sha256(scope)[:16]>:src:<sha256(group)[:32]>`` and
    ``...:role:<sha256(role.lower())[:32]>``, where the group is the source address
    (IPv4) or its /64 (IPv6): see :func:`~aws_iam_backend.drivers.ratelimit.source_group`. Each
    :meth:`check` is one atomic script run; the time is the Redis server's.
    """

    def __init__(self, cache: AsyncRedisCache, limits: RateLimits, scope: str) -> None:
        if not (math.isfinite(limits.per_source_rate) and math.isfinite(limits.per_role_rate)):
            raise ValueError("rate limits must be finite numbers")
        self._cache = cache
        self._base = f"{cache.prefix}rl:{digest(scope)[:16]}:"
        self._source_rate = float(limits.per_source_rate)
        self._source_burst = max(limits.per_source_burst, 1)
        self._role_rate = float(limits.per_role_rate)
        self._role_burst = max(limits.per_role_burst, 1)

    def source_key(self, remote_addr: str) -> str:
        """The Redis key of the bucket ``remote_addr`` spends from."""
        return f"{self._base}src:{digest(source_group(remote_addr))[:32]}"

    def role_key(self, role: str | None) -> str:
        """The Redis key of the bucket of ``role`` (lower-cased; None is "")."""
        return f"{self._base}role:{digest((role or '').lower())[:32]}"

    async def check(self, remote_addr: str | None, role: str | None) -> None:
        """Spend one login from ``remote_addr`` (skipped when None) and for ``role``.

        Raises :class:`~aws_iam_backend.errors.RateLimitedError`; a refused login spends
        nothing. :class:`~aws_iam_backend.errors.StorageUnavailableError` when Redis is
        unavailable (with every limit disabled, Redis is not asked).
        """
        keys: list[str] = []
        use_source = self._source_rate > 0 and remote_addr is not None
        if use_source and remote_addr is not None:
            keys.append(self.source_key(remote_addr))
        use_role = self._role_rate > 0
        if use_role:
            keys.append(self.role_key(role))
        if not keys:
            return
        args = [
            repr(self._source_rate) if use_source else "0",
            str(self._source_burst),
            repr(self._role_rate) if use_role else "0",
            str(self._role_burst),
        ]
        verdict, wait = self._parse(await self._cache.run_take_script(keys, args))
        if verdict == 1:
            raise RateLimitedError(
                "too many login attempts from this address; retry later",
                retry_after=math.ceil(wait),
            )
        if verdict == 2:
            raise RateLimitedError(
                "too many login attempts for this role; retry later",
                retry_after=math.ceil(wait),
            )

    def _parse(self, reply: Any) -> tuple[int, float]:
        wait = 0.0
        try:
            verdict = int(reply[0])
            wait = float(reply[1]) if verdict else 0.0
        except (TypeError, ValueError, IndexError):
            verdict = -1
        if verdict not in (0, 1, 2) or not math.isfinite(wait):
            raise InternalError(
                f"cache error: Redis at {self._cache.location} gave an unexpected answer"
            )
        return verdict, wait
