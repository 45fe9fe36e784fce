"""Rate limits, the STS concurrency cap and STS throttling (attacks.md #87, #88, #89).

No timing assertions: token buckets run on a fake monotonic clock, and the concurrency
test blocks the transport on an Event.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

import pytest

from aws_iam_backend import BackendSettings
from aws_iam_backend.drivers.ratelimit import (
    BUCKET_BYTES,
    KEY_BYTES,
    ConcurrencyLimiter,
    LoginRateLimiter,
    RateLimits,
    TokenBucket,
    source_group,
)
from aws_iam_backend.errors import (
    InvalidRequestError,
    RateLimitedError,
    UpstreamError,
    UpstreamThrottledError,
)
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from aws_iam_backend.login.parse import parse_sts_response
from aws_iam_backend.server.messages import HTTPRequest
from aws_iam_backend.server.responses import backend_error_response
from tests.support.drivers import Backend, VaultAPI, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.payloads import botocore_payload
from tests.test_backend_attacks import KEYS, USER_ARN, USER_ID, FixedClock, valid

ROOT = "root"


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ok(_request: OutboundRequest) -> STSResponse:
    return ok_response(USER_ARN, USER_ID)


# ----------------------------------------------------------------- buckets


def test_token_bucket_burst_then_refill() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0  # one token back after 0.5 s at 2/s
    assert bucket.take(0.5) > 0


def test_per_source_limit_spares_other_sources() -> None:
    clock = Ticker()
    limiter = LoginRateLimiter(
        RateLimits(per_source_rate=1, per_source_burst=5, per_role_rate=0), clock=clock
    )
    for _ in range(5):
        limiter.check("10.0.0.1", "dev")
    with pytest.raises(RateLimitedError) as info:
        limiter.check("10.0.0.1", "dev")
    assert info.value.status == 429
    assert info.value.retry_after == 1
    assert "address" in info.value.message
    limiter.check("10.0.0.2", "dev")  # another source is still served
    clock.now += 1.0
    limiter.check("10.0.0.1", "dev")


def test_per_role_limit_case_insensitive_and_empty_role_own_bucket() -> None:
    clock = Ticker()
    limiter = LoginRateLimiter(
        RateLimits(per_source_rate=0, per_role_rate=0.5, per_role_burst=2), clock=clock
    )
    limiter.check("10.0.0.1", "Dev")
    limiter.check("10.0.0.2", "dev")
    with pytest.raises(RateLimitedError) as info:
        limiter.check("10.0.0.3", "DEV")
    assert info.value.retry_after == 2  # 1 token at 0.5/s
    assert "role" in info.value.message
    limiter.check("10.0.0.3", "other")
    limiter.check("10.0.0.3", None)
    limiter.check("10.0.0.3", "")
    with pytest.raises(RateLimitedError):
        limiter.check("10.0.0.3", None)


def test_role_refusal_does_not_spend_the_source_token() -> None:
    limiter = LoginRateLimiter(
        RateLimits(per_source_rate=1, per_source_burst=1, per_role_rate=1, per_role_burst=1),
        clock=Ticker(),
    )
    limiter.check("10.0.0.1", "a")
    with pytest.raises(RateLimitedError, match="address"):
        limiter.check("10.0.0.1", "b")
    with pytest.raises(RateLimitedError, match="role"):
        limiter.check("10.0.0.2", "a")
    limiter.check("10.0.0.2", "b")  # 10.0.0.2's token was given back


def test_defaults_admit_500_instances_booting_behind_one_nat() -> None:
    limiter = LoginRateLimiter(RateLimits(), clock=Ticker())
    for i in range(500):
        limiter.check("198.51.100.7", f"role{i % 3}")
    with pytest.raises(RateLimitedError):
        limiter.check("198.51.100.7", "role0")


def test_zero_disables_and_no_address_skips_source_limit() -> None:
    off = LoginRateLimiter(
        RateLimits(per_source_rate=0, per_role_rate=0, max_concurrent_sts_calls=0), clock=Ticker()
    )
    for _ in range(10_000):
        off.check("10.0.0.1", "dev")
    limiter = LoginRateLimiter(RateLimits(per_source_burst=1, per_role_rate=0), clock=Ticker())
    for _ in range(10):
        limiter.check(None, "dev")


def test_attack_89_bucket_tables_bounded() -> None:
    limiter = LoginRateLimiter(RateLimits(max_tracked_keys=50), clock=Ticker())
    for i in range(5000):
        limiter.check(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"role{i}")
    assert len(limiter._sources.buckets) <= 50
    assert len(limiter._roles.buckets) <= 50


def test_ipv6_sources_share_a_bucket_per_64() -> None:
    limiter = LoginRateLimiter(
        RateLimits(per_source_rate=1, per_source_burst=1, per_role_rate=0), clock=Ticker()
    )
    limiter.check("2001:db8:0:1::1", "dev")
    with pytest.raises(RateLimitedError, match="address"):
        limiter.check("2001:db8:0:1:ffff:ffff:ffff:fffe", "dev")  # same /64
    with pytest.raises(RateLimitedError, match="address"):
        limiter.check("2001:DB8:0:1:abcd::9", "dev")  # same /64, spelled otherwise
    limiter.check("2001:db8:0:2::1", "dev")  # another /64
    limiter.check("2001:db9:0:1::1", "dev")  # another /48 too
    limiter.check("10.0.0.1", "dev")
    limiter.check("10.0.0.2", "dev")  # IPv4: per address
    with pytest.raises(RateLimitedError, match="address"):
        limiter.check("::ffff:10.0.0.1", "dev")  # IPv4-mapped counts as the IPv4 address
    assert len(limiter._sources.buckets) == 5


def test_bucket_keys_are_fixed_size_digests() -> None:
    key = LoginRateLimiter.role_key
    assert key("Dev") == key("dev") != key("dev2")
    assert key(None) == key("")
    assert {len(key(role)) for role in ("", "r", "R" * 60_000, "\ud800")} == {KEY_BYTES}
    source = LoginRateLimiter.source_key
    assert source("2001:db8:0:1::1") == source("2001:db8:0:1:ffff::2") != source("2001:db8::1")
    assert source("::ffff:192.0.2.1") == source("192.0.2.1") != source("192.0.2.2")
    assert {len(source(a)) for a in ("10.0.0.1", "::1", "x" * 60_000, "\udcff")} == {KEY_BYTES}
    assert source_group("2001:db8:0:1:abcd::9") == "2001:db8:0:1::/64"
    assert source_group("fe80::1%eth0") == "fe80::/64"
    assert source_group("not an address") == "not an address"

    limiter = LoginRateLimiter(RateLimits(), clock=Ticker())
    limiter.check("x" * 60_000, "R" * 60_000)
    assert list(limiter._sources.buckets) == [source("x" * 60_000)]
    assert list(limiter._roles.buckets) == [key("r" * 60_000)]


def test_least_recently_used_bucket_goes_first() -> None:
    clock = Ticker()
    limiter = LoginRateLimiter(
        RateLimits(per_source_rate=0, per_role_rate=1, per_role_burst=2, max_tracked_keys=2),
        clock=clock,
    )
    limiter.check(None, "a")
    limiter.check(None, "b")
    limiter.check(None, "a")  # a is used again: b is now the oldest
    limiter.check(None, "c")  # drops b
    key = LoginRateLimiter.role_key
    assert list(limiter._roles.buckets) == [key("a"), key("c")]
    with pytest.raises(RateLimitedError, match="role"):
        limiter.check(None, "a")  # a kept its (spent) bucket


def test_max_tracked_bytes() -> None:
    assert RateLimits().max_tracked_bytes == 100_000 * BUCKET_BYTES
    assert RateLimits(max_tracked_keys=0).max_tracked_bytes == BUCKET_BYTES


def test_rate_limits_validated() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        RateLimits(per_source_rate=-1)


# ----------------------------------------------------------------- through Backend


def limited_backend(transport: RecordingTransport, limits: RateLimits) -> Any:
    b = Backend(
        storage=MemoryStorage(),
        transport=transport,
        iam=FakeIam(unique_ids={USER_ARN: USER_ID}),
        clock=FixedClock(),
        settings=BackendSettings(rate_limits=limits),
    )
    b.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
    return b


def test_per_role_limit_in_backend_before_any_sts_call() -> None:
    transport = RecordingTransport(ok)
    b = limited_backend(transport, RateLimits(per_source_rate=0, per_role_rate=1, per_role_burst=2))
    b.login(valid(), remote_addr="10.0.0.1")
    b.login(valid(), remote_addr="10.0.0.2")
    with pytest.raises(RateLimitedError):
        b.login(valid(), remote_addr="10.0.0.3")
    assert len(transport.requests) == 2


def test_attack_88_concurrency_cap() -> None:
    release = threading.Event()
    inside = threading.Semaphore(0)

    def blocking(request: OutboundRequest) -> STSResponse:
        inside.release()
        assert release.wait(30)
        return ok(request)

    transport = RecordingTransport(blocking)
    limits = RateLimits(per_source_rate=0, per_role_rate=0, max_concurrent_sts_calls=2,
                        sts_slot_wait=0.05)  # fmt: skip
    b = limited_backend(transport, limits)
    results: list[Any] = []

    def attempt() -> None:
        results.append(b.login(valid()).auth)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert inside.acquire(timeout=30)
    assert inside.acquire(timeout=30)  # both logins are inside the transport
    with pytest.raises(RateLimitedError) as info:
        b.login(valid())
    assert info.value.message == "too many logins in progress; retry later"
    assert info.value.retry_after == 1
    release.set()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    assert all(results)
    assert b.login(valid()).auth  # the slots were given back
    assert len(transport.requests) == 3


def test_concurrency_limiter_unlimited_when_zero() -> None:
    limiter = ConcurrencyLimiter(0)
    with limiter.slot(), limiter.slot():
        pass


# ----------------------------------------------------------------- HTTP


def make_api(limits: RateLimits, responder: Any = ok) -> VaultAPI:
    factory = functools.partial(
        Backend,
        transport=RecordingTransport(responder),
        iam=FakeIam(unique_ids={USER_ARN: USER_ID}),
    )
    api = VaultAPI(
        storage=MemoryStorage(),
        root_token=ROOT,
        settings=BackendSettings(rate_limits=limits),
        backend_factory=factory,
    )
    api.mounts.ensure("aws")
    role = json.dumps({"bound_iam_principal_arn": USER_ARN}).encode()
    created = api.handle(HTTPRequest("PUT", "/v1/auth/aws/role/dev", headers={
        "x-vault-token": ROOT}, body=role))  # fmt: skip
    assert created.status == 204
    return api


def http_login(api: VaultAPI, remote: str) -> tuple[int, dict[str, str], Any]:
    body = json.dumps(botocore_payload(KEYS, region="us-east-1", role="dev")).encode()
    reply = api.handle(HTTPRequest("PUT", "/v1/auth/aws/login", body=body, remote_addr=remote))
    return reply.status, dict(reply.headers), json.loads(reply.body)


def test_burst_over_per_source_limit_gets_429_with_retry_after() -> None:
    api = make_api(RateLimits(per_source_rate=0.01, per_source_burst=3))
    for _ in range(3):
        assert http_login(api, "10.0.0.1")[0] == 200
    status, headers, body = http_login(api, "10.0.0.1")
    assert status == 429
    assert headers["Retry-After"] == "100"
    assert headers["Content-Type"] == "application/json"
    assert body == {"errors": ["too many login attempts from this address; retry later"]}
    assert http_login(api, "10.0.0.2")[0] == 200  # another source is still served


def test_throttled_sts_is_503_with_retry_after_over_http() -> None:
    throttled = STSResponse(400, (("content-type", "text/xml"),), THROTTLING_XML)
    api = make_api(RateLimits(), responder=lambda _r: throttled)
    status, headers, body = http_login(api, "10.0.0.1")
    assert (status, headers["Retry-After"]) == (503, "1")
    assert body == {"errors": ["error making upstream request: STS is throttling requests"]}


# ----------------------------------------------------------------- STS throttling

THROTTLING_XML = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    b"<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"</ErrorResponse>"
)


def xml_error(code: str) -> bytes:
    return THROTTLING_XML.replace(b"Throttling", code.encode())


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (400, THROTTLING_XML, ()),
        (400, xml_error("ThrottlingException"), ()),
        (503, xml_error("RequestLimitExceeded"), ()),
        (429, b"", ()),
        (429, THROTTLING_XML, (("retry-after", "7"),)),
    ],
)
def test_sts_throttling_is_distinct(
    status: int, body: bytes, headers: tuple[tuple[str, str], ...]
) -> None:
    response = STSResponse(status, (("content-type", "text/xml"), *headers), body)
    with pytest.raises(UpstreamThrottledError) as info:
        parse_sts_response(response)
    assert info.value.status == 503
    assert isinstance(info.value, UpstreamError)
    assert info.value.message == "error making upstream request: STS is throttling requests"
    assert info.value.retry_after == (7 if headers else 1)
    http = backend_error_response(info.value)
    assert ("Retry-After", str(info.value.retry_after)) in http.headers


def test_other_sts_errors_not_throttling() -> None:
    with pytest.raises(InvalidRequestError):
        parse_sts_response(STSResponse(400, (), xml_error("InvalidClientTokenId")))
    with pytest.raises(UpstreamError) as info:
        parse_sts_response(STSResponse(503, (), xml_error("ServiceUnavailable")))
    assert type(info.value) is UpstreamError


def test_throttling_through_backend_makes_one_call_per_login() -> None:
    """The transport's retries (inside the deadline) are its own; the backend never
    re-sends a throttled request."""
    throttled = STSResponse(429, (("content-type", "text/xml"),), THROTTLING_XML)
    transport = RecordingTransport(lambda _r: throttled)
    b = limited_backend(transport, RateLimits())
    with pytest.raises(UpstreamThrottledError):
        b.login(valid())
    assert len(transport.requests) == 1
