"""The core's CPU cost as a ratio of the Python floor of the same work, for both drivers.

Run: ``python -m benchmarks.core_floor [--n 3000] [--top 10] [--no-profile]
[--profile-driver sync|async]``.

The floor (as the "cheap core" issue defines it) is the plain-Python cost of the work
a login cannot avoid: base64-decode the payload's URL, body and headers, JSON-decode
the headers, ``urlsplit`` the URL, ``parse_qsl`` the body, split the ``Authorization``
header into its parts, one ``defusedxml`` parse of the STS reply, and one token mint
(``secrets.token_urlsafe(32)``) and HMAC-SHA256 of it. ``verify_login`` and a full
``login`` are then measured for both drivers: :class:`Backend` with :class:`MemoryStorage`
and :class:`AsyncBackend` with :class:`AsyncMemoryStorage` and an async stub transport,
on the stub IAM and payload of :mod:`benchmarks.login_cpu`. Every case runs in one
asyncio loop (the async driver awaited there as a host would; the floor and the sync
driver called directly), interleaved round by round, and each is reported as the median
CPU microseconds over ``n`` rounds after warm-up and as a multiple of the floor.
Finally ``verify_login`` of one driver is profiled with :mod:`cProfile` and the top
functions by self time are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import hashlib
import hmac
import io
import json
import pstats
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from defusedxml import ElementTree

from aws_iam_backend import AsyncBackend, AsyncMemoryStorage, BackendSettings, MemoryStorage
from aws_iam_backend.login.messages import OutboundRequest, STSResponse

from .login_cpu import ARN, NO_LIMITS, XML, FixedClock, StubIam, make_backend, payload

HMAC_KEY = b"core-floor-benchmark-key-0123456"


def floor_input(data: dict[str, Any]) -> dict[str, str]:
    """The payload with its headers in Vault's wire form: base64 of their JSON."""
    headers = {name: [value] for name, value in data["iam_request_headers"].items()}
    wire = dict(data)
    wire["iam_request_headers"] = base64.b64encode(json.dumps(headers).encode()).decode()
    return wire


def floor_work(wire: dict[str, str]) -> object:
    """The Python floor of one login's unavoidable work."""
    url = base64.b64decode(wire["iam_request_url"]).decode()
    body = base64.b64decode(wire["iam_request_body"]).decode()
    headers = json.loads(base64.b64decode(wire["iam_request_headers"]))
    parts = urlsplit(url)
    form = parse_qsl(body, keep_blank_values=True)
    authorization = headers["Authorization"][0]
    algorithm, _, rest = authorization.partition(" ")
    fields = dict(item.strip().split("=", 1) for item in rest.split(","))
    credential = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    root = ElementTree.fromstring(XML)
    token = secrets.token_urlsafe(32)
    digest = hmac.new(HMAC_KEY, token.encode(), hashlib.sha256).hexdigest()
    return parts, form, algorithm, credential, signed, root, digest


class AsyncStubTransport:
    """:class:`benchmarks.login_cpu.StubTransport` for the async driver."""

    async def send(
        self, request: OutboundRequest, *, timeout: float, max_retries: int
    ) -> STSResponse:
        return STSResponse(200, (("content-type", "text/xml"),), XML)


async def make_async_backend(now: datetime) -> AsyncBackend:
    """The async twin of :func:`benchmarks.login_cpu.make_backend` (memory storage)."""
    backend = AsyncBackend(
        storage=AsyncMemoryStorage(),
        transport=AsyncStubTransport(),
        iam=StubIam(),
        clock=FixedClock(now),
        settings=BackendSettings(rate_limits=NO_LIMITS),
    )
    await backend.write_role("bench", {"bound_iam_principal_arn": ARN})
    return backend


#: A case: a plain callable, or (async) a callable returning an awaitable.
Action = Callable[[], object]


async def median_us(
    actions: dict[str, Action], asynchronous: set[str], n: int, warmup: int
) -> dict[str, float]:
    """Median CPU microseconds of each action over ``n`` runs after ``warmup`` runs.

    Actions named in ``asynchronous`` return an awaitable, awaited in this (running)
    loop. The actions run interleaved (one of each per round), so a change in the
    machine's load during the run shifts all of them alike and the ratios stay comparable.
    """

    async def run(label: str, action: Action) -> None:
        result = action()
        if label in asynchronous:
            assert isinstance(result, Awaitable)
            await result

    for _ in range(warmup):
        for label, action in actions.items():
            await run(label, action)
    samples: dict[str, list[float]] = {label: [] for label in actions}
    clock = time.process_time_ns
    for _ in range(n):
        for label, action in actions.items():
            start = clock()
            if label in asynchronous:
                await action()  # type: ignore[misc]
            else:
                action()
            samples[label].append((clock() - start) / 1000)
    return {label: statistics.median(values) for label, values in samples.items()}


def profile(action: Callable[[], object], rounds: int, top: int) -> str:
    """The top ``top`` functions by self time over ``rounds`` calls of ``action``."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        action()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


async def measure(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    data = payload(now)
    wire = floor_input(data)
    backend = make_backend(MemoryStorage(), now)
    backend.login(data)  # fail fast if the stubs no longer produce a successful login
    async_backend = await make_async_backend(now)
    await async_backend.login(data)

    medians = await median_us(
        {
            "floor": lambda: floor_work(wire),
            "verify": lambda: backend.verify_login(data),
            "login": lambda: backend.login(data),
            "async verify": lambda: async_backend.verify_login(data),
            "async login": lambda: async_backend.login(data),
        },
        {"async verify", "async login"},
        args.n,
        args.warmup,
    )
    floor = medians["floor"]
    print(f"{'python floor':<34} median {floor:8.1f} us")
    for label, key, target in (
        ("Backend.verify_login", "verify", 2),
        ("Backend.login, memory storage", "login", 3),
        ("AsyncBackend.verify_login", "async verify", 2),
        ("AsyncBackend.login, memory storage", "async login", 3),
    ):
        value = medians[key]
        ratio = value / floor
        print(f"{label:<34} median {value:8.1f} us   {ratio:5.2f}x floor  (target {target}x)")
    if not args.no_profile:
        print(
            f"\n{args.profile_driver} verify_login, top {args.top} by self time "
            f"({args.profile_rounds} calls):"
        )
        if args.profile_driver == "async":
            loop = asyncio.get_running_loop()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.profile_rounds):
                await async_backend.verify_login(data)
            profiler.disable()
            del loop
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())
        else:
            print(profile(lambda: backend.verify_login(data), args.profile_rounds, args.top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--top", type=int, default=10, help="profile rows to print")
    parser.add_argument("--profile-rounds", type=int, default=2000)
    parser.add_argument("--profile-driver", choices=("sync", "async"), default="sync")
    parser.add_argument("--no-profile", action="store_true")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
