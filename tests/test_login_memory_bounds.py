"""Unauthenticated logins cannot grow the server's memory without bound.

A role name is checked against Vault's grammar (at most 128 characters) before it reaches
the rate limiter, so a name no role can have never keys a bucket; buckets are keyed by
fixed-size digests, so every bucket costs the same whatever the request carried, and
``max_tracked_keys`` bounds each table in bytes.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aws_iam_backend import BackendSettings
from aws_iam_backend.drivers.ratelimit import (
    BUCKET_BYTES,
    KEY_BYTES,
    LoginRateLimiter,
    RateLimits,
)
from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from tests.support.drivers import Backend, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.test_backend_attacks import USER_ARN, USER_ID, FixedClock, valid

MIB = 1024 * 1024
INVALID_ROLE = "entry for role not found: invalid role name"


def ok(_request: OutboundRequest) -> STSResponse:
    return ok_response(USER_ARN, USER_ID)


class SpyLimiter:
    """A :class:`~aws_iam_backend.drivers.ratelimit.RateLimiter` that records every check."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str | None]] = []

    def check(self, remote_addr: str | None, role: str | None) -> None:
        self.calls.append((remote_addr, role))


def backend(
    transport: RecordingTransport,
    limits: RateLimits | None = None,
    rate_limiter: SpyLimiter | None = None,
) -> Any:
    b = Backend(
        storage=MemoryStorage(),
        transport=transport,
        iam=FakeIam(unique_ids={USER_ARN: USER_ID}),
        clock=FixedClock(),
        settings=BackendSettings(rate_limits=limits or RateLimits()),
        rate_limiter=rate_limiter,
    )
    b.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
    return b


def limiter_of(b: Any) -> LoginRateLimiter:
    limiter = b.rate_limiter
    limiter = getattr(limiter, "limiter", limiter)  # the async driver's wraps the same tables
    assert isinstance(limiter, LoginRateLimiter)
    return limiter


@pytest.fixture
def traced() -> Iterator[Callable[[], int]]:
    """Traced memory since the fixture started (after a collection), in bytes."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]

    def grown() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base

    try:
        yield grown
    finally:
        tracemalloc.stop()


def test_2000_logins_with_60000_character_role_names_hold_no_memory(
    traced: Callable[[], int],
) -> None:
    transport = RecordingTransport(ok)
    b = backend(transport)
    limiter = limiter_of(b)
    payload = valid()
    messages: set[str] = set()
    start = traced()  # the backend and the signed payload are already built
    for i in range(2000):
        role = f"{i:06d}" + "a" * 59_994  # distinct, Vault's characters, too long
        try:
            b.login({**payload, "role": role}, remote_addr=f"198.51.{i // 256}.{i % 256}")
        except InvalidRequestError as exc:
            messages.add(exc.message)
        else:
            raise AssertionError("a 60,000-character role name was accepted")
    grown = traced() - start
    assert messages == {INVALID_ROLE}
    assert grown < 2 * MIB, f"{grown / MIB:.1f} MiB held after 2,000 rejected logins"
    assert len(limiter._roles.buckets) == 0
    assert len(limiter._sources.buckets) == 0
    assert transport.requests == []


@pytest.mark.parametrize(
    "role",
    ["a" * 129, "R" * 60_000, "bad name", "-dev", "dev-", "dév", "dev/x", "a\x00"],
)
def test_invalid_role_name_refused_before_rate_limiting(role: str) -> None:
    spy = SpyLimiter()
    transport = RecordingTransport(ok)
    b = backend(transport, rate_limiter=spy)
    with pytest.raises(InvalidRequestError) as info:
        b.login(valid(role=role), remote_addr="10.0.0.1")
    assert info.value.message == INVALID_ROLE
    assert spy.calls == []
    assert transport.requests == []


def test_valid_and_empty_role_names_still_rate_limited() -> None:
    spy = SpyLimiter()
    transport = RecordingTransport(ok)
    b = backend(transport, rate_limiter=spy)
    longest = "a" * 128
    with pytest.raises(InvalidRequestError, match=f"entry for role {longest} not found"):
        b.login(valid(role=longest), remote_addr="10.0.0.1")
    with pytest.raises(InvalidRequestError, match="entry for role alice not found"):
        b.login(valid(role=""), remote_addr="10.0.0.2")  # empty: the principal's name
    assert b.login(valid(role="DEV"), remote_addr="10.0.0.3").auth
    assert spy.calls == [("10.0.0.1", longest), ("10.0.0.2", ""), ("10.0.0.3", "DEV")]
    assert len(transport.requests) == 3


def test_empty_role_keeps_its_own_bucket() -> None:
    b = backend(RecordingTransport(ok), RateLimits(per_source_rate=0, per_role_burst=1))
    with pytest.raises(InvalidRequestError, match="entry for role alice not found"):
        b.login(valid(role=""))
    assert list(limiter_of(b)._roles.buckets) == [LoginRateLimiter.role_key("")]


def test_role_table_stays_at_max_tracked_keys_under_a_flood_of_valid_names() -> None:
    transport = RecordingTransport(ok)
    b = backend(transport, RateLimits(max_tracked_keys=50))
    limiter = limiter_of(b)
    payload = valid()
    for i in range(500):
        with pytest.raises(InvalidRequestError, match=f"entry for role flood-{i} not found"):
            b.login({**payload, "role": f"flood-{i}"}, remote_addr=f"2001:db8:{i:x}::1")
    roles = limiter._roles.buckets
    assert len(roles) == 50
    assert list(roles) == [LoginRateLimiter.role_key(f"flood-{i}") for i in range(450, 500)]
    assert len(limiter._sources.buckets) == 50
    assert {len(key) for key in (*roles, *limiter._sources.buckets)} == {KEY_BYTES}
    assert len(transport.requests) == 500


@pytest.mark.parametrize(("length", "entries"), [(3, 2000), (60_000, 500)])
def test_each_bucket_costs_at_most_bucket_bytes(
    length: int, entries: int, traced: Callable[[], int]
) -> None:
    limiter = LoginRateLimiter(RateLimits(max_tracked_keys=entries))
    pad = "x" * max(0, length - 6)
    start = traced()
    for i in range(entries):
        limiter.check(f"{i:06d}{pad}", f"{i:06d}{pad}")  # unparseable sources: hashed
    per_entry = (traced() - start) / (2 * entries)
    assert len(limiter._sources.buckets) == len(limiter._roles.buckets) == entries
    assert per_entry <= BUCKET_BYTES, f"{per_entry:.0f} bytes per bucket"
    for i in range(entries, 4 * entries):  # a full table replaces its oldest buckets
        limiter.check(f"{i:06d}{pad}", f"{i:06d}{pad}")
    assert len(limiter._sources.buckets) == len(limiter._roles.buckets) == entries
    assert traced() - start <= 2 * entries * BUCKET_BYTES


def test_default_tables_bounded_in_bytes() -> None:
    limits = RateLimits()
    assert limits.max_tracked_bytes == 100_000 * BUCKET_BYTES < 35 * MIB
