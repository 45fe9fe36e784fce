"""What an unauthenticated client can cost the server: CPU per refused login, memory per
tracked source and role, and outbound STS calls.

Run: ``python -m benchmarks.attacker_cost [--n 2000]``.

- CPU: median CPU microseconds of ``Backend.login`` for payloads refused at each stage
  (undecodable, a 60,000-character role name, a request that fails the SigV4 shape check,
  a well-formed request STS refuses), each as a ratio of the floor measured in the same
  run (JSON and base64 decode of the same payload).
- Memory: bytes per tracked rate-limit entry (tracemalloc, 10,000 distinct sources and
  10,000 distinct role names), and the total at the default table bound.
- Outbound: STS calls are bounded by the per-source and per-role buckets and by
  ``max_concurrent_sts_calls``; the figures are the configured defaults.
"""

from __future__ import annotations

import argparse
import base64
import json
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_iam_backend import BackendError, MemoryStorage, RateLimits
from aws_iam_backend.drivers.ratelimit import LoginRateLimiter
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from benchmarks.login_cpu import make_backend, measure, payload

DENIED = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    b"<Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>no</Message>"
    b"</Error><RequestId>r</RequestId></ErrorResponse>"
)


class DenyingTransport:
    def send(self, request: OutboundRequest, *, timeout: float, max_retries: int) -> STSResponse:
        return STSResponse(403, (("content-type", "text/xml"),), DENIED)


def refused(login: Callable[..., Any], data: dict[str, Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            login(data, remote_addr="192.0.2.1")
        except BackendError:
            return
        raise AssertionError("the login was not refused")

    return run


def cases(good: dict[str, Any]) -> dict[str, dict[str, Any]]:
    bad_url = dict(good, iam_request_url=base64.b64encode(b"https://example.com/").decode())
    return {
        "undecodable headers": dict(good, iam_request_headers="%%% not base64 %%%"),
        "60,000-character role": dict(good, role="r" * 60_000),
        "not an STS URL": bad_url,
        "STS refuses the signature": good,
    }


def bytes_per_entry(fill: Callable[[LoginRateLimiter, int], None], limits: RateLimits) -> float:
    limiter = LoginRateLimiter(limits)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill(limiter, 10_000)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / 10_000


def sources(limiter: LoginRateLimiter, count: int) -> None:
    for i in range(count):
        limiter.check(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "bench")


def roles(limiter: LoginRateLimiter, count: int) -> None:
    for i in range(count):
        limiter.check(None, f"role-{i:08d}-" + "x" * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    good = payload(now)
    floor = measure(
        "floor: JSON + base64 decode",
        lambda: (
            json.loads(json.dumps(good)),
            [base64.b64decode(good[k]) for k in ("iam_request_url", "iam_request_body")],
        ),
        args.n,
    )
    backend = make_backend(MemoryStorage(), now, transport=DenyingTransport())
    for name, data in cases(good).items():
        used = measure(f"refused: {name}", refused(backend.login, data), args.n)
        print(f"{'':<40} = {used / floor:.1f} x floor")
    per_source = bytes_per_entry(sources, RateLimits(per_role_rate=0))
    per_role = bytes_per_entry(roles, RateLimits(per_source_rate=0))
    bound = RateLimits().max_tracked_keys
    total = (per_source + per_role) * bound / 2**20
    print(
        f"rate-limit memory: {per_source:.0f} B per source, {per_role:.0f} B per role; "
        f"at the bound of {bound:,} entries each: {total:.1f} MiB"
    )
    limits = RateLimits()
    print(
        f"outbound STS calls: at most {limits.max_concurrent_sts_calls} in flight; per source "
        f"{limits.per_source_burst} then {limits.per_source_rate:g}/s; per role "
        f"{limits.per_role_burst} then {limits.per_role_rate:g}/s"
    )


if __name__ == "__main__":
    main()
