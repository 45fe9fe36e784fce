"""End-to-end login throughput of the reference server (uvicorn + the asyncio ASGI app).

Run: ``python -m benchmarks.server_throughput [--logins 5000] [--clients 200]``.

Three processes on loopback: a stub STS (asyncio; answers a valid GetCallerIdentity after
``--sts-delay`` seconds, 50 ms by default), the server (memory storage, ``config/client``
``sts_endpoint`` = the stub, one aiohttp STS pool as large as ``--clients``), and
this driver (asyncio, one keep-alive connection per client, all sending the same prebuilt
hvac-style payload signed for ``sts.amazonaws.com``; there is no replay protection yet).
Reports throughput, p50/p99 latency, errors and each process's CPU time (from
``/proc/<pid>/stat`` and ``resource``). The ideal is ``clients / sts_delay`` logins/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

if TYPE_CHECKING:
    from aws_iam_backend.io.protocols import AsyncStorage
    from aws_iam_backend.server._async.api import AsyncVaultAPI

ARN = "arn:aws:iam::123456789012:user/bench"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
XML = (
    '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    f"<GetCallerIdentityResult><Arn>{ARN}</Arn><UserId>AIDABENCHMARKUSER001</UserId>"
    "<Account>123456789012</Account></GetCallerIdentityResult>"
    "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
    "</GetCallerIdentityResponse>"
).encode()
ROOT = "bench-root"


# ------------------------------------------------------------------- stub STS


async def _read_request(reader: asyncio.StreamReader) -> bool:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return True


def run_stub(port: int, delay: float) -> None:
    """Serve GetCallerIdentity answers on 127.0.0.1:``port`` after ``delay`` seconds."""
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
        + f"Content-Length: {len(XML)}\r\n\r\n".encode()
        + XML
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await _read_request(reader):
                await asyncio.sleep(delay)
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --------------------------------------------------------------------- server


def build_api(
    storage: AsyncStorage, sts_pool: int
) -> tuple[AsyncVaultAPI, Callable[[], Awaitable[None]]]:
    """An :class:`AsyncVaultAPI` on ``storage`` whose mounts share one aiohttp STS pool of
    ``sts_pool`` connections, rate limits off; and what closes the pool and the storage.

    Raw throughput: every client shares one address and one role, so the per-source and
    per-role buckets are off, and so is the STS concurrency cap (the pool bounds it).
    """
    import attrs

    from aws_iam_backend import AsyncBackend, RateLimits
    from aws_iam_backend.io.aio_transport import AsyncHttpTransport
    from aws_iam_backend.server._async.api import AsyncVaultAPI

    transport = AsyncHttpTransport(max_pool_connections=sts_pool)

    def factory(**kwargs: Any) -> AsyncBackend:
        limits = RateLimits(0, 0, 0, 0, max_concurrent_sts_calls=0)
        kwargs["settings"] = attrs.evolve(kwargs["settings"], rate_limits=limits)
        return AsyncBackend(transport=transport, **kwargs)

    async def close() -> None:
        await transport.aclose()
        aclose = getattr(storage, "aclose", None)
        if aclose is not None:
            await aclose()

    return AsyncVaultAPI(storage=storage, root_token=ROOT, backend_factory=factory), close


async def configure(api: AsyncVaultAPI, sts_endpoint: str) -> None:
    """Mount ``aws/``, point ``config/client`` at the stub STS, write role ``bench``."""
    await api.start()
    await api.mounts.ensure("aws/")
    backend = await api.mounts.backend("aws/")
    assert backend is not None
    await backend.write_client_config({"sts_endpoint": sts_endpoint})
    await backend.write_role(
        "bench", {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False}
    )


def run_server(port: int, sts_endpoint: str, sts_pool: int, processes: int) -> None:
    """The reference server (uvicorn + the ASGI app awaiting :class:`AsyncVaultAPI`).

    One process serves from memory storage, configured in the lifespan startup; several
    pre-forked processes share a SQLite file (as ``[listener] workers`` does in the CLI),
    configured once before the fork, each with an STS pool of ``sts_pool // processes``.
    """
    import tempfile

    from aws_iam_backend import AsyncMemoryStorage, AsyncSQLiteStorage
    from aws_iam_backend.server.asgi import ASGIApp, make_asgi_app
    from aws_iam_backend.server.serve import bind, serve, serve_workers

    sock = bind("127.0.0.1", port)
    if processes == 1:
        api, close = build_api(AsyncMemoryStorage(), sts_pool)
        app = make_asgi_app(api, on_startup=lambda: configure(api, sts_endpoint), on_shutdown=close)
        serve(app, sock, log_level="warning")
        return
    path = tempfile.mkdtemp() + "/bench.db"

    async def prepare() -> None:
        api, close = build_api(AsyncSQLiteStorage(path), 1)
        try:
            await configure(api, sts_endpoint)
        finally:
            await close()

    asyncio.run(prepare())

    def make_app() -> ASGIApp:
        api, close = build_api(AsyncSQLiteStorage(path), max(sts_pool // processes, 1))
        return make_asgi_app(api, on_shutdown=close)

    serve_workers(make_app, sock, processes, log_level="warning")


# --------------------------------------------------------------------- client


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def login_payload(secret: str = "secret") -> bytes:
    """An hvac-style login (global host, us-east-1 scope, Host and Content-Length mapped).

    Each ``secret`` gives a distinct signature (the stub STS checks none), for servers
    with replay protection on.
    """
    url = "https://sts.amazonaws.com/"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Host": "sts.amazonaws.com",
        "Content-Length": str(len(BODY)),
    }
    request = AWSRequest(method="POST", url=url, data=BODY, headers=headers)
    SigV4Auth(Credentials("AKIAIOSFODNN7EXAMPLE", secret), "sts", "us-east-1").add_auth(request)
    return json.dumps(
        {
            "role": "bench",
            "iam_http_request_method": "POST",
            "iam_request_url": _b64(url),
            "iam_request_body": _b64(BODY),
            "iam_request_headers": _b64(json.dumps({k: [v] for k, v in request.headers.items()})),
        }
    ).encode()


async def read_response(
    reader: asyncio.StreamReader, timeout: float | None = None
) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response from ``reader``: its head and its ``Content-Length`` body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


async def _client(
    port: int, request: bytes, remaining: list[int], latencies: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while remaining[0] > 0:
            remaining[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head, body = await read_response(reader)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(body[:200].decode(errors="replace"))
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        errors.append(f"connection: {exc!r}")
    finally:
        writer.close()


async def drive(port: int, logins: int, clients: int) -> tuple[float, list[float], list[str]]:
    body = login_payload()
    request = (
        b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    latencies: list[float] = []
    errors: list[str] = []
    remaining = [logins]
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(port, request, remaining, latencies, errors) for _ in range(clients))
    )
    return time.perf_counter() - started, latencies, errors


# ----------------------------------------------------------------------- main


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live children (Linux ``/proc``)."""
    total = 0.0
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        children = [int(child) for child in handle.read().split()]
    for process in (pid, *children):
        with open(f"/proc/{process}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/sys/health", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def benchmark(logins: int, clients: int, delay: float, processes: int) -> dict[str, Any]:
    stub_port, server_port = free_port(), free_port()
    me = [sys.executable, "-m", "benchmarks.server_throughput"]
    stub = subprocess.Popen([*me, "--stub", str(stub_port), "--sts-delay", str(delay)])
    server = subprocess.Popen(
        [*me, "--serve", str(server_port), "--sts", f"http://127.0.0.1:{stub_port}",
         "--sts-pool", str(max(clients, 8)), "--processes", str(processes)]
    )  # fmt: skip
    try:
        wait_ready(server_port)
        asyncio.run(drive(server_port, min(200, logins), min(clients, 50)))  # warm-up
        cpu = {"server": cpu_seconds(server.pid), "stub": cpu_seconds(stub.pid)}
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        elapsed, latencies, errors = asyncio.run(drive(server_port, logins, clients))
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = {name: cpu_seconds(p.pid) - cpu[name] for name, p in
               (("server", server), ("stub", stub))}  # fmt: skip
        cpu["client"] = (client_after.ru_utime - client_before.ru_utime) + (
            client_after.ru_stime - client_before.ru_stime
        )
    finally:
        for process in (server, stub):
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    quantiles = statistics.quantiles(latencies, n=100)
    throughput = len(latencies) / elapsed
    return {
        "logins": len(latencies),
        "clients": clients,
        "server_processes": processes,
        "errors": len(errors),
        "first_errors": errors[:3],
        "elapsed_s": round(elapsed, 2),
        "throughput_per_s": round(throughput, 1),
        "ideal_per_s": round(clients / delay, 1),
        "fraction_of_ideal": round(throughput * delay / clients, 3),
        "p50_ms": round(quantiles[49] * 1000, 1),
        "p99_ms": round(quantiles[98] * 1000, 1),
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "server_cpu_ms_per_login": round(cpu["server"] / len(latencies) * 1000, 3),
        "server_cores_busy": round(cpu["server"] / elapsed, 2),
        "machine_cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--sts-delay", type=float, default=0.05)
    parser.add_argument("--stub", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sts", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help="server processes (SQLite)")
    parser.add_argument("--sts-pool", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub:
        run_stub(args.stub, args.sts_delay)
    elif args.serve:
        run_server(args.serve, args.sts, args.sts_pool, args.processes)
    else:
        result = benchmark(args.logins, args.clients, args.sts_delay, args.processes)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
