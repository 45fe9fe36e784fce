"""Async HTTP clients for the STS call: the package's own client against aiohttp and httpx,
against a raw-stream floor.

Run: ``python -m benchmarks.async_transport [--requests 6000] [--tasks 50] [--rounds 3]
[--max-seconds 20] [--uvloop]``.

The stub STS of :mod:`benchmarks.server_throughput` (its own process, no delay) answers a
fixed GetCallerIdentity XML on 127.0.0.1. In this process, ``--tasks`` asyncio tasks share
one client and send ``--requests`` signed-looking POSTs in all (each round also stops
after ``--max-seconds``). Every client is configured as the transport needs it: a
keep-alive pool of ``--tasks`` connections, no redirects, no decompression
(``Accept-Encoding: identity``), environment proxies ignored, the raw body read in chunks
and capped at ``MAX_BODY``. Measured per client: requests/s and this process's CPU
microseconds per request (``time.process_time``). The floor, measured in the same run and
round, is the same load over raw ``asyncio`` streams (one connection per task, the
``read_response`` of :mod:`benchmarks.server_throughput`); each figure is also given as a
ratio to it (rate: higher is better; CPU: lower is better). The package's
:class:`~aws_iam_backend.io.aio_transport.AsyncHttpTransport` (its own asyncio HTTP/1.1
client, responses parsed by httptools; it replaced aiohttp on these figures) is measured
as the whole ``send``: deadline, retry logic, request encoding, pool, body cap,
:class:`STSResponse`. Clients are interleaved round by round; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx

from aws_iam_backend.io.aio_transport import AsyncHttpTransport
from aws_iam_backend.io.transport_rules import MAX_BODY
from aws_iam_backend.login.messages import OutboundRequest, SigV4Info
from benchmarks.http_servers import start_stub, stop
from benchmarks.server_throughput import BODY, XML, read_response

HOST = "sts.amazonaws.com"
HEADERS = (
    ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
    ("X-Amz-Date", "20260101T000000Z"),
    ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/sts/..."),
)
CHUNK = 16 * 1024

#: One request on a connection that the client already holds; returns the body.
Send = Callable[[], Awaitable[bytes]]
#: Builds a client inside ``stack`` and returns a per-task factory of ``Send`` callables.
Setup = Callable[[AsyncExitStack, int, int], Awaitable[Callable[[], Awaitable[Send]]]]


# ------------------------------------------------------------------------- clients


async def raw_streams(
    stack: AsyncExitStack, port: int, tasks: int
) -> Callable[[], Awaitable[Send]]:
    """The floor: one hand-written keep-alive HTTP/1.1 connection per task."""
    head = f"POST / HTTP/1.1\r\nHost: {HOST}\r\nAccept-Encoding: identity\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in HEADERS)
    wire = f"{head}Content-Length: {len(BODY)}\r\n\r\n{BODY}".encode()

    async def per_task() -> Send:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        stack.callback(writer.close)

        async def send() -> bytes:
            writer.write(wire)
            status, body = await read_response(reader)
            assert status.startswith(b"HTTP/1.1 200")
            assert len(body) <= MAX_BODY
            return body

        return send

    return per_task


async def capped(chunks: Callable[[], Awaitable[bytes]]) -> bytes:
    """Read ``chunks()`` until it returns b"", refusing more than ``MAX_BODY`` bytes."""
    parts: list[bytes] = []
    size = 0
    while chunk := await chunks():
        size += len(chunk)
        assert size <= MAX_BODY
        parts.append(chunk)
    return b"".join(parts)


async def aiohttp_client(
    stack: AsyncExitStack, port: int, tasks: int
) -> Callable[[], Awaitable[Send]]:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=tasks)
    session = await stack.enter_async_context(
        aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)
    )
    url = f"http://127.0.0.1:{port}/"
    headers = {**dict(HEADERS), "Host": HOST, "Accept-Encoding": "identity"}

    async def send() -> bytes:
        async with session.post(url, data=BODY, headers=headers, allow_redirects=False) as resp:
            body = await capped(lambda: resp.content.read(CHUNK))
            assert resp.status == 200
            return body

    async def per_task() -> Send:
        return send

    return per_task


async def httpx_client(
    stack: AsyncExitStack, port: int, tasks: int
) -> Callable[[], Awaitable[Send]]:
    # httpx caps connections per client, not per host: one host here, so the same thing.
    limits = httpx.Limits(max_connections=tasks, max_keepalive_connections=tasks)
    client = await stack.enter_async_context(
        httpx.AsyncClient(limits=limits, trust_env=False, follow_redirects=False)
    )
    url = f"http://127.0.0.1:{port}/"
    headers = {**dict(HEADERS), "Host": HOST, "Accept-Encoding": "identity"}

    async def send() -> bytes:
        async with client.stream("POST", url, content=BODY, headers=headers) as resp:
            raw = resp.aiter_raw(CHUNK)
            body = await capped(lambda: anext(raw, b""))
            assert resp.status_code == 200
            return body

    async def per_task() -> Send:
        return send

    return per_task


async def package_transport(
    stack: AsyncExitStack, port: int, tasks: int
) -> Callable[[], Awaitable[Send]]:
    transport = await stack.enter_async_context(AsyncHttpTransport(max_pool_connections=tasks))
    request = OutboundRequest(
        method="POST",
        url=f"http://127.0.0.1:{port}/",
        host=HOST,
        headers=HEADERS,
        body=BODY.encode(),
        sigv4=SigV4Info(
            access_key_id="AKIDEXAMPLE",
            scope_date="20260101",
            region="us-east-1",
            signed_headers=("host", "x-amz-date"),
            signature="0" * 64,
            request_time=datetime(2026, 1, 1, tzinfo=UTC),
            presigned=False,
        ),
    )

    async def send() -> bytes:
        response = await transport.send(request, timeout=10.0, max_retries=0)
        assert response.status == 200
        return response.body

    async def per_task() -> Send:
        return send

    return per_task


CLIENTS: dict[str, Setup] = {
    "floor (raw asyncio streams)": raw_streams,
    "aiohttp": aiohttp_client,
    "httpx": httpx_client,
    "AsyncHttpTransport (own)": package_transport,
}


# ------------------------------------------------------------------------ measure


async def measure(
    setup: Setup, port: int, requests: int, tasks: int, bound: float
) -> dict[str, Any]:
    """One round for one client: warm the pool, then time ``requests`` sends."""
    async with AsyncExitStack() as stack:
        per_task = await setup(stack, port, tasks)
        senders = [await per_task() for _ in range(tasks)]
        await asyncio.gather(*(sender() for sender in senders))  # open every connection
        remaining = [requests]
        errors: list[str] = []
        deadline = time.monotonic() + bound

        async def worker(send: Send) -> None:
            while remaining[0] > 0 and time.monotonic() < deadline:
                remaining[0] -= 1
                try:
                    assert await send() == XML
                except Exception as exc:  # counted, reported
                    errors.append(type(exc).__name__)

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(sender) for sender in senders))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = requests - max(remaining[0], 0)
    return {"rate": done / wall, "cpu_us": cpu / done * 1e6, "done": done, "errors": errors}


def run(args: argparse.Namespace, port: int) -> dict[str, dict[str, Any]]:
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in CLIENTS}
    runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    for _ in range(args.rounds):
        for name, setup in CLIENTS.items():
            rounds[name].append(
                runner(measure(setup, port, args.requests, args.tasks, args.max_seconds))
            )
    floor = rounds[next(iter(CLIENTS))]
    floor_rate = statistics.median(r["rate"] for r in floor)
    floor_cpu = statistics.median(r["cpu_us"] for r in floor)
    summary: dict[str, dict[str, Any]] = {}
    for name, results in rounds.items():
        rate = statistics.median(r["rate"] for r in results)
        cpu = statistics.median(r["cpu_us"] for r in results)
        summary[name] = {
            "requests_per_s": round(rate),
            "cpu_us_per_request": round(cpu, 1),
            "rate_vs_floor": round(rate / floor_rate, 2),
            "cpu_vs_floor": round(cpu / floor_cpu, 2),
            "requests": sum(r["done"] for r in results),
            "errors": sorted({e for r in results for e in r["errors"]}),
        }
    return summary


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'client':30} {'req/s':>8} {'CPU µs/req':>11} {'rate/floor':>11} {'CPU/floor':>10}"]
    for name, row in summary.items():
        lines.append(
            f"{name:30} {row['requests_per_s']:>8} {row['cpu_us_per_request']:>11} "
            f"{row['rate_vs_floor']:>11} {row['cpu_vs_floor']:>10}"
            + (f"  errors: {row['errors']}" if row["errors"] else "")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="per client per round")
    parser.add_argument("--tasks", type=int, default=50, help="concurrent tasks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="bound per round")
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    stub, port = start_stub(0.0)
    try:
        summary = run(args, port)
    finally:
        stop(stub)
    print(json.dumps(summary, indent=2) if args.json else table(summary))
    print(
        f"({args.tasks} tasks, up to {args.requests} requests per client and round, "
        f"{args.rounds} rounds, medians; aiohttp {aiohttp.__version__}, httpx {httpx.__version__})"
    )


if __name__ == "__main__":
    main()
