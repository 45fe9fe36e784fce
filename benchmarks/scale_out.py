"""Scale-out of the reference server: logins/s against the floor, 1 and 2 workers.

Run: ``python -m benchmarks.scale_out [--logins 3000] [--clients 200] [--sts-delay 0.05]
[--rounds 2]`` (``--configs`` picks configurations, ``--no-profile`` skips the py-spy run,
``--no-pin`` leaves placement to the kernel, ``--json`` also writes every number to a
file, ``--plot`` the figure; default ``docs/performance-server.png``).

Each configuration is the production server (``python -m aws_iam_backend server
--config FILE``: uvicorn, the asyncio ASGI app, plain HTTP; ``[limits]
per_source_rate = 0, per_role_rate = 0, max_concurrent_sts_calls = 0``: rate limits
off) with ``[listener] workers = 1`` and then ``2``, on

- ``sqlite``: a SQLite file in a temporary directory, unsealed;
- ``sqlite+seal``: the same, sealed (``[seal] key_file``, from ``seal generate``);
- ``pg+seal``: a fresh PostgreSQL database made for this run (dropped after), sealed
  (a PostgreSQL store must be), no cache, replay protection off;
- ``pg+seal+redis``: the same with ``[cache]`` Redis (a key prefix unique to this run)
  and replay protection on: every login carries its own pre-signed request, and each
  claim is one Redis ``SET NX``;
- ``memory``: memory storage, 1 worker only (a reference: no storage I/O at all).

Clients are driven as real ones are: hvac-shaped payloads (a botocore SigV4-signed
``GetCallerIdentity`` for ``sts.amazonaws.com``, base64 headers/body/URL) POSTed over real
keep-alive HTTP/1.1 connections on loopback, one per client, each client sending its next
login when the last is answered. The STS is the stub of :mod:`benchmarks.server_throughput`
(answers after ``--sts-delay``). Every load run is bounded: a fixed number of logins
(after a warm-up), a per-response timeout and an overall deadline (``--max-seconds``).

The floor is the same load generator sent straight to the stub STS, measured just before
each row with the same placement: ``ratio`` = server logins/s / that floor.

Placement (``os.sched_setaffinity``; Linux, at least 2 cores): the load generator (this
process) and the stub STS on core 1 for every run, floors included. 1 worker: the server
pinned to core 0. 2 workers: the server's processes may use cores 0 and 1 (the kernel
places them; the second competes with the load generator on core 1), so a 2-worker row
shows what a second core gives when it is shared with the load generator. PostgreSQL and
Redis are shared services and are not pinned (their CPU is counted separately).

Columns: logins/s (200s only) and its ratio to the floor; p50/p99/max latency; server
CPU µs per login (every server process, from ``/proc``; ``sys``: the kernel's share);
CPU seconds of each server process (for 2 workers: how evenly the shared socket spread
the connections); CPU µs per login of the PostgreSQL backends of the benchmark database
and of the Redis server (shared with anything else using it: an upper bound); responses
other than 200 (status 0: a connection error or timeout). Each configuration is run
``--rounds`` times (rounds interleave configurations), and the summary gives ranges.

Redis: the servers' ``[cache] prefix`` is ``aws-iam-bench-<random>:``; after the run every
key under that prefix (and nothing else) is deleted.

The profile: ``--profile-config`` (``pg+seal`` by default) with 1 worker pinned to core 0,
run once more (not in the table) under ``py-spy record --format raw --nolineno --gil``
(samples of the thread holding the GIL: Python's CPU, not threads waiting on I/O or
locks); it prints the share of samples by where the leaf frame is (uvicorn/h11, asyncio,
aiohttp, psycopg, each ``aws_iam_backend`` subpackage...), the top leaf frames, and this
package's frames by inclusive samples.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .server_throughput import ARN, free_port, login_payload, read_response

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT_TOKEN = secrets.token_urlsafe(32)  # passes the server's root-token strength check
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CORE = 0
CLIENT_CORE = 1
CLI_STS_POOL = 256  # each mount's STS pool: max_concurrent_sts_calls, 256 when 0 (as here)
DEFAULT_PLOT = "docs/performance-server.png"


@dataclass(frozen=True)
class Setup:
    """One storage configuration of the server."""

    name: str
    storage: str  # "sqlite", "pg" or "memory"
    sealed: bool = False
    redis: bool = False
    replay: bool = False
    max_workers: int = 2


SETUPS: tuple[Setup, ...] = (
    Setup("sqlite", "sqlite"),
    Setup("sqlite+seal", "sqlite", sealed=True),
    Setup("pg+seal", "pg", sealed=True),
    Setup("pg+seal+redis", "pg", sealed=True, redis=True, replay=True),
    Setup("memory", "memory", max_workers=1),
)
PROFILED = "pg+seal"


@dataclass
class Load:
    """What one load run saw."""

    elapsed: float
    latencies: list[float]
    statuses: collections.Counter[int]
    errors: list[str]

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def bad(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def quantile_ms(self, q: int) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


@dataclass
class Row:
    """One line of the results table."""

    setup: str
    workers: int
    load: Load
    round: int = 1
    floor: float = 0.0
    pinned: bool = False
    server_cpu: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds
    server_system: float = 0.0  # of which in the kernel
    pg_cpu: float = 0.0
    redis_cpu: float = 0.0
    log_tail: str = ""

    @property
    def ratio(self) -> float:
        return self.load.throughput / self.floor if self.floor else 0.0

    @property
    def cpu_us(self) -> float:
        return sum(self.server_cpu.values()) / max(self.load.ok, 1) * 1e6

    def as_dict(self) -> dict[str, Any]:
        ok = max(self.load.ok, 1)
        return {
            "config": self.setup,
            "workers": self.workers,
            "round": self.round,
            "pinned": self.pinned,
            "logins_ok": self.load.ok,
            "statuses": dict(self.load.statuses),
            "first_errors": self.load.errors[:3],
            "elapsed_s": round(self.load.elapsed, 2),
            "logins_per_s": round(self.load.throughput, 1),
            "floor_per_s": round(self.floor, 1),
            "ratio_to_floor": round(self.ratio, 3),
            "p50_ms": round(self.load.quantile_ms(50), 1),
            "p90_ms": round(self.load.quantile_ms(90), 1),
            "p99_ms": round(self.load.quantile_ms(99), 1),
            "max_ms": round(max(self.load.latencies, default=0.0) * 1000, 1),
            "server_cpu_us_per_login": round(self.cpu_us),
            "server_cpu_s_per_process": [round(v, 2) for v in self.server_cpu.values()],
            "server_cores_busy": round(sum(self.server_cpu.values()) / self.load.elapsed, 2),
            "server_system_share": round(
                self.server_system / max(sum(self.server_cpu.values()), 1e-9), 2
            ),
            "pg_cpu_us_per_login": round(self.pg_cpu / ok * 1e6),
            "redis_cpu_us_per_login": round(self.redis_cpu / ok * 1e6),
        }


# ------------------------------------------------------------------ /proc CPU


def process_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    return sum(process_times(pid))


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each of its live children, by pid."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            children = [int(child) for child in handle.read().split()]
    except OSError:
        children = []
    return {process: process_cpu(process) for process in (pid, *children)}


def tree_system(pid: int) -> float:
    """System CPU seconds of ``pid`` and its live children (the kernel's share)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            children = [int(child) for child in handle.read().split()]
    except OSError:
        children = []
    return sum(process_times(process)[1] for process in (pid, *children))


def delta(after: dict[int, float], before: dict[int, float]) -> dict[int, float]:
    return {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}


# ----------------------------------------------------------------- PostgreSQL


class Postgres:
    """A database made for this run, dropped by :meth:`drop`."""

    def __init__(self, admin_url: str) -> None:
        import psycopg

        self._admin = psycopg.connect(admin_url, autocommit=True)
        self.name = f"aws_iam_scale_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._admin.execute(f'CREATE DATABASE "{self.name}"')
        base = admin_url.rpartition("/")[0]
        self.url = f"{base}/{self.name}"

    def backend_pids(self) -> list[int]:
        rows = self._admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,)
        ).fetchall()
        return [int(row[0]) for row in rows]

    def backend_cpu(self) -> dict[int, float]:
        return {pid: process_cpu(pid) for pid in self.backend_pids()}

    def reset(self) -> None:
        """Empty the database between configurations (no server is connected then)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def drop(self) -> None:
        self._admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin.close()


# ---------------------------------------------------------------------- Redis


class Redis:
    """The shared Redis: the servers write under :attr:`prefix`, unique to this run."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.pid = int(self.client.info("server")["process_id"])
        self.prefix = f"aws-iam-bench-{uuid.uuid4().hex[:12]}:"

    def keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=self.prefix + "*", count=1000))

    def cleanup(self) -> int:
        """Delete every key under this run's prefix; how many there were."""
        ours = self.keys()
        for start in range(0, len(ours), 500):
            self.client.delete(*ours[start : start + 500])
        self.client.close()
        return len(ours)


# ------------------------------------------------------------------ placement


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def pin(pid: int, cores: set[int]) -> None:
    """Restrict ``pid`` (0: this process) to ``cores`` (children forked later inherit it)."""
    os.sched_setaffinity(pid, cores)


# ---------------------------------------------------------------------- load


def http_request(body: bytes) -> bytes:
    return (
        b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def signature_of(body: bytes) -> str:
    headers = json.loads(base64.b64decode(json.loads(body)["iam_request_headers"]))
    authorization: str = headers["Authorization"][0]
    return authorization.rpartition("Signature=")[2]


def requests_for(count: int, *, distinct: bool) -> list[bytes]:
    """``count`` login requests: one shared payload, or each signed once (replay on)."""
    if not distinct:
        return [http_request(login_payload())] * count
    return [http_request(login_payload(secrets.token_hex(8))) for _ in range(count)]


async def _client(port: int, queue: Iterator[bytes], load: Load, timeout: float) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        load.statuses[0] += 1
        load.errors.append(f"connect: {exc!r}")
        return
    try:
        for request in queue:
            started = time.perf_counter()
            writer.write(request)
            head, body = await read_response(reader, timeout)
            load.latencies.append(time.perf_counter() - started)
            status = int(head.split(b" ", 2)[1])
            load.statuses[status] += 1
            if status != 200 and len(load.errors) < 20:
                load.errors.append(f"{status}: {body[:200].decode(errors='replace')}")
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
        load.statuses[0] += 1
        load.errors.append(f"connection: {exc!r}")
    finally:
        writer.close()


async def _drive(
    port: int, requests: Sequence[bytes], clients: int, timeout: float, deadline: float
) -> Load:
    load = Load(0.0, [], collections.Counter(), [])
    queue = iter(requests)  # shared: each client takes the next request
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline):
            await asyncio.gather(*(_client(port, queue, load, timeout) for _ in range(clients)))
    except TimeoutError:
        load.statuses[0] += 1
        load.errors.append(f"load run stopped at its {deadline:g} s deadline")
    load.elapsed = time.perf_counter() - started
    return load


def drive(
    port: int,
    requests: Sequence[bytes],
    clients: int,
    timeout: float = 30.0,
    deadline: float = 120.0,
) -> Load:
    """Send ``requests`` over ``clients`` keep-alive connections (bounded in count and
    time: each response within ``timeout`` s, the whole run within ``deadline`` s)."""
    count = min(clients, len(requests))
    return asyncio.run(_drive(port, requests, count, timeout, deadline))


# --------------------------------------------------------------------- server


@dataclass
class Env:
    """What every configuration shares."""

    tmp: str
    seal_file: str
    root_file: str
    sts_url: str
    pg: Postgres | None
    redis: Redis | None
    redis_url: str = REDIS_URL
    pin: bool = False


def write_config(env: Env, setup: Setup, workers: int, port: int, run: str) -> str:
    if setup.storage == "sqlite":
        url = f"sqlite:///{env.tmp}/{run}.db"
    elif setup.storage == "pg":
        assert env.pg is not None
        url = env.pg.url
    else:
        url = "memory://"
    lines = [
        'log_level = "warning"',
        "[listener]",
        f'address = "127.0.0.1:{port}"',
        "tls_disable = true",
        f"workers = {workers}",
        "[storage]",
        f'url = "{url}"',
        "[root_token]",
        f'file = "{env.root_file}"',
        "[limits]",
        "per_source_rate = 0",
        "per_role_rate = 0",
        "max_concurrent_sts_calls = 0",
    ]
    if setup.sealed:
        lines += ["[seal]", f'key_file = "{env.seal_file}"']
    if setup.redis:
        assert env.redis is not None
        lines += ["[cache]", f'url = "{env.redis_url}"', f'prefix = "{env.redis.prefix}"']
    path = os.path.join(env.tmp, f"{run}.toml")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def api(port: int, path: str, data: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/{path}",
        data=json.dumps(data).encode(),
        headers={"X-Vault-Token": ROOT_TOKEN, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"POST {path}: {exc.code} {exc.read()[:300]!r}") from None


def wait_ready(port: int, server: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited {server.returncode}: {tail(log)}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/sys/health", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start: {tail(log)}; stacks in {dump_stacks(server.pid)}")


def dump_stacks(pid: int) -> str:
    """``py-spy dump`` of ``pid`` and its children into a file kept after the run."""
    path = f"/tmp/scale-out-stuck-{pid}.txt"
    py_spy = shutil.which("py-spy")
    with open(path, "w") as out:
        for process in tree_cpu(pid):
            if py_spy is not None:
                dump = subprocess.run([py_spy, "dump", "--pid", str(process)],
                                      capture_output=True, text=True, timeout=30)  # fmt: skip
                out.write(f"== {process}\n{dump.stdout}{dump.stderr}\n")
    return path


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as handle:
            return " | ".join(handle.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def running_server(env: Env, setup: Setup, workers: int) -> Iterator[tuple[int, int, str]]:
    """A configured server: yields (port, pid, log path); stopped and its data reset after.

    Pinned (``env.pin``): 1 worker to :data:`SERVER_CORE`; 2 workers to every core."""
    run = f"{setup.name.replace('+', '_')}_{workers}_{uuid.uuid4().hex[:6]}"
    port = free_port()
    config = write_config(env, setup, workers, port, run)
    log = os.path.join(env.tmp, f"{run}.log")
    cores = {SERVER_CORE} if workers == 1 else set(range(os.cpu_count() or 2))
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "aws_iam_backend", "server", "--config", config],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if env.pin:
        pin(server.pid, cores)  # before it imports anything, long before it forks
    try:
        wait_ready(port, server, log)
        api(port, "sys/auth/aws", {"type": "aws"})
        api(port, "auth/aws/config/client",
            {"sts_endpoint": env.sts_url, "replay_protection": setup.replay})  # fmt: skip
        api(port, "auth/aws/role/bench",
            {"auth_type": "iam", "bound_iam_principal_arn": ARN,
             "resolve_aws_unique_ids": False})  # fmt: skip
        time.sleep(0.6)  # other workers see the new mount/config (coherence interval 0.25 s)
        yield port, server.pid, log
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if setup.storage == "pg" and env.pg is not None:
            env.pg.reset()


def measure(
    env: Env, setup: Setup, workers: int, args: argparse.Namespace, floor: float, round_: int
) -> Row:
    warm = requests_for(min(300, args.logins), distinct=setup.replay)
    timed = requests_for(args.logins, distinct=setup.replay)
    bound = {"timeout": 30.0, "deadline": args.max_seconds}
    with running_server(env, setup, workers) as (port, pid, log):
        first = drive(port, warm[:1], 1)
        if first.ok != 1:
            raise RuntimeError(f"{setup.name}: first login failed: {first.errors} {tail(log)}")
        drive(port, warm[1:], args.clients, **bound)  # connections, pools, caches warm
        server0, system0 = tree_cpu(pid), tree_system(pid)
        pg0 = env.pg.backend_cpu() if env.pg and setup.storage == "pg" else {}
        redis0 = process_cpu(env.redis.pid) if env.redis else 0.0
        load = drive(port, timed, args.clients, **bound)
        server, system = delta(tree_cpu(pid), server0), tree_system(pid) - system0
        pg = sum(delta(env.pg.backend_cpu(), pg0).values()) if pg0 and env.pg else 0.0
        redis = process_cpu(env.redis.pid) - redis0 if env.redis and setup.redis else 0.0
        if workers > 1:  # the parent only forks and waits: show the workers
            server.pop(pid, None)
        return Row(setup.name, workers, load, round=round_, floor=floor, pinned=env.pin,
                   server_cpu=server, server_system=system, pg_cpu=pg, redis_cpu=redis,
                   log_tail=tail(log))  # fmt: skip


def measure_floor(stub_port: int, args: argparse.Namespace) -> float:
    """The load generator straight to the stub STS: its logins/s (same requests, clients)."""
    plain = requests_for(args.logins, distinct=False)
    return drive(stub_port, plain, args.clients, deadline=args.max_seconds).throughput


# -------------------------------------------------------------------- profile


@dataclass
class Profile:
    """Samples of one py-spy raw file, summarised."""

    total: int
    by_place: list[tuple[str, int]]
    top_self: list[tuple[str, int]]
    ours_inclusive: list[tuple[str, int]]


def profile(env: Env, setup: Setup, args: argparse.Namespace, out: str) -> Profile:
    """``setup`` with 1 worker under ``py-spy record --gil`` during one timed load."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy not found: pip install py-spy")
    warm = requests_for(min(300, args.logins), distinct=setup.replay)
    timed = requests_for(args.logins, distinct=setup.replay)
    with running_server(env, setup, 1) as (port, pid, _log):
        drive(port, warm, args.clients)
        spy = subprocess.Popen(
            [py_spy, "record", "-o", out, "--format", "raw", "--nolineno", "--gil",
             "--rate", "250", "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(1.5)  # attached
        drive(port, timed, args.clients, deadline=args.max_seconds)
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        if not os.path.exists(out):
            raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    return summarise(out)


def stacks(path: str) -> Iterator[tuple[list[str], int]]:
    """(frames, samples) of each line of py-spy's raw (collapsed) output, root first."""
    with open(path) as handle:
        for line in handle:
            stack, _, number = line.rstrip("\n").rpartition(" ")
            if stack and number.isdigit():
                yield stack.split(";"), int(number)


_PLACES = (
    ("aws_iam_backend/", None),  # split by subpackage below
    ("uvicorn/", "HTTP server: uvicorn"),
    ("h11/", "HTTP server: h11 parser"),
    ("aiohttp/", "STS client: aiohttp"),
    ("yarl/", "STS client: aiohttp"),
    ("multidict/", "STS client: aiohttp"),
    ("psycopg", "PostgreSQL driver: psycopg"),
    ("redis/", "Redis client: redis-py"),
    ("sqlite3/", "SQLite"),
    ("cryptography/", "seal: cryptography"),
    ("asyncio/", "asyncio (event loop, tasks)"),
    ("json/", "json"),
    ("attr/", "attrs"),
    ("<attrs generated", "attrs"),
    ("defusedxml/", "XML parse"),
    ("xml/", "XML parse"),
)


def place(frame: str) -> str:
    """Where a frame's code lives: a library, or ``ours: <subpackage>``."""
    where = frame.partition(" (")[2]
    for needle, name in _PLACES:
        if needle in frame:
            if name is None:
                sub = where.split("aws_iam_backend/", 1)[1].split("/")[0].removesuffix(".py")
                return f"ours: {sub}"
            return name
    return f"other: {where.rstrip(')').rpartition('/')[2] or frame}"


# Frames on (nearly) every login stack: the dispatch chain, not a cost of its own.
_CHAIN = frozenset(
    {"<module>", "main", "_run_server", "serve", "AsyncVaultAPI.handle", "AsyncVaultAPI._serve",
     "AsyncVaultAPI._dispatch", "AsyncVaultAPI._auth_method", "AsyncBackend.handle_request",
     "AsyncBackend._serve", "AsyncBackend.login", "AsyncVaultAPI._guarded"}
)  # fmt: skip


def summarise(path: str, package: str = "aws_iam_backend/") -> Profile:
    places: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, number in stacks(path):
        total += number
        places[place(frames[-1])] += number
        leaves[frames[-1]] += number
        for frame in set(frames):
            if package in frame and frame.partition(" (")[0] not in _CHAIN:
                ours[frame] += number
    return Profile(total, places.most_common(), leaves.most_common(), ours.most_common())


def short(frame: str) -> str:
    """``func (path/to/module.py)`` with the path shortened to its last two parts."""
    name, _, where = frame.partition(" (")
    parts = where.rstrip(")").split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


# ----------------------------------------------------------------------- report


def table(rows: list[Row]) -> str:
    head = ("config", "workers", "round", "floor/s", "logins/s", "ratio", "p50 ms",
            "p99 ms", "max ms", "CPU us/login", "sys", "per proc s", "pg us", "redis us",
            "non-200")  # fmt: skip
    lines = [head]
    for row in rows:
        d = row.as_dict()
        lines.append((
            d["config"], str(d["workers"]), str(d["round"]), f"{d['floor_per_s']:.0f}",
            f"{d['logins_per_s']:.0f}", f"{d['ratio_to_floor']:.3f}", f"{d['p50_ms']:.1f}",
            f"{d['p99_ms']:.1f}", f"{d['max_ms']:.0f}", str(d["server_cpu_us_per_login"]),
            f"{d['server_system_share']:.0%}",
            "/".join(f"{v:.1f}" for v in d["server_cpu_s_per_process"]),
            str(d["pg_cpu_us_per_login"]), str(d["redis_cpu_us_per_login"]),
            str(row.load.bad),
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
            for line in lines]  # fmt: skip
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def groups(rows: list[Row]) -> dict[tuple[str, int], list[Row]]:
    grouped: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        grouped.setdefault((row.setup, row.workers), []).append(row)
    return grouped


def _span(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}-{high}"


def summary(rows: list[Row]) -> str:
    """A markdown table: each (config, workers) as ranges over its rounds, and the
    2-worker / 1-worker throughput ratio of each round."""
    lines = [
        "| config | workers | logins/s | of floor | p50 ms | p99 ms | server CPU µs/login "
        "| PostgreSQL µs/login | Redis µs/login | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    grouped = groups(rows)
    for (name, workers), members in grouped.items():
        d = [m.as_dict() for m in members]
        lines.append(
            f"| {name} | {workers} | {_span([m.load.throughput for m in members])} "
            f"| {_span([m.ratio for m in members], '{:.2f}')} "
            f"| {_span([x['p50_ms'] for x in d])} | {_span([x['p99_ms'] for x in d])} "
            f"| {_span([x['server_cpu_us_per_login'] for x in d])} "
            f"| {_span([x['pg_cpu_us_per_login'] for x in d]) if 'pg' in name else '-'} "
            f"| {_span([x['redis_cpu_us_per_login'] for x in d]) if 'redis' in name else '-'} "
            f"| {sum(m.load.bad for m in members)} |"
        )
    scale = []
    for (name, workers), members in grouped.items():
        ones = {m.round: m for m in grouped.get((name, 1), [])}
        ratios = [
            m.load.throughput / ones[m.round].load.throughput
            for m in members
            if workers == 2 and m.round in ones and ones[m.round].load.throughput
        ]
        if ratios:
            scale.append(f"{name} {_span(ratios, '{:.2f}')}x")
    floors = [row.floor for row in rows]
    return (
        "\n".join(lines)
        + f"\n\nfloors (load generator -> stub STS, before each row): {_span(floors)} logins/s"
        + ("\nworkers 2 / workers 1 (same round): " + ", ".join(scale) if scale else "")
    )


def plot(rows: list[Row], path: str, title: str) -> None:
    """Bars: the ratio to the floor of each config and worker count (the mean of its
    rounds; each round a dot), with the 50 % target as a line."""
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    grouped = groups(rows)
    names = list(dict.fromkeys(row.setup for row in rows))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.38
    for offset, workers in ((-width / 2, 1), (width / 2, 2)):
        xs, means = [], []
        for index, name in enumerate(names):
            members = grouped.get((name, workers))
            if not members:
                continue
            ratios = [m.ratio for m in members]
            xs.append(index + offset)
            means.append(statistics.fmean(ratios))
            ax.scatter([index + offset] * len(ratios), ratios, color="black", s=10, zorder=3)
        label = f"{workers} worker{'s' if workers > 1 else ''}"
        bars = ax.bar(xs, means, width, label=label)
        ax.bar_label(bars, labels=[f"{m:.0%}" for m in means], padding=2, fontsize=8)
    ax.axhline(0.5, color="red", linestyle="--", linewidth=1, label="target: 50 % of floor")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("server logins/s ÷ floor logins/s")
    ax.set_ylim(0, max(1.0, max((r.ratio for r in rows), default=0) * 1.15))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_profile(result: Profile, name: str, out: str) -> dict[str, Any]:
    total = max(result.total, 1)
    print(f"\nprofile ({name}, 1 worker; py-spy --gil, {result.total} samples, {out})")
    print("samples by where the leaf frame's code is:")
    for where, count in result.by_place[:16]:
        print(f"  {count / total:6.1%}  {where}")
    print("top 15 leaf frames:")
    for frame, count in result.top_self[:15]:
        print(f"  {count / total:6.1%}  {short(frame)}")
    print("aws_iam_backend frames by inclusive samples (dispatch chain left out):")
    for frame, count in result.ours_inclusive[:25]:
        print(f"  {count / total:6.1%}  {short(frame)}")
    return {
        "samples": result.total,
        "by_place": [{"place": p, "share": round(c / total, 4)} for p, c in result.by_place],
        "self": [{"frame": f, "samples": c} for f, c in result.top_self[:40]],
        "inclusive": [{"frame": f, "samples": c} for f, c in result.ours_inclusive[:40]],
    }


# ----------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--logins", type=int, default=3000, help="timed logins per row")
    parser.add_argument("--clients", type=int, default=200, help="keep-alive connections")
    parser.add_argument("--sts-delay", type=float, default=0.05, help="stub STS latency, s")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every configuration")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="deadline of a load run")
    parser.add_argument(
        "--configs",
        default=",".join(s.name for s in SETUPS),
        help="comma-separated subset of: " + ", ".join(s.name for s in SETUPS),
    )
    parser.add_argument("--workers", default="1,2", help="worker counts to run (1,2)")
    parser.add_argument("--no-pin", action="store_true", help="no CPU affinity")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument("--profile-config", default=PROFILED)
    parser.add_argument("--profile-out", default="/tmp/scale-out-profile.txt")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", default=DEFAULT_PLOT, help="figure path ('' for none)")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"default {REDIS_URL}")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help=f"default {PG_ADMIN_URL}")
    args = parser.parse_args()
    by_name = {setup.name: setup for setup in SETUPS}
    chosen = [by_name[name] for name in args.configs.split(",") if name]
    worker_counts = [int(w) for w in args.workers.split(",") if w]
    profiled = None if args.no_profile else by_name[args.profile_config]
    every = [*chosen, *([profiled] if profiled else [])]
    need_pg = any(s.storage == "pg" for s in every)
    need_redis = any(s.redis for s in every)
    pinned = not args.no_pin and can_pin()
    if pinned:
        pin(0, {CLIENT_CORE})  # the load generator, and the stub STS it starts
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="scale-out-")
    stub_port = free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server_throughput", "--stub", str(stub_port),
         "--sts-delay", str(args.sts_delay)]
    )  # fmt: skip
    pg: Postgres | None = None
    redis: Redis | None = None
    rows: list[Row] = []
    result: dict[str, Any] = {"settings": vars(args) | {"pinned": pinned}}
    try:
        pg = Postgres(args.pg_admin_url) if need_pg else None
        redis = Redis(args.redis_url) if need_redis else None
        seal_file = os.path.join(tmp, "seal.key")
        key = subprocess.run([sys.executable, "-m", "aws_iam_backend", "seal", "generate"],
                             check=True, capture_output=True).stdout  # fmt: skip
        root_file = os.path.join(tmp, "root-token")
        for path, content in ((seal_file, key), (root_file, ROOT_TOKEN.encode())):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        sts = f"http://127.0.0.1:{stub_port}"
        env = Env(tmp, seal_file, root_file, sts, pg, redis, args.redis_url, pinned)
        time.sleep(0.5)  # the stub is listening
        drive(stub_port, requests_for(300, distinct=False), min(args.clients, 50))  # warm-up
        for round_ in range(1, args.rounds + 1):
            for setup in chosen:
                for workers in worker_counts:
                    if workers > setup.max_workers:
                        continue
                    floor = measure_floor(stub_port, args)
                    try:
                        row = measure(env, setup, workers, args, floor, round_)
                    except RuntimeError as exc:  # a server that did not start: once more
                        print(f"  round {round_} {setup.name} x{workers}: {exc}; retrying",
                              file=sys.stderr, flush=True)  # fmt: skip
                        result.setdefault("retried", []).append(f"{setup.name} x{workers}: {exc}")
                        row = measure(env, setup, workers, args, floor, round_)
                    rows.append(row)
                    print(f"  round {round_} {setup.name} x{workers}: floor {floor:.0f}/s, "
                          f"{row.load.throughput:.0f} logins/s ({row.ratio:.2f}), "
                          f"{row.cpu_us:.0f} us/login, {dict(row.load.statuses)}",
                          file=sys.stderr, flush=True)  # fmt: skip
        placement = "unpinned"
        if pinned:
            placement = (f"server core {SERVER_CORE} (1 worker) / cores 0-1 (2 workers), "
                         f"load generator + stub core {CLIENT_CORE}")  # fmt: skip
        print(f"\n{args.logins} logins/row, {args.clients} clients, STS delay "
              f"{args.sts_delay * 1000:.0f} ms, {os.cpu_count()} cores, {placement}; "
              f"CLI STS pool {CLI_STS_POOL}/worker caps a worker at "
              f"{CLI_STS_POOL / args.sts_delay:.0f} logins/s\n")  # fmt: skip
        print(table(rows), end="\n\n")
        print(summary(rows))
        for row in rows:
            if row.load.errors:
                print(f"\n{row.setup} x{row.workers} r{row.round} errors: {row.load.errors[:3]}")
            if row.log_tail:
                print(f"{row.setup} x{row.workers} r{row.round} server log: {row.log_tail}")
        result["rows"] = [r.as_dict() for r in rows]
        if args.plot and rows:
            title = (f"{args.clients} clients, STS {args.sts_delay * 1000:.0f} ms, "
                     f"{args.rounds} rounds; {placement}")  # fmt: skip
            plot(rows, args.plot, title)
            print(f"\nplot: {args.plot}")
        if profiled is not None:
            found = profile(env, profiled, args, args.profile_out)
            result["profile"] = print_profile(found, profiled.name, args.profile_out)
    finally:
        stub.terminate()
        stub.wait(10)
        if redis is not None:
            print(f"\nredis: deleted {redis.cleanup()} keys under {redis.prefix!r} (this run's)")
        if pg is not None:
            pg.drop()
            print(f"postgresql: dropped database {pg.name}")
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
