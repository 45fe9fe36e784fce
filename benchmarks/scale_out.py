"""Scale-out of the reference server: logins/s and server CPU per login, 1 and 2 workers.

Run: ``python -m benchmarks.scale_out [--logins 2000] [--clients 100] [--sts-delay 0.05]``
(``--configs`` picks configurations, ``--no-profile`` skips the py-spy run, ``--json``
also writes every number to a file).

Each configuration is the production server (``python -m aws_iam_backend server
--config FILE``, plain HTTP, ``[limits] per_source_rate = 0, per_role_rate = 0``) with
``[listener] workers = 1`` and then ``2``, on

- ``sqlite``: a SQLite file in a temporary directory, unsealed;
- ``sqlite+seal``: the same, sealed (``[seal] key_file``, from ``seal generate``);
- ``pg+seal``: a fresh PostgreSQL database made for this run (dropped after), sealed,
  no cache (replay protection off);
- ``pg+seal+redis``: the same with ``[cache]`` Redis and replay protection on: every
  login carries its own pre-signed request, and each claim is one Redis ``SET NX``;
- ``pg+seal+redis-noreplay``: the same with replay protection off (the claim's cost);
- ``memory``: memory storage, 1 worker only (a reference: no storage I/O at all).

The STS is the stub of :mod:`benchmarks.server_throughput` (answers after
``--sts-delay``); the load generator is an asyncio loop in this process, one
keep-alive connection per client, a fixed number of logins per configuration after a
warm-up. The floor is that same load generator sent straight to the stub STS, measured
at the start and at the end of the run (the mean is used): the most this machine's
client and stub can do, so ``ratio`` = server logins/s / floor logins/s.

Table columns: logins/s (200s only) and its ratio to the floor; p50/p99/max latency;
server CPU ms per login (``sys``: the kernel's share of it); CPU seconds of each server
process (for 2 workers: how evenly the shared socket spread the connections); CPU ms per
login of the PostgreSQL backends and of Redis; responses other than 200 (0: a connection
error). The 2-worker/1-worker throughput ratio of each configuration follows the table.

CPU is read from ``/proc`` for the server (every process: the parent and the pre-forked
workers), the PostgreSQL backends of the benchmark database and the Redis server (shared
with anything else using it, so an upper bound). Redis keys: the server's prefix is fixed
(``aws-iam-backend:``), so after the run exactly the replay-claim keys of the requests
this script signed are deleted; nothing else under the prefix is touched (keys that
appeared there during the run are counted and reported).

The profile: ``pg+seal+redis`` with 1 worker, run once more (not in the table) under
``py-spy record --format raw --nolineno --gil`` (samples of the thread holding the GIL:
Python's CPU, not threads waiting on I/O or locks); the top frames by self samples are
printed, and this package's frames by inclusive samples.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
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
REDIS_PREFIX = "aws-iam-backend:"  # fixed by the server (aws_iam_backend.io.cache.redis)
ROOT_TOKEN = secrets.token_urlsafe(32)  # passes the server's root-token strength check
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
    Setup("pg+seal+redis-noreplay", "pg", sealed=True, redis=True),
    Setup("memory", "memory", max_workers=1),
)
PROFILED = "pg+seal+redis"


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
    floor: float = 0.0
    server_cpu: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds
    server_system: float = 0.0  # of which in the kernel
    pg_cpu: float = 0.0
    redis_cpu: float = 0.0
    log_tail: str = ""

    def as_dict(self) -> dict[str, Any]:
        ok = max(self.load.ok, 1)
        return {
            "config": self.setup,
            "workers": self.workers,
            "logins_ok": self.load.ok,
            "statuses": dict(self.load.statuses),
            "first_errors": self.load.errors[:3],
            "elapsed_s": round(self.load.elapsed, 2),
            "logins_per_s": round(self.load.throughput, 1),
            "ratio_to_floor": round(self.load.throughput / self.floor, 3) if self.floor else None,
            "p50_ms": round(self.load.quantile_ms(50), 1),
            "p90_ms": round(self.load.quantile_ms(90), 1),
            "p99_ms": round(self.load.quantile_ms(99), 1),
            "max_ms": round(max(self.load.latencies, default=0.0) * 1000, 1),
            "server_cpu_ms_per_login": round(sum(self.server_cpu.values()) / ok * 1000, 3),
            "server_cpu_s_per_process": [round(v, 2) for v in self.server_cpu.values()],
            "server_cores_busy": round(sum(self.server_cpu.values()) / self.load.elapsed, 2),
            "server_system_share": round(
                self.server_system / max(sum(self.server_cpu.values()), 1e-9), 2
            ),
            "pg_cpu_ms_per_login": round(self.pg_cpu / ok * 1000, 3),
            "redis_cpu_ms_per_login": round(self.redis_cpu / ok * 1000, 3),
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
    """The shared Redis: the keys this run made, and the server's CPU."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.pid = int(self.client.info("server")["process_id"])
        self.before = self.prefixed_keys()
        self.ours: set[bytes] = set()

    def prefixed_keys(self) -> set[bytes]:
        return set(self.client.scan_iter(match=REDIS_PREFIX + "*", count=1000))

    def claim_key(self, signature: str) -> bytes:
        """The replay-claim key the server sets for ``signature`` (RedisReplayCache.key)."""
        digest = hashlib.sha256(f"sig:{signature}".encode()).hexdigest()
        return f"{REDIS_PREFIX}replay:{digest}".encode()

    def cleanup(self) -> tuple[int, int]:
        """Delete our claim keys; return (deleted, other keys that appeared meanwhile)."""
        deleted = 0
        ours = sorted(self.ours)
        for start in range(0, len(ours), 500):
            deleted += int(self.client.delete(*ours[start : start + 500]))
        others = self.prefixed_keys() - self.before - self.ours
        self.client.close()
        return deleted, len(others)


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


class Requests:
    """Login requests: one shared, or ``count`` distinct ones (each signed once)."""

    def __init__(self, count: int, *, distinct: bool) -> None:
        self.signatures: list[str] = []
        if not distinct:
            self.items = [http_request(login_payload())] * count
            return
        self.items = []
        for _ in range(count):
            body = login_payload(secrets.token_hex(8))
            self.signatures.append(signature_of(body))
            self.items.append(http_request(body))


async def _client(port: int, queue: Iterator[bytes], load: Load, timeout: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
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


async def _drive(port: int, requests: Sequence[bytes], clients: int, timeout: float) -> Load:
    load = Load(0.0, [], collections.Counter(), [])
    queue = iter(requests)  # shared: each client takes the next request
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, queue, load, timeout) for _ in range(clients)))
    load.elapsed = time.perf_counter() - started
    return load


def drive(port: int, requests: Sequence[bytes], clients: int, timeout: float = 30.0) -> Load:
    return asyncio.run(_drive(port, requests, min(clients, len(requests)), timeout))


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
    ]
    if setup.sealed:
        lines += ["[seal]", f'key_file = "{env.seal_file}"']
    if setup.redis:
        lines += ["[cache]", f'url = "{env.redis_url}"']
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
    raise RuntimeError(f"server did not start: {tail(log)}")


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as handle:
            return " | ".join(handle.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def running_server(env: Env, setup: Setup, workers: int) -> Iterator[tuple[int, int, str]]:
    """A configured server: yields (port, pid, log path); stopped and its data reset after."""
    run = f"{setup.name.replace('+', '_')}_{workers}_{uuid.uuid4().hex[:6]}"
    port = free_port()
    config = write_config(env, setup, workers, port, run)
    log = os.path.join(env.tmp, f"{run}.log")
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "aws_iam_backend", "server", "--config", config],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
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


def requests_for(env: Env, setup: Setup, count: int) -> list[bytes]:
    made = Requests(count, distinct=setup.replay)
    if env.redis is not None:
        env.redis.ours.update(env.redis.claim_key(s) for s in made.signatures)
    return made.items


def measure(env: Env, setup: Setup, workers: int, args: argparse.Namespace) -> Row:
    warm = requests_for(env, setup, min(200, args.logins))
    timed = requests_for(env, setup, args.logins)
    with running_server(env, setup, workers) as (port, pid, log):
        first = drive(port, warm[:1], 1)
        if first.ok != 1:
            raise RuntimeError(f"{setup.name}: first login failed: {first.errors} {tail(log)}")
        drive(port, warm[1:], args.clients)  # every pool thread started
        server0, system0 = tree_cpu(pid), tree_system(pid)
        pg0 = env.pg.backend_cpu() if env.pg and setup.storage == "pg" else {}
        redis0 = process_cpu(env.redis.pid) if env.redis else 0.0
        load = drive(port, timed, args.clients)
        server, system = delta(tree_cpu(pid), server0), tree_system(pid) - system0
        pg = sum(delta(env.pg.backend_cpu(), pg0).values()) if pg0 and env.pg else 0.0
        redis = process_cpu(env.redis.pid) - redis0 if env.redis and setup.redis else 0.0
        if workers > 1:  # the parent only forks and waits: show the workers
            server.pop(pid, None)
        return Row(setup.name, workers, load, server_cpu=server, server_system=system,
                   pg_cpu=pg, redis_cpu=redis, log_tail=tail(log))  # fmt: skip


# -------------------------------------------------------------------- profile


def profile(
    env: Env, setup: Setup, args: argparse.Namespace, out: str
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Top frames by self samples of ``setup`` (1 worker) under py-spy."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy not found: pip install py-spy")
    warm = requests_for(env, setup, min(200, args.logins))
    timed = requests_for(env, setup, args.logins)
    with running_server(env, setup, 1) as (port, pid, _log):
        drive(port, warm, args.clients)
        spy = subprocess.Popen(
            [py_spy, "record", "-o", out, "--format", "raw", "--nolineno", "--gil",
             "--rate", "200", "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(1.5)  # attached
        drive(port, timed, args.clients)
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        if not os.path.exists(out):
            raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    return self_time(out), inclusive_time(out)


def stacks(path: str) -> Iterator[tuple[list[str], int]]:
    """(frames, samples) of each line of py-spy's raw (collapsed) output, root first."""
    with open(path) as handle:
        for line in handle:
            stack, _, number = line.rstrip("\n").rpartition(" ")
            if stack and number.isdigit():
                yield stack.split(";"), int(number)


def self_time(path: str) -> list[tuple[str, int]]:
    """(leaf frame, samples), most first."""
    counts: collections.Counter[str] = collections.Counter()
    for frames, number in stacks(path):
        counts[frames[-1]] += number
    return counts.most_common()


# Frames on (nearly) every login stack: the dispatch chain, not a cost of its own.
_CHAIN = frozenset(
    {"<module>", "main", "_run_server", "serve", "make_asgi_app.<locals>.app", "VaultAPI.handle",
     "VaultAPI._serve", "VaultAPI._dispatch", "VaultAPI._auth_method", "Backend.handle_request",
     "Backend._serve", "Backend._login_request", "Backend.login", "VaultAPI._guarded"}
)  # fmt: skip


_CLOSURES = "make_asgi_app.<locals>"  # the ASGI app's request handling closures


def inclusive_time(path: str, package: str = "aws_iam_backend/") -> list[tuple[str, int]]:
    """(frame of ``package`` off the dispatch chain, samples of stacks it is on), most first."""
    counts: collections.Counter[str] = collections.Counter()
    for frames, number in stacks(path):
        for frame in set(frames):
            name = frame.partition(" (")[0]
            if package in frame and name not in _CHAIN and not name.startswith(_CLOSURES):
                counts[frame] += number
    return counts.most_common()


def short(frame: str) -> str:
    """``func (path/to/module.py)`` with the path shortened to its last two parts."""
    name, _, where = frame.partition(" (")
    parts = where.rstrip(")").split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


# ----------------------------------------------------------------------- main


def table(rows: list[Row], floor: float) -> str:
    head = ("config", "workers", "logins/s", "ratio", "p50 ms", "p99 ms", "max ms",
            "CPU ms/login", "sys", "per proc s", "pg ms", "redis ms", "non-200")  # fmt: skip
    lines = [head]
    for row in rows:
        d = row.as_dict()
        bad = sum(v for k, v in row.load.statuses.items() if k != 200)
        lines.append((
            d["config"], str(d["workers"]), f"{d['logins_per_s']:.0f}",
            f"{d['ratio_to_floor']:.3f}", f"{d['p50_ms']:.1f}", f"{d['p99_ms']:.1f}",
            f"{d['max_ms']:.0f}", f"{d['server_cpu_ms_per_login']:.2f}",
            f"{d['server_system_share']:.0%}",
            "/".join(f"{v:.1f}" for v in d["server_cpu_s_per_process"]),
            f"{d['pg_cpu_ms_per_login']:.2f}", f"{d['redis_cpu_ms_per_login']:.2f}", str(bad),
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
            for line in lines]  # fmt: skip
    text.insert(1, "  ".join("-" * w for w in widths))
    scale = []
    for row in rows:
        one = next((r for r in rows if r.setup == row.setup and r.workers == 1), None)
        if row.workers > 1 and one is not None and one.load.throughput:
            scale.append(f"{row.setup} {row.load.throughput / one.load.throughput:.2f}x")
    return (
        f"floor (load generator -> stub STS): {floor:.0f} logins/s\n"
        + "\n".join(text)
        + ("\nworkers 2 / workers 1: " + ", ".join(scale) if scale else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--logins", type=int, default=2000, help="timed logins per config")
    parser.add_argument("--clients", type=int, default=100, help="keep-alive connections")
    parser.add_argument("--sts-delay", type=float, default=0.05, help="stub STS latency, s")
    parser.add_argument(
        "--configs",
        default=",".join(s.name for s in SETUPS),
        help="comma-separated subset of: " + ", ".join(s.name for s in SETUPS),
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument("--profile-out", default="/tmp/profile.txt")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"default {REDIS_URL}")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help=f"default {PG_ADMIN_URL}")
    args = parser.parse_args()  # fmt: skip
    by_name = {setup.name: setup for setup in SETUPS}
    chosen = [by_name[name] for name in args.configs.split(",") if name]
    need_pg = any(s.storage == "pg" for s in chosen) or not args.no_profile
    need_redis = any(s.redis for s in chosen) or not args.no_profile

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
    result: dict[str, Any] = {}
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
        env = Env(tmp, seal_file, root_file, sts, pg, redis, args.redis_url)
        plain = Requests(args.logins, distinct=False).items
        time.sleep(0.5)  # the stub is listening
        drive(stub_port, plain[:200], min(args.clients, 50))  # warm-up
        floors = [drive(stub_port, plain, args.clients).throughput]
        for setup in chosen:
            for workers in range(1, setup.max_workers + 1):
                row = measure(env, setup, workers, args)
                rows.append(row)
                print(f"  {setup.name} x{workers}: {row.load.throughput:.0f} logins/s, "
                      f"{dict(row.load.statuses)}", file=sys.stderr, flush=True)  # fmt: skip
        floors.append(drive(stub_port, plain, args.clients).throughput)
        floor = statistics.fmean(floors)
        for row in rows:
            row.floor = floor
        print(f"\n{args.logins} logins/config, {args.clients} clients, "
              f"STS delay {args.sts_delay * 1000:.0f} ms, {os.cpu_count()} cores; "
              f"floor runs {' / '.join(f'{f:.0f}' for f in floors)} logins/s\n")  # fmt: skip
        print(table(rows, floor))
        for row in rows:
            if row.load.errors:
                print(f"\n{row.setup} x{row.workers} errors: {row.load.errors[:3]}")
            if row.log_tail:
                print(f"{row.setup} x{row.workers} server log: {row.log_tail}")
        result = {"floor_runs": floors, "floor": floor, "rows": [r.as_dict() for r in rows]}
        if not args.no_profile:
            top, inclusive = profile(env, by_name[PROFILED], args, args.profile_out)
            total = sum(count for _, count in top)
            print(f"\nprofile ({PROFILED}, 1 worker; py-spy --gil, {total} samples, "
                  f"{args.profile_out}): top 10 frames by self samples")  # fmt: skip
            for frame, count in top[:10]:
                print(f"  {count / total:6.1%}  {count:6d}  {short(frame)}")
            print("aws_iam_backend frames by inclusive samples (dispatch chain left out)")
            for frame, count in inclusive[:15]:
                print(f"  {count / total:6.1%}  {count:6d}  {short(frame)}")
            result["profile_self"] = [{"frame": f, "samples": c} for f, c in top[:30]]
            result["profile_inclusive"] = [{"frame": f, "samples": c} for f, c in inclusive[:30]]
    finally:
        stub.terminate()
        stub.wait(10)
        if redis is not None:
            deleted, others = redis.cleanup()
            print(f"\nredis: deleted {deleted} replay-claim keys of this run; "
                  f"{others} other new keys under {REDIS_PREFIX!r} left alone")  # fmt: skip
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
