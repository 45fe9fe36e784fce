"""Per-login CPU time of the core, with a stub STS transport (no network).

Run: ``python -m benchmarks.login_cpu [--n 2000]``. Prints the median and p90 CPU
microseconds for: decode+validate+rebuild+parse+bind (``verify_login``), a full login
with in-memory storage, and a full login with SQLite storage.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from aws_iam_backend import (
    Backend,
    BackendSettings,
    MemoryStorage,
    RateLimits,
    SQLiteStorage,
    Storage,
)
from aws_iam_backend.io.protocols import AwsAccess
from aws_iam_backend.login.arn import IamEntity
from aws_iam_backend.login.messages import OutboundRequest, STSResponse

ARN = "arn:aws:iam::123456789012:user/bench"
USER_ID = "AIDABENCHMARKUSER001"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
XML = (
    '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    f"<GetCallerIdentityResult><Arn>{ARN}</Arn><UserId>{USER_ID}</UserId>"
    "<Account>123456789012</Account></GetCallerIdentityResult>"
    "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
    "</GetCallerIdentityResponse>"
).encode()


class StubTransport:
    def send(self, request: OutboundRequest, *, timeout: float, max_retries: int) -> STSResponse:
        return STSResponse(200, (("content-type", "text/xml"),), XML)


class StubIam:
    def unique_id(self, entity: IamEntity, access: AwsAccess) -> str:
        return USER_ID

    def full_arn(self, entity: IamEntity, access: AwsAccess) -> str:
        return ARN


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def payload(now: datetime) -> dict[str, Any]:
    url = "https://sts.us-east-1.amazonaws.com/"
    request = AWSRequest(
        method="POST",
        url=url,
        data=BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    naive = now.replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        SigV4Auth(Credentials("AKIAIOSFODNN7EXAMPLE", "secret"), "sts", "us-east-1").add_auth(
            request
        )
    return {
        "role": "bench",
        "iam_http_request_method": "POST",
        "iam_request_url": base64.b64encode(url.encode()).decode(),
        "iam_request_body": base64.b64encode(BODY.encode()).decode(),
        "iam_request_headers": dict(request.headers.items()),
    }


NO_LIMITS = RateLimits(0, 0, 0, 0, max_concurrent_sts_calls=0)


def make_backend(storage: Storage, now: datetime, **options: Any) -> Backend:
    """A backend over stubs with no rate limits (the baseline); ``options`` go to Backend."""
    settings = options.pop("settings", BackendSettings(rate_limits=NO_LIMITS))
    backend = Backend(
        storage=storage,
        transport=options.pop("transport", StubTransport()),
        iam=StubIam(),
        clock=FixedClock(now),
        settings=settings,
        **options,
    )
    backend.write_role("bench", {"bound_iam_principal_arn": ARN})
    return backend


def measure(label: str, action: Callable[[], object], n: int, warmup: int = 200) -> float:
    """Print and return the median CPU microseconds of ``action`` over ``n`` runs."""
    for _ in range(min(warmup, n)):
        action()
    samples = []
    for _ in range(n):
        start = time.process_time_ns()
        action()
        samples.append((time.process_time_ns() - start) / 1000)
    samples.sort()
    median = statistics.median(samples)
    p90 = samples[int(len(samples) * 0.9)]
    print(f"{label:<40} median {median:8.1f} us   p90 {p90:8.1f} us")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    data = payload(now)
    memory = make_backend(MemoryStorage(), now)
    measure("verify_login (no token)", lambda: memory.verify_login(data), args.n)
    measure("login, memory storage", lambda: memory.login(data), args.n)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteStorage(str(Path(tmp) / "bench.db"))
        backend = make_backend(sqlite, now)
        rounds = max(200, args.n // 10)
        measure("login, SQLite storage (fsync)", lambda: backend.login(data), rounds)
        sqlite.close()


if __name__ == "__main__":
    main()
