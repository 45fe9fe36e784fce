"""The Redis cache: replay claims and shared rate-limit buckets, against a real Redis.

Redis is the shared ``redis_url`` fixture (:mod:`tests.support.services`: from
``AWS_IAM_BACKEND_TEST_REDIS_URL``; unreachable, the tests skip, or fail under ``CI=true``).
Every test works under its own key prefix (``redis_prefix``), whose keys are deleted at
the end. No timing assertions: expiries are short and waited for by bounded polling.

Each test that uses a cache runs with the sync :class:`RedisCache` and with
:class:`AsyncRedisCache` (generated from one source), the latter seen through
:class:`BlockingCache`: every call awaited on a per-test event loop, so threads calling at
once are tasks running at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from aws_iam_backend.drivers.ratelimit import LoginRateLimiter, RateLimiter, RateLimits
from aws_iam_backend.errors import (
    InternalError,
    RateLimitedError,
    StorageUnavailableError,
)
from aws_iam_backend.io.cache import (
    AsyncRedisCache,
    AsyncRedisRateLimiter,
    AsyncRedisReplayCache,
    RedisCache,
    RedisRateLimiter,
    open_async_cache,
    open_cache,
    source_group,
)
from aws_iam_backend.io.clock import Clock
from tests.support.aio import LoopThread

TINY_RATE = 1e-6  # a token every ~11 days: no refill within a test


def _unique_prefix() -> str:
    """A prefix for a cache that never reaches Redis."""
    return f"aws-iam-backend-test:{uuid.uuid4().hex}:"


class BlockingReplay:
    """An :class:`AsyncRedisReplayCache` with its calls awaited on a loop."""

    def __init__(self, inner: AsyncRedisReplayCache, loop: LoopThread) -> None:
        self.inner = inner
        self._loop = loop

    def claim(self, key: str, expires_at: datetime) -> bool:
        return self._loop.run(self.inner.claim(key, expires_at))

    def release(self, key: str) -> None:
        self._loop.run(self.inner.release(key))


class BlockingLimiter:
    """An :class:`AsyncRedisRateLimiter` with its calls awaited on a loop."""

    def __init__(self, inner: AsyncRedisRateLimiter, loop: LoopThread) -> None:
        self.inner = inner
        self._loop = loop

    def check(self, remote_addr: str | None, role: str | None) -> None:
        self._loop.run(self.inner.check(remote_addr, role))

    def source_key(self, remote_addr: str) -> str:
        return self.inner.source_key(remote_addr)

    def role_key(self, role: str | None) -> str:
        return self.inner.role_key(role)


class BlockingCache:
    """An :class:`AsyncRedisCache` with the interface of :class:`RedisCache`: each call is
    awaited on a loop of its own. ``client`` is a sync client on the same Redis, for
    looking at the keys."""

    def __init__(self, inner: AsyncRedisCache, url: str) -> None:
        self.inner = inner
        self.prefix = inner.prefix
        self.location = inner.location
        self._url = url
        self._client: Any = None
        self._loop = LoopThread()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = RedisCache(self._url, prefix=self.prefix).client
        return self._client

    def guard(self) -> Any:
        return self.inner.guard()

    def ping(self) -> None:
        self._loop.run(self.inner.ping())

    def replay_cache(self, *, clock: Clock | None = None) -> BlockingReplay:
        return BlockingReplay(self.inner.replay_cache(clock=clock), self._loop)

    def rate_limiter(self, limits: RateLimits, scope: str) -> BlockingLimiter:
        return BlockingLimiter(self.inner.rate_limiter(limits, scope), self._loop)

    def close(self) -> None:
        try:
            self._loop.run(self.inner.aclose())
            if self._client is not None:
                self._client.close()
        finally:
            self._loop.close()


Cache = RedisCache | BlockingCache
Factory = Callable[..., Cache]


@pytest.fixture(params=["sync", "async"])
def make_cache(request: pytest.FixtureRequest) -> Factory:
    """``RedisCache`` or, through :class:`BlockingCache`, ``AsyncRedisCache``."""
    if request.param == "sync":
        return RedisCache

    def make(url: str, **kwargs: Any) -> BlockingCache:
        return BlockingCache(AsyncRedisCache(url, **kwargs), url)

    return make


def _keys(cache: Cache) -> list[bytes]:
    return sorted(cache.client.scan_iter(match=cache.prefix + "*", count=1000))


@pytest.fixture
def cache(redis_url: str, redis_prefix: str, make_cache: Factory) -> Iterator[Cache]:
    """A cache under a fresh prefix (``redis_prefix`` deletes its keys)."""
    cache = make_cache(redis_url, prefix=redis_prefix)
    try:
        yield cache
    finally:
        cache.close()


@pytest.fixture
def second_server(redis_url: str, cache: Cache, make_cache: Factory) -> Iterator[Cache]:
    """Another client ("another server") on the same Redis and prefix."""
    other = make_cache(redis_url, prefix=cache.prefix)
    try:
        yield other
    finally:
        other.close()


def _soon(seconds: float = 60.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _limits(**overrides: float) -> RateLimits:
    """Both limits practically without refill; override bursts and rates per test."""
    values: dict[str, float] = {
        "per_source_rate": TINY_RATE,
        "per_source_burst": 1000,
        "per_role_rate": TINY_RATE,
        "per_role_burst": 1000,
    }
    values.update(overrides)
    return RateLimits(
        per_source_rate=values["per_source_rate"],
        per_source_burst=int(values["per_source_burst"]),
        per_role_rate=values["per_role_rate"],
        per_role_burst=int(values["per_role_burst"]),
    )


def _outcome(limiter: RateLimiter, addr: str | None, role: str | None) -> str:
    try:
        limiter.check(addr, role)
    except RateLimitedError as exc:
        return "role" if "role" in exc.message else "source"
    return "ok"


# --- replay claims ------------------------------------------------------------------


def test_claim_once_then_refused_then_again_after_release(cache: Cache) -> None:
    replay = cache.replay_cache()
    assert replay.claim("sig:abc", _soon())
    assert not replay.claim("sig:abc", _soon())
    assert not cache.replay_cache().claim("sig:abc", _soon())  # another handle, same Redis
    replay.release("sig:abc")
    assert replay.claim("sig:abc", _soon())
    assert replay.claim("sig:other", _soon())


def test_claim_expires_in_redis(cache: Cache) -> None:
    replay = cache.replay_cache()
    assert replay.claim("nonce:n1", _soon(0.2))
    for _ in range(200):  # bounded: ~10 s at most
        if replay.claim("nonce:n1", _soon()):
            break
        time.sleep(0.05)
    else:
        pytest.fail("an expired claim never became claimable again")
    assert not replay.claim("nonce:n1", _soon())


def test_already_expired_claim_is_true_and_stores_nothing(cache: Cache) -> None:
    replay = cache.replay_cache()
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert replay.claim("sig:old", past)
    assert replay.claim("sig:old", past)
    assert _keys(cache) == []


def test_claims_are_hashed_and_server_wide(cache: Cache) -> None:
    replay = cache.replay_cache()
    assert replay.claim("sig:abc", _soon())
    digest = hashlib.sha256(b"sig:abc").hexdigest()
    assert _keys(cache) == [f"{cache.prefix}replay:{digest}".encode()]
    # The claim expires at its deadline rounded up to the millisecond (pxat).
    assert 0 < cache.client.pttl(_keys(cache)[0]) <= 60_001


def test_sixteen_threads_one_winner(cache: Cache) -> None:
    replay = cache.replay_cache()
    barrier = threading.Barrier(16)
    results: list[bool] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        won = replay.claim("sig:contended", _soon())
        with lock:
            results.append(won)

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]


def claim_worker(url: str, prefix: str, keys: list[str], seed: int) -> list[str]:
    """Spawned process: its own RedisCache; claims every key (shuffled); returns its wins."""
    order = list(keys)
    random.Random(seed).shuffle(order)
    with RedisCache(url, prefix=prefix) as cache:
        replay = cache.replay_cache()
        expires = datetime.now(UTC) + timedelta(seconds=60)
        return [key for key in order if replay.claim(key, expires)]


def test_four_processes_each_key_won_once(cache: Cache, redis_url: str) -> None:
    keys = [f"sig:{i:04d}" for i in range(300)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        wins = pool.starmap(
            claim_worker, [(redis_url, cache.prefix, keys, seed) for seed in range(4)]
        )
    counts = Counter(key for won in wins for key in won)
    assert counts == Counter(keys)  # every key exactly once, over all processes


# --- shared rate limits ---------------------------------------------------------------


def test_two_servers_share_buckets(cache: Cache, second_server: Cache) -> None:
    limits = _limits(per_source_burst=5)
    servers = [
        cache.rate_limiter(limits, "auth/aws"),
        second_server.rate_limiter(limits, "auth/aws"),
    ]
    for i in range(5):
        servers[i % 2].check("192.0.2.7", "web")
    with pytest.raises(RateLimitedError) as refused:
        servers[1].check("192.0.2.7", "web")
    assert refused.value.retry_after >= 1
    assert "address" in refused.value.message
    with pytest.raises(RateLimitedError):
        servers[0].check("192.0.2.7", "web")


def test_scopes_do_not_share(cache: Cache) -> None:
    limits = _limits(per_source_burst=1)
    cache.rate_limiter(limits, "auth/aws").check("192.0.2.7", "web")
    cache.rate_limiter(limits, "auth/aws-eu").check("192.0.2.7", "web")
    with pytest.raises(RateLimitedError):
        cache.rate_limiter(limits, "auth/aws").check("192.0.2.7", "web")


def test_role_refusal_gives_the_source_token_back(cache: Cache) -> None:
    limiter = cache.rate_limiter(_limits(per_source_burst=2, per_role_burst=1), "m")
    limiter.check("192.0.2.1", "web")  # source 2 -> 1, role web 1 -> 0
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("192.0.2.1", "web")  # role refuses: source keeps its 1
    assert "role" in refused.value.message
    assert refused.value.retry_after >= 1
    limiter.check("192.0.2.1", "db")  # the token given back
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("192.0.2.1", "cache")
    assert "address" in refused.value.message


def test_source_refusal_spends_no_role_token(cache: Cache) -> None:
    limiter = cache.rate_limiter(_limits(per_source_burst=1, per_role_burst=2), "m")
    limiter.check("192.0.2.1", "web")
    with pytest.raises(RateLimitedError):
        limiter.check("192.0.2.1", "web")  # source refuses; role web keeps 1
    limiter.check("192.0.2.2", "web")
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("192.0.2.3", "web")
    assert "role" in refused.value.message


def test_per_source_and_per_role_limits_are_independent(cache: Cache) -> None:
    limiter = cache.rate_limiter(_limits(per_source_burst=2, per_role_burst=3), "m")
    assert _outcome(limiter, "10.0.0.1", "web") == "ok"
    assert _outcome(limiter, "10.0.0.1", "web") == "ok"
    assert _outcome(limiter, "10.0.0.1", "web") == "source"
    assert _outcome(limiter, "10.0.0.2", "WEB") == "ok"  # roles are case-insensitive
    assert _outcome(limiter, "10.0.0.3", "Web") == "role"
    assert _outcome(limiter, "10.0.0.3", "db") == "ok"
    assert _outcome(limiter, None, "db") == "ok"  # no address: only the role bucket
    assert _outcome(limiter, None, None) == "ok"  # no role: the "" bucket


def test_same_outcomes_as_the_in_process_limiter(cache: Cache) -> None:
    limits = _limits(per_source_burst=3, per_role_burst=4)
    shared = cache.rate_limiter(limits, "m")
    local = LoginRateLimiter(limits, clock=lambda: 0.0)
    rng = random.Random(7)
    for _ in range(120):
        addr = rng.choice(["10.0.0.1", "10.0.0.2", "10.0.0.3", None])
        role = rng.choice(["a", "b", "C", "c", None])
        assert _outcome(shared, addr, role) == _outcome(local, addr, role), (addr, role)


def test_ipv6_sources_grouped_by_64(cache: Cache) -> None:
    limiter = cache.rate_limiter(_limits(per_source_burst=1), "m")
    limiter.check("2001:db8:0:1::1", "web")
    with pytest.raises(RateLimitedError):
        limiter.check("2001:db8:0:1:ffff:ffff:ffff:fffe", "web")  # same /64
    limiter.check("2001:db8:0:2::1", "web")  # another /64
    limiter.check("10.0.0.1", "web")
    limiter.check("10.0.0.2", "web")  # IPv4: per address
    with pytest.raises(RateLimitedError):
        limiter.check("::ffff:10.0.0.1", "web")  # IPv4-mapped counts as the IPv4 address
    assert source_group("2001:db8:0:1:abcd::9") == "2001:db8:0:1::/64"
    assert source_group("fe80::1%eth0") == "fe80::/64"
    assert source_group("not an address") == "not an address"


def test_keys_have_a_fixed_size(cache: Cache) -> None:
    limiter = cache.rate_limiter(_limits(), "m")
    limiter.check("10.0.0.1", "r")
    short = {len(key) for key in _keys(cache)}
    limiter.check("x" * 60_000, "R" * 60_000)
    keys = _keys(cache)
    assert len(keys) == 4
    assert {len(key) for key in keys} == short
    assert all(len(key) < len(cache.prefix) + 80 for key in keys)
    assert not any(b"xxxx" in key or b"rrrr" in key or b"RRRR" in key for key in keys)


def test_buckets_expire_when_full_again(cache: Cache) -> None:
    slow = cache.rate_limiter(_limits(per_source_rate=0, per_role_rate=0.01), "slow")
    slow.check("10.0.0.1", "web")
    (key,) = _keys(cache)
    assert cache.client.type(key) == b"hash"
    assert set(cache.client.hkeys(key)) == {b"tokens", b"stamp"}
    assert 0 < cache.client.pttl(key) <= 100_000  # one token at 0.01/s: 100 s to refill
    cache.client.delete(key)
    fast = cache.rate_limiter(_limits(per_source_rate=20, per_role_rate=0), "fast")
    fast.check("10.0.0.1", "web")  # full again after 50 ms
    for _ in range(200):  # bounded
        if not _keys(cache):
            break
        time.sleep(0.05)
    else:
        pytest.fail("an idle, refilled bucket did not expire")


def test_rate_zero_disables(cache: Cache) -> None:
    off = cache.rate_limiter(_limits(per_source_rate=0, per_role_rate=0, per_source_burst=1), "m")
    for _ in range(20):
        off.check("10.0.0.1", "web")
    assert _keys(cache) == []
    roles_only = cache.rate_limiter(_limits(per_source_rate=0, per_role_burst=2), "m")
    for _ in range(2):
        roles_only.check("10.0.0.1", "web")
    with pytest.raises(RateLimitedError) as refused:
        roles_only.check("10.0.0.2", "web")
    assert "role" in refused.value.message
    sources_only = cache.rate_limiter(_limits(per_role_rate=0, per_source_burst=1), "n")
    sources_only.check("10.0.0.1", "web")
    sources_only.check("10.0.0.2", "web")
    with pytest.raises(RateLimitedError):
        sources_only.check("10.0.0.1", "db")


def test_limiters_satisfy_the_protocol(cache: Cache) -> None:
    limiters: list[RateLimiter] = [
        cache.rate_limiter(_limits(), "m"),
        LoginRateLimiter(_limits()),
    ]
    limiter = limiters[0]
    assert isinstance(limiter, RedisRateLimiter | BlockingLimiter)
    if isinstance(limiter, BlockingLimiter):
        assert isinstance(limiter.inner, AsyncRedisRateLimiter)


# --- secrets --------------------------------------------------------------------------


def test_nothing_secret_is_stored(cache: Cache) -> None:
    signature = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    nonce = "bm9uY2Utc2VjcmV0LXZhbHVl"
    replay = cache.replay_cache()
    assert replay.claim(f"sig:{signature}", _soon())
    assert replay.claim(f"nonce:{nonce}", _soon())
    cache.rate_limiter(_limits(), "auth/aws").check("203.0.113.9", "secret-role")
    stored: list[bytes | str] = []
    for key in _keys(cache):
        stored.append(key)
        if cache.client.type(key) == b"hash":
            for field, value in cache.client.hgetall(key).items():
                stored += [field, value]
        else:
            stored.append(cache.client.get(key) or b"")
    assert len(_keys(cache)) == 4
    blob = b"\n".join(item if isinstance(item, bytes) else item.encode() for item in stored)
    for secret in (signature, signature[:16], nonce, "203.0.113.9", "secret-role", "auth/aws"):
        assert secret.encode() not in blob


# --- failure --------------------------------------------------------------------------


def _assert_unavailable(exc: StorageUnavailableError, location: str) -> None:
    assert exc.status == 503
    assert exc.message == f"cache error: Redis at {location} is unavailable"
    for text in (str(exc), repr(exc), str(exc.__cause__)):
        assert "pw-s3cr3t" not in text
        assert "redis://" not in text


def test_unreachable_redis_fails_closed(make_cache: Factory) -> None:
    cache = make_cache("redis://:pw-s3cr3t@127.0.0.1:1/0", prefix=_unique_prefix())
    try:
        calls: list[Callable[[], object]] = [
            cache.ping,
            lambda: cache.replay_cache().claim("sig:x", _soon()),
            lambda: cache.replay_cache().release("sig:x"),
            lambda: cache.rate_limiter(_limits(), "m").check("10.0.0.1", "web"),
        ]
        for call in calls:
            with pytest.raises(StorageUnavailableError) as caught:
                call()
            _assert_unavailable(caught.value, "127.0.0.1:1")
        # With every limit off, Redis is not needed.
        off = _limits(per_source_rate=0, per_role_rate=0)
        cache.rate_limiter(off, "m").check("10.0.0.1", "web")
    finally:
        cache.close()


def test_silent_redis_times_out(make_cache: Factory) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (backlog), never answers
        port = listener.getsockname()[1]
        cache = make_cache(
            f"redis://:pw-s3cr3t@127.0.0.1:{port}/0", prefix=_unique_prefix(), socket_timeout=0.2
        )
        try:
            with pytest.raises(StorageUnavailableError) as caught:
                cache.replay_cache().claim("sig:x", _soon())
            _assert_unavailable(caught.value, f"127.0.0.1:{port}")
        finally:
            cache.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:pw-s3cr3t@db/auth",
        "unix:///run/redis.sock?password=pw-s3cr3t",
        "pw-s3cr3t",
        "",
    ],
)
@pytest.mark.parametrize("opener", [open_cache, open_async_cache])
def test_open_cache_accepts_only_redis_schemes(url: str, opener: Callable[[str], object]) -> None:
    with pytest.raises(ValueError, match=r"redis://, rediss://") as caught:
        opener(url)
    assert "pw-s3cr3t" not in str(caught.value)


@pytest.mark.parametrize("opener", [open_cache, open_async_cache])
def test_open_cache_bad_port_does_not_echo(opener: Callable[[str], object]) -> None:
    with pytest.raises(ValueError, match="invalid Redis URL") as caught:
        opener("redis://:pw-s3cr3t@127.0.0.1:notaport/0")
    assert "pw-s3cr3t" not in str(caught.value)
    assert "notaport" not in str(caught.value)


def test_open_cache_location(redis_url: str) -> None:
    cache = open_cache(redis_url, prefix=_unique_prefix())
    try:
        cache.ping()
        assert "@" not in cache.location
        assert isinstance(cache, RedisCache)
    finally:
        cache.close()
    assert RedisCache("rediss://:pw@[::1]:6380/0").location == "[::1]:6380"
    assert RedisCache("redis://cache.internal").location == "cache.internal:6379"


def test_refused_command_is_an_internal_error(cache: Cache) -> None:
    limiter = cache.rate_limiter(_limits(per_role_rate=0), "m")
    cache.client.set(limiter.source_key("10.0.0.1"), b"not a hash")
    with pytest.raises(InternalError) as caught:
        limiter.check("10.0.0.1", "web")
    assert caught.value.status == 500
    assert caught.value.message == f"cache error: Redis at {cache.location} refused a command"


@pytest.mark.parametrize(
    "error",
    [
        ReadOnlyError("You can't write against a read only replica."),
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        ResponseError("BUSY Redis is busy running a script."),
    ],
)
def test_transient_refusals_are_unavailable(error: Exception, make_cache: Factory) -> None:
    cache = make_cache("redis://:pw-s3cr3t@127.0.0.1:1/0")
    with pytest.raises(StorageUnavailableError) as caught, cache.guard():
        raise error
    _assert_unavailable(caught.value, "127.0.0.1:1")
    cache.close()


def test_non_finite_rates_are_refused(make_cache: Factory) -> None:
    cache = make_cache("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="finite"):
        cache.rate_limiter(_limits(per_role_rate=float("inf")), "m")
    with pytest.raises(ValueError, match="finite"):
        cache.rate_limiter(_limits(per_source_rate=float("nan")), "m")
    cache.close()


def test_open_async_cache_tasks_one_winner(redis_url: str, redis_prefix: str) -> None:
    """Sixteen tasks of one event loop claim one key: exactly one wins."""

    async def race() -> list[bool]:
        async with open_async_cache(redis_url, prefix=redis_prefix) as cache:
            await cache.ping()
            replay = cache.replay_cache()
            return await asyncio.gather(
                *(replay.claim("sig:contended", _soon()) for _ in range(16))
            )

    assert sorted(asyncio.run(race())) == [False] * 15 + [True]


def test_more_concurrent_calls_than_connections_wait_instead_of_failing(
    redis_url: str, redis_prefix: str
) -> None:
    """A burst past the pool's size waits for a free connection (redis-py's default pool
    raises at once, which would answer logins 503 under load)."""

    async def burst() -> list[bool]:
        cache = AsyncRedisCache(redis_url, prefix=redis_prefix, max_connections=2)
        replay = cache.replay_cache()
        try:
            return await asyncio.gather(
                *(replay.claim(f"sig:burst-{i}", _soon()) for i in range(40))
            )
        finally:
            await cache.aclose()

    assert asyncio.run(burst()) == [True] * 40
