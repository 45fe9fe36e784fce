"""The core's CPU cost as a ratio of the Python floor of the same work.

Run: ``python -m benchmarks.core_floor [--n 3000] [--top 10] [--no-profile]``.

The floor (as the "cheap core" issue defines it) is the plain-Python cost of the work
a login cannot avoid: base64-decode the payload's URL, body and headers, JSON-decode
the headers, ``urlsplit`` the URL, ``parse_qsl`` the body, split the ``Authorization``
header into its parts, one ``defusedxml`` parse of the STS reply, and one token mint
(``secrets.token_urlsafe(32)``) and HMAC-SHA256 of it. ``Backend.verify_login`` and a
full ``Backend.login`` with :class:`MemoryStorage` are then measured on the stub
transport, IAM and payload of :mod:`benchmarks.login_cpu` (median CPU microseconds
over ``n`` interleaved runs after warm-up) and printed as multiples of that floor. Finally
``verify_login`` is profiled with :mod:`cProfile` and the top functions by self time
are printed.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from defusedxml import ElementTree

from aws_iam_backend import MemoryStorage

from .login_cpu import XML, make_backend, payload

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


def median_us(actions: dict[str, Callable[[], object]], n: int, warmup: int) -> dict[str, float]:
    """Median CPU microseconds of each action over ``n`` runs after ``warmup`` runs.

    The actions run interleaved (one of each per round), so a change in the machine's
    load during the run shifts all of them alike and the ratios stay comparable.
    """
    for _ in range(warmup):
        for action in actions.values():
            action()
    samples: dict[str, list[float]] = {label: [] for label in actions}
    clock = time.process_time_ns
    for _ in range(n):
        for label, action in actions.items():
            start = clock()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000, help="measured runs per case")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--top", type=int, default=10, help="profile rows to print")
    parser.add_argument("--profile-rounds", type=int, default=2000)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    now = datetime.now(UTC).replace(microsecond=0)
    data = payload(now)
    wire = floor_input(data)
    backend = make_backend(MemoryStorage(), now)
    backend.login(data)  # fail fast if the stubs no longer produce a successful login

    medians = median_us(
        {
            "floor": lambda: floor_work(wire),
            "verify": lambda: backend.verify_login(data),
            "login": lambda: backend.login(data),
        },
        args.n,
        args.warmup,
    )
    floor, verify, login = medians["floor"], medians["verify"], medians["login"]
    print(f"{'python floor':<28} median {floor:8.1f} us")
    for label, value, target in (
        ("verify_login", verify, 2),
        ("login, memory storage", login, 3),
    ):
        ratio = value / floor
        print(f"{label:<28} median {value:8.1f} us   {ratio:5.2f}x floor  (target {target}x)")
    if not args.no_profile:
        print(f"\nverify_login, top {args.top} by self time ({args.profile_rounds} calls):")
        print(profile(lambda: backend.verify_login(data), args.profile_rounds, args.top))


if __name__ == "__main__":
    main()
