"""The same ASGI app under uvicorn+h11, uvicorn+httptools and Granian: speed and listener facts.

Run: ``python -m benchmarks.http_servers [--logins 2000] [--clients 100] [--health 5000]
[--rounds 3] [--sts-delay 0.05] [--bound 20] [--no-facts] [--no-bench]``.

Throughput: each server serves ``make_asgi_app`` over a dev-like :class:`AsyncVaultAPI` on
:class:`AsyncMemoryStorage` (``config/client`` ``sts_endpoint`` = the stub STS of
:mod:`benchmarks.server_throughput`, rate limits off, one role) and is driven by that
module's load generator (one keep-alive connection per client): logins/s, p50/p99,
server CPU per request (``/proc/<pid>/stat``, children included) and errors, then a plain
``GET /v1/sys/health`` rate. The floor, measured in the same run, is the same generator
against the stub STS itself (50 ms delay for logins, no delay for health); every rate is
also given as a fraction of its floor, since the 2-core machine is shared and noisy.

Facts (each server started again with a connection cap of ``FACTS_CAP``): does ``LIST``
reach the app (raw socket, and hvac's ``auth.aws.list_roles()``); when is a connection
closed that sends a partial header block, trickles a header or a body at one byte per
second, sends nothing, or idles after a response (each waited on for at most ``--bound``
seconds); what happens past the connection cap, with big headers, a big body and a
malformed ``Content-Length``. And, on one more instance whose app is wrapped by
:func:`with_body_deadline` (``APP_BODY_DEADLINE``), whether an app-side whole-request
deadline closes the trickled body under that server.

Server settings: uvicorn exactly as :func:`aws_iam_backend.server.serve.serve` sets it
(:func:`~aws_iam_backend.server.serve.uvicorn_config`, whose protocol is the server's
JSON-answering httptools one; the cap is its ``max_connections``); the h11 run swaps in
uvicorn's own h11 protocol (the parser the server used before, without its JSON refusals,
header-read clock or cap, which cost little next to parsing). Granian: ASGI, 1 worker, HTTP/1 only,
``header_read_timeout`` 10 s (Vault's ``http_read_header_timeout``), ``backpressure`` for
the cap, the app built in the worker by :func:`build_app`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import json
import select
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from aws_iam_backend.server.asgi import ASGIApp, Message, Receive, Scope, Send
from benchmarks.server_throughput import (
    ROOT,
    _client,
    cpu_seconds,
    drive,
    free_port,
    wait_ready,
)

KINDS = ("uvicorn-h11", "uvicorn-httptools", "granian")
FACTS_CAP = 8
HEADER_READ_TIMEOUT_MS = 10_000
APP_BODY_DEADLINE = 5.0
HEALTH = b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

# --------------------------------------------------------------------- servers


def build_app(sts_endpoint: str, workers: int, body_deadline: float | None = None) -> ASGIApp:
    """The app every server serves: memory storage, stub STS, rate limits off, one role.

    Module level (and called with plain arguments) so Granian's worker can build it. The
    :class:`AsyncVaultAPI` (one aiohttp STS pool of ``workers`` connections) is configured
    in the ASGI lifespan startup, on the serving loop. ``body_deadline``: wrapped by
    :func:`with_body_deadline` (a facts run only).
    """
    from aws_iam_backend import AsyncMemoryStorage
    from aws_iam_backend.server.asgi import make_asgi_app
    from benchmarks.server_throughput import build_api, configure

    api, close = build_api(AsyncMemoryStorage(), workers)
    app = make_asgi_app(api, on_startup=lambda: configure(api, sts_endpoint), on_shutdown=close)
    return app if body_deadline is None else with_body_deadline(app, body_deadline)


def with_body_deadline(app: ASGIApp, seconds: float) -> ASGIApp:
    """``app`` whose ``receive()`` reports ``http.disconnect`` once the request is
    ``seconds`` old: a whole-request read timeout in the app, whatever the server (the
    adapter then answers ``400 client disconnected`` with ``Connection: close``)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + seconds

        async def timed() -> Message:
            try:
                async with asyncio.timeout_at(deadline):
                    return await receive()
            except TimeoutError:
                return {"type": "http.disconnect"}

        await app(scope, timed, send)

    return wrapped


def run_uvicorn(
    parser: str, port: int, sts: str, workers: int, cap: int | None, deadline: float | None
) -> None:
    """uvicorn exactly as :func:`serve` configures it (:func:`uvicorn_config`, the cap as
    ``max_connections``); ``parser`` ``h11`` swaps in uvicorn's own h11 protocol."""
    import uvicorn

    from aws_iam_backend.server.serve import DEFAULT_MAX_CONNECTIONS, bind, uvicorn_config

    config = uvicorn_config(
        build_app(sts, workers, deadline),
        log_level="warning",
        idle_timeout=5,
        max_connections=DEFAULT_MAX_CONNECTIONS if cap is None else cap,
    )
    if parser == "h11":
        config.http = "h11"  # plain-text refusals, no header-read clock, no cap
    uvicorn.Server(config).run(sockets=[bind("127.0.0.1", port)])


def run_granian(port: int, sts: str, workers: int, cap: int | None, deadline: float | None) -> None:
    """Granian, ASGI interface, one worker process building the app after the fork."""
    # granian is not a project dependency: CI's mypy runs without it
    from granian import Granian  # type: ignore[import-not-found,unused-ignore]
    from granian.constants import (  # type: ignore[import-not-found,unused-ignore]
        HTTPModes,
        Interfaces,
    )
    from granian.http import HTTP1Settings  # type: ignore[import-not-found,unused-ignore]
    from granian.log import LogLevels  # type: ignore[import-not-found,unused-ignore]

    server = Granian(
        "benchmarks.http_servers:build_app",  # only a label: the loader below builds it
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        http=HTTPModes.http1,
        websockets=False,
        backlog=2048,
        backpressure=cap,  # None: backlog // workers; a semaphore held per open connection
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        log_level=LogLevels.warning,
    )
    server.serve(
        target_loader=functools.partial(build_app, sts, workers, deadline), wrap_loader=False
    )


def start(
    kind: str, sts: str, workers: int, cap: int | None = None, deadline: float | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.http_servers", "--serve", kind,
               "--port", str(port), "--sts", sts, "--workers", str(workers)]  # fmt: skip
    if cap is not None:
        command += ["--cap", str(cap)]
    if deadline is not None:
        command += ["--body-deadline", str(deadline)]
    process = subprocess.Popen(command)
    try:
        wait_ready(port)
    except BaseException:
        stop(process)
        raise
    return process, port


def start_stub(delay: float) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    me = [sys.executable, "-m", "benchmarks.server_throughput"]
    process = subprocess.Popen([*me, "--stub", str(port), "--sts-delay", str(delay)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise RuntimeError("stub did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ------------------------------------------------------------------ throughput


async def drive_health(port: int, count: int, clients: int) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    remaining = [count]
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(port, HEALTH, remaining, latencies, errors) for _ in range(clients))
    )
    return time.perf_counter() - started, latencies, errors


def summarize(
    run: tuple[float, list[float], list[str]], cpu: float | None, floor: float | None
) -> dict[str, Any]:
    elapsed, latencies, errors = run
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    rate = len(latencies) / elapsed
    return {
        "done": len(latencies),
        "per_s": round(rate, 1),
        "of_floor": round(rate / floor, 3) if floor else None,
        "p50_ms": round(quantiles[49] * 1000, 1),
        "p99_ms": round(quantiles[98] * 1000, 1),
        "server_cpu_ms_each": round(cpu / len(latencies) * 1000, 3) if cpu is not None else None,
        "errors": len(errors),
        "first_errors": errors[:2],
    }


def measure(
    pid: int | None, run: Callable[[], tuple[float, list[float], list[str]]]
) -> tuple[tuple[float, list[float], list[str]], float | None]:
    before = cpu_seconds(pid) if pid else 0.0
    result = run()
    return result, (cpu_seconds(pid) - before) if pid else None


def bench_round(
    args: argparse.Namespace, order: tuple[str, ...], sts: str, ports: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """One round: the floors, then each server kind in ``order``."""
    logins, clients, health = args.logins, args.clients, args.health
    rows: dict[str, dict[str, Any]] = {}
    login_floor, _ = measure(None, lambda: asyncio.run(drive(ports["stub"], logins, clients)))
    health_floor, _ = measure(
        None, lambda: asyncio.run(drive_health(ports["stub0"], health, clients))
    )
    floor = {
        "login": summarize(login_floor, None, None),
        "health": summarize(health_floor, None, None),
    }
    rows["floor (stub STS)"] = floor
    for kind in order:
        process, port = start(kind, sts, max(clients, 8))
        try:
            asyncio.run(drive(port, min(200, logins), min(clients, 50)))  # warm-up
            login, login_cpu = measure(
                process.pid,
                lambda: asyncio.run(drive(port, logins, clients)),  # noqa: B023
            )
            hc, hc_cpu = measure(
                process.pid,
                lambda: asyncio.run(drive_health(port, health, clients)),  # noqa: B023
            )
        finally:
            stop(process)
        rows[kind] = {
            "login": summarize(login, login_cpu, floor["login"]["per_s"]),
            "health": summarize(hc, hc_cpu, floor["health"]["per_s"]),
        }
    return rows


# ----------------------------------------------------------------------- facts


def _status(data: bytes) -> str:
    """The status line of a response (or ``-`` when nothing came back)."""
    return data.split(b"\r\n", 1)[0].decode("latin-1") if data else "-"


def _body(data: bytes) -> str:
    return data.partition(b"\r\n\r\n")[2][:120].decode("latin-1")


def exchange(port: int, data: bytes, wait: float = 5.0) -> dict[str, Any]:
    """Send ``data`` (one request with ``Connection: close``); read until close or ``wait``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    received = b""
    note = ""
    try:
        sock.sendall(data)
    except OSError as exc:
        note = f"send: {type(exc).__name__}"
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        note = note or "no close within wait"
    except OSError as exc:
        note = note or f"recv: {type(exc).__name__}"
    finally:
        sock.close()
    return {"status": _status(received), "body": _body(received), "note": note}


def until_closed(
    port: int, first: bytes, bound: float, trickle: bytes = b"", read_response: bool = False
) -> dict[str, Any]:
    """Send ``first``, then one byte of ``trickle`` a second (if any); report when the
    server closed the connection (None: still open after ``bound`` seconds) and what it
    sent. ``read_response``: ``first`` is a whole request, whose answer is read first and
    the clock starts after it (the idle keep-alive case)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    received = b""
    started = time.monotonic()
    sent = 0
    try:
        sock.sendall(first)
        if read_response:
            while b"\r\n\r\n" not in received:
                received += sock.recv(65536)
            head, _, rest = received.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")[1:]
                if line.lower().startswith(b"content-length:")
            )
            while len(rest) < length:
                rest += sock.recv(65536)
            received = b""
        started = time.monotonic()
        next_byte = started + 1
        while (now := time.monotonic()) - started < bound:
            timeout = min(next_byte - now, started + bound - now) if trickle else bound
            readable, _, _ = select.select([sock], [], [], max(timeout, 0.0))
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    return _closed(started, received, sent)
                received += chunk
                continue
            if trickle and time.monotonic() >= next_byte and sent < len(trickle):
                sock.send(trickle[sent : sent + 1])
                sent += 1
                next_byte += 1
        return {"closed_after_s": None, "sent_to_server": _status(received), "bytes_trickled": sent}
    except (ConnectionResetError, BrokenPipeError):
        return _closed(started, received, sent, reset=True)
    finally:
        sock.close()


def _closed(started: float, received: bytes, sent: int, reset: bool = False) -> dict[str, Any]:
    return {
        "closed_after_s": round(time.monotonic() - started, 1),
        "sent_to_server": _status(received) + (" (reset)" if reset else ""),
        "bytes_trickled": sent,
    }


def hvac_list_roles(port: int) -> str:
    import hvac

    try:
        client = hvac.Client(url=f"http://127.0.0.1:{port}", token=ROOT, timeout=5)
        return f"ok: {client.auth.aws.list_roles()}"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"


def connection_cap(port: int, cap: int) -> dict[str, Any]:
    """With ``cap - 2``, ``cap - 1`` then ``cap`` idle connections open, is a new request
    answered (within 3 s)? Then the idle ones are closed: is a waiting one answered then?"""
    probe = HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    idle: list[socket.socket] = []
    result: dict[str, Any] = {}
    waiting: socket.socket | None = None
    for others in (cap - 2, cap - 1, cap):
        while len(idle) < others:
            idle.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.3)
        sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        sock.sendall(probe)
        readable, _, _ = select.select([sock], [], [], 3)
        answered = sock.recv(65536) if readable else b""
        result[f"{others} others open"] = _status(answered) + (
            f" {_body(answered)[:40]!r}" if _body(answered) else ""
        )
        if answered:
            sock.close()
        else:
            waiting = sock
            break
    for other in idle:
        other.close()
    if waiting is not None:
        released = time.monotonic()
        readable, _, _ = select.select([waiting], [], [], 5)
        late = waiting.recv(65536) if readable else b""
        result["the waiting one, once the others close"] = (
            f"{_status(late)} after {time.monotonic() - released:.1f} s"
        )
        waiting.close()
    return result


def facts(kind: str, sts: str, bound: float) -> dict[str, Any]:
    process, port = start(kind, sts, 16, cap=FACTS_CAP)
    timed_process, timed_port = start(kind, sts, 16, deadline=APP_BODY_DEADLINE)
    try:
        partial = b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        slow_body = (
            b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        timed = {
            "partial header block, then silence": (partial, b"", False),
            "header trickled 1 byte/s": (partial + b"X-Slow: ", b"a" * 100, False),
            "body trickled 1 byte/s (Content-Length 100)": (slow_body, b"x" * 100, False),
            "connect, send nothing": (b"", b"", False),
            "idle after a response (keep-alive)": (HEALTH, b"", True),
        }
        with concurrent.futures.ThreadPoolExecutor(len(timed) + 1) as pool:
            futures = {
                name: pool.submit(until_closed, port, first, bound, trickle, read)
                for name, (first, trickle, read) in timed.items()
            }
            app_deadline = pool.submit(until_closed, timed_port, slow_body, bound, b"x" * 100)
            listed = {
                "raw LIST /v1/auth/aws/roles": exchange(
                    port,
                    b"LIST /v1/auth/aws/roles HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + f"X-Vault-Token: {ROOT}\r\nConnection: close\r\n\r\n".encode(),
                ),
                "hvac auth.aws.list_roles()": hvac_list_roles(port),
            }
            limits: dict[str, Any] = {}
            for size in (20_000, 200_000, 1_000_000):
                pad = b"X-Pad: " + b"a" * size + b"\r\n"
                request = HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n" + pad + b"\r\n")
                limits[f"header of {size} bytes"] = exchange(port, request)
            body = b"{" + b" " * 999_998 + b"}"
            limits["body of 1 MB (Content-Length)"] = exchange(
                port,
                b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body,
            )
            limits["malformed Content-Length"] = exchange(
                port,
                b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Length: abc\r\nConnection: close\r\n\r\n",
            )
            closes = {name: future.result() for name, future in futures.items()}
            closes[f"body trickled, app deadline {APP_BODY_DEADLINE:g} s"] = app_deadline.result()
        time.sleep(1)  # let the server notice the closed test connections
        cap = connection_cap(port, FACTS_CAP)
    finally:
        stop(process)
        stop(timed_process)
    return {"LIST": listed, "closes": closes, "limits": limits, f"cap={FACTS_CAP}": cap}


# ------------------------------------------------------------------------ main


def table(rounds: list[dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| round | server | logins/s | of floor | p50 ms | p99 ms | CPU ms/login | errors "
        "| health/s | of floor | CPU ms/health | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, rows in enumerate(rounds, 1):
        for name, row in rows.items():
            lo, hc = row["login"], row["health"]
            lines.append(
                f"| {index} | {name} | {lo['per_s']} | {lo['of_floor'] or '-'} | {lo['p50_ms']} "
                f"| {lo['p99_ms']} | {lo['server_cpu_ms_each'] or '-'} | {lo['errors']} "
                f"| {hc['per_s']} | {hc['of_floor'] or '-'} | {hc['server_cpu_ms_each'] or '-'} "
                f"| {hc['errors']} |"
            )
    return "\n".join(lines)


def summary(rounds: list[dict[str, dict[str, Any]]]) -> str:
    """Medians over the rounds; ``vs h11``: the median in-round ratio to uvicorn-h11."""
    lines = [
        "| server | logins/s | of floor | vs h11 | CPU ms/login | health/s | of floor | vs h11 "
        "| CPU ms/health | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def median(name: str, test: str, key: str) -> float:
        return round(statistics.median(float(r[name][test][key] or 0.0) for r in rounds), 3)

    def versus(name: str, test: str) -> float:
        ratios = [float(r[name][test]["per_s"] / r[KINDS[0]][test]["per_s"]) for r in rounds]
        return round(statistics.median(ratios), 2)

    for name in ("floor (stub STS)", *KINDS):
        errors = sum(r[name][t]["errors"] for r in rounds for t in ("login", "health"))
        cells = [name]
        for test in ("login", "health"):
            cells += [
                str(median(name, test, "per_s")),
                str(median(name, test, "of_floor")) if name in KINDS else "-",
                str(versus(name, test)) if name in KINDS else "-",
                str(median(name, test, "server_cpu_ms_each")) if name in KINDS else "-",
            ]
        lines.append("| " + " | ".join([*cells, str(errors)]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--logins", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--health", type=int, default=5000, help="health requests per server")
    parser.add_argument("--sts-delay", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (order rotates)")
    parser.add_argument("--bound", type=float, default=20.0, help="longest wait for a close, s")
    parser.add_argument("--no-facts", action="store_true")
    parser.add_argument("--no-bench", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sts", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--cap", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--body-deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "granian":
        run_granian(args.port, args.sts, args.workers, args.cap, args.body_deadline)
        return
    if args.serve:
        run_uvicorn(
            args.serve.removeprefix("uvicorn-"),
            args.port,
            args.sts,
            args.workers,
            args.cap,
            args.body_deadline,
        )
        return
    started = time.monotonic()
    stub, stub_port = start_stub(args.sts_delay)
    stub0, stub0_port = start_stub(0.0)
    sts = f"http://127.0.0.1:{stub_port}"
    result: dict[str, Any] = {"settings": vars(args) | {"serve": None}}
    try:
        if not args.no_bench:
            ports = {"stub": stub_port, "stub0": stub0_port}
            result["rounds"] = [
                bench_round(args, KINDS[i % len(KINDS) :] + KINDS[: i % len(KINDS)], sts, ports)
                for i in range(args.rounds)
            ]
        if not args.no_facts:
            result["facts"] = {kind: facts(kind, sts, args.bound) for kind in KINDS}
    finally:
        stop(stub)
        stop(stub0)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    if "rounds" in result:
        print(table(result["rounds"]), summary(result["rounds"]), sep="\n\n", end="\n\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
