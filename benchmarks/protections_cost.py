"""CPU cost per login of each protection: rate limits, replay cache, audit trail.

Run: ``python -m benchmarks.protections_cost [--n 2000]``. Every login is a distinct,
freshly signed payload (the client helper signs a random ``Amz-Sdk-Invocation-Id``), so
the replay cache sees a new signature each time; STS and IAM are stubs. Prints the median
CPU microseconds per login and the difference from the baseline (no protection).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from botocore.credentials import Credentials

from aws_iam_backend import (
    Backend,
    BackendSettings,
    MemoryReplayCache,
    MemoryStorage,
    RateLimits,
    Request,
    SQLiteStorage,
    Storage,
)
from aws_iam_backend.client import build_login_payload
from aws_iam_backend.drivers.audit import JsonLinesAuditSink
from benchmarks.login_cpu import make_backend, measure


def payloads(now: datetime, count: int) -> Iterator[dict[str, Any]]:
    """``count`` distinct signed payloads, all signed at ``now``."""
    creds = Credentials("AKIAIOSFODNN7EXAMPLE", "secret")
    naive = now.replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        signed = [
            build_login_payload(creds, role="bench", region="us-east-1") for _ in range(count)
        ]
    yield from signed


def run(label: str, backend: Backend, now: datetime, n: int) -> float:
    items = payloads(now, n + 200)
    addresses = [f"10.0.{i // 250}.{i % 250}" for i in range(n + 200)]
    counter = iter(range(n + 200))

    def login() -> object:
        i = next(counter)  # through handle_request, where the audit record is written
        return backend.handle_request(
            Request("update", "login", next(items), remote_addr=addresses[i])
        )

    return measure(label, login, n)


def replay_on(backend: Backend) -> Backend:
    backend.write_client_config({"replay_protection": True})
    return backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    # Default limits, except a per-role burst large enough that no login is refused here:
    # the cost of the checks is what is measured.
    limited = BackendSettings(rate_limits=RateLimits(per_role_burst=1_000_000))
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        audit = JsonLinesAuditSink(str(Path(tmp) / "audit.log"))
        cases: list[tuple[str, Callable[[], Backend]]] = [
            ("baseline (memory storage)", lambda: make_backend(MemoryStorage(), now)),
            (
                "+ rate limits and STS cap",
                lambda: make_backend(MemoryStorage(), now, settings=limited),
            ),
            (
                "+ replay, in-memory cache",
                lambda: replay_on(
                    make_backend(MemoryStorage(), now, replay_cache=MemoryReplayCache())
                ),
            ),
            ("+ replay, storage cache", lambda: replay_on(make_backend(MemoryStorage(), now))),
            ("+ audit (JSON lines file)", lambda: make_backend(MemoryStorage(), now, audit=audit)),
        ]
        for label, build in cases:
            results[label] = run(label, build(), now, args.n)
        sqlite_runs = max(200, args.n // 10)
        for label, replay in (("SQLite baseline", False), ("SQLite + replay, storage cache", True)):
            storage: Storage = SQLiteStorage(str(Path(tmp) / f"{replay}.db"))
            backend = make_backend(storage, now)
            results[label] = run(label, replay_on(backend) if replay else backend, now, sqlite_runs)
        audit.close()
    base, sqlite_base = results["baseline (memory storage)"], results["SQLite baseline"]
    print()
    for label, value in results.items():
        ref = sqlite_base if label.startswith("SQLite") else base
        print(f"{label:<40} {value - ref:+8.1f} us per login")


if __name__ == "__main__":
    main()
