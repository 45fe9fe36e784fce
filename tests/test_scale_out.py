"""Scale-out: three ``server --config`` processes on one PostgreSQL, one Redis and one seal
behave as one service.

Every member reads the same ``[storage]`` (a fresh PostgreSQL database), ``[cache]`` (the
test Redis, under a key prefix of this module's own, flushed at the start and end of the
module) and ``[seal]`` (a 0600 key file). What is asserted:

1. a mount enabled, and config/client and a role written, on A are used by logins on B, C;
2. a signed payload accepted on A with ``replay_protection`` is refused (400) on B and C;
3. a token revoked on A (revoke-self, revoke-accessor) is refused (403) on B and C at once;
4. a ``token_num_uses=1`` token spent on all three servers at once succeeds exactly once;
5. rate limits are service-wide: ``per_role_burst = 3`` admits exactly 3 logins in all;
6. SIGKILL of one member mid login storm: every token answered 200 looks up on the others;
7. no secret in clear in any PostgreSQL row or Redis key/value, nor in a sealed SQLite
   server's files (which are 0600);
8. an unreachable Redis or PostgreSQL fails the start with one line naming host:port, and
   a running server's health follows its cache (or storage) going away and coming back.

Changes to mounts, roles and config reach the other processes through a change counter
checked at most every 250 ms; such waits are bounded polls (never timing assertions) and
print the delay seen. Services missing: the fixtures skip (fail under ``CI=true``).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import pytest
import requests

from aws_iam_backend.io.seal import is_sealed
from tests.support.cluster import (
    ClusterConfig,
    ConfigServer,
    flush_prefix,
    run_once,
    start_fleet,
    start_servers,
    write_private,
    write_seal_key,
)
from tests.support.moto_server import Keys, MotoServer, free_port
from tests.support.payloads import botocore_payload
from tests.support.relay import TcpRelay

pytestmark = pytest.mark.moto

PROPAGATION_BOUND = 10.0  # seconds a bounded poll waits for a change to arrive
TIMEOUT = 15  # seconds for one HTTP request


# ----------------------------------------------------------------------------- helpers


class Signer:
    """Freshly signed login payloads, never two with the same signature.

    SigV4 signs the time to the second, so two payloads signed in one second are the same
    bytes; each payload here is signed at its own second (the newest unused one, never in
    the future), well inside the server's 15 minute window.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[int] = set()

    def payload(self, keys: Keys, role: str) -> dict[str, Any]:
        with self._lock:
            second = int(time.time())
            while second in self._used:
                second -= 1
            self._used.add(second)
        return botocore_payload(keys, role=role, when=datetime.fromtimestamp(second, UTC))


SIGNER = Signer()  # one for the module: replay claims are service-wide, across mounts


class Service:
    """The running members plus what the tests issue (every token, for the secret scan)."""

    def __init__(self, config: ClusterConfig, root_token: str, servers: list[ConfigServer]):
        self.config = config
        self.root_token = root_token
        self.servers = servers
        self.signer = SIGNER
        self.tokens: list[str] = []
        self._lock = threading.Lock()

    @property
    def root(self) -> dict[str, str]:
        return {"X-Vault-Token": self.root_token}

    def record(self, response: requests.Response) -> None:
        if response.status_code == 200:
            token = response.json()["auth"]["client_token"]
            with self._lock:
                self.tokens.append(token)

    def login(
        self,
        server: ConfigServer,
        mount: str,
        role: str,
        keys: Keys,
        *,
        payload: dict[str, Any] | None = None,
        session: requests.Session | None = None,
    ) -> requests.Response:
        body = json.dumps(payload if payload is not None else self.signer.payload(keys, role))
        post = (session or requests).post
        response = post(f"{server.address}/v1/auth/{mount}/login", data=body, timeout=TIMEOUT)
        self.record(response)
        return response

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def new_mount(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def post(
    server: ConfigServer, path: str, body: dict[str, Any], headers: dict[str, str]
) -> requests.Response:
    return requests.post(
        f"{server.address}/v1/{path}", data=json.dumps(body), headers=headers, timeout=TIMEOUT
    )


def get(server: ConfigServer, path: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{server.address}/v1/{path}", headers=headers, timeout=TIMEOUT)


def lookup_self(server: ConfigServer, token: str) -> int:
    return get(server, "auth/token/lookup-self", {"X-Vault-Token": token}).status_code


def poll(what: str, check: Callable[[], bool], bound: float = PROPAGATION_BOUND) -> float:
    """Seconds until ``check()`` held (polled every 20 ms); fails after ``bound`` seconds."""
    started = time.monotonic()
    while True:
        if check():
            delay = time.monotonic() - started
            print(f"[scale-out] {what}: {delay * 1000:.0f} ms")
            return delay
        if time.monotonic() - started > bound:
            pytest.fail(f"{what}: not seen within {bound:.0f} s")
        time.sleep(0.02)


def answers(server: ConfigServer, path: str, headers: dict[str, str]) -> Callable[[], bool]:
    """A check for :func:`poll`: ``GET path`` on ``server`` answers 200."""
    return lambda: get(server, path, headers).status_code == 200


def shows(
    server: ConfigServer,
    path: str,
    headers: dict[str, str],
    predicate: Callable[[dict[str, Any]], bool],
) -> Callable[[], bool]:
    """A check for :func:`poll`: ``GET path`` answers 200 and ``predicate(data)`` holds."""

    def check() -> bool:
        response = get(server, path, headers)
        return response.status_code == 200 and predicate(response.json()["data"])

    return check


def recorded(
    probe: Callable[[], int], seen: list[int], predicate: Callable[[int], bool]
) -> Callable[[], bool]:
    """A check for :func:`poll`: ``predicate(probe())``, each result appended to ``seen``."""

    def check() -> bool:
        seen.append(probe())
        return predicate(seen[-1])

    return check


def setup_mount(
    service: Service,
    aws: MotoServer,
    arn: str,
    *,
    label: str,
    role: str = "app",
    client: dict[str, Any] | None = None,
    role_fields: dict[str, Any] | None = None,
    admin: ConfigServer | None = None,
    members: list[ConfigServer] | None = None,
) -> str:
    """Enable a fresh mount on ``admin`` (A), point it at moto, write ``role``, and wait
    until every member serves the role. Returns the mount path."""
    admin = admin or service.servers[0]
    mount = new_mount(label)
    root = service.root
    assert post(admin, f"sys/auth/{mount}", {"type": "aws"}, root).status_code == 204
    client_config = {
        "access_key": aws.admin.access_key,
        "secret_key": aws.admin.secret_key,
        "sts_endpoint": aws.endpoint,
        "iam_endpoint": aws.endpoint,
        **(client or {}),
    }
    written = post(admin, f"auth/{mount}/config/client", client_config, root)
    assert written.status_code == 204, written.text
    fields = {
        "auth_type": "iam",
        "bound_iam_principal_arn": [arn],
        "resolve_aws_unique_ids": False,
        "policies": ["scale"],
        **(role_fields or {}),
    }
    written = post(admin, f"auth/{mount}/role/{role}", fields, root)
    assert written.status_code == 204, written.text
    for member in members or service.servers:
        poll(
            f"role of {mount} on :{member.port}",
            answers(member, f"auth/{mount}/role/{role}", root),
        )
    return mount


# ---------------------------------------------------------------------------- fixtures

PREFIX = f"aws-iam-backend-test-{secrets.token_hex(4)}:"  # this module's Redis keys


@pytest.fixture(scope="module")
def services(postgres_url: str, redis_url: str) -> Iterator[tuple[str, str]]:
    """Both services, reachable (else skip before anything is started); the module's
    Redis prefix flushed before and after the module."""
    flush_prefix(redis_url, PREFIX)
    yield postgres_url, redis_url
    flush_prefix(redis_url, PREFIX)


@pytest.fixture(scope="module")
def aws(services: tuple[str, str], request: pytest.FixtureRequest) -> MotoServer:
    """The session's moto server, started only once both services answered (so a missing
    service skips the module before anything is started)."""
    moto: MotoServer = request.getfixturevalue("moto")
    return moto


@pytest.fixture(scope="module")
def service_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scale-out")


@pytest.fixture(scope="module")
def root_token() -> str:
    return "hvs." + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def base_config(services: tuple[str, str], service_dir: Path, root_token: str) -> ClusterConfig:
    postgres_url, redis_url = services
    return ClusterConfig(
        directory=service_dir,
        storage_url=postgres_url,
        cache_url=redis_url,
        cache_prefix=PREFIX,
        seal_key_file=write_seal_key(service_dir / "seal.key"),
        root_token_file=write_private(service_dir / "root-token", root_token + "\n"),
    )


# The members of test 5 share everything but [limits]: a role may log in 3 times, ever.
ROLE_LIMITS = {"per_role_rate": 0.001, "per_role_burst": 3, "per_source_rate": 0}


@pytest.fixture(scope="module")
def fleet(base_config: ClusterConfig, root_token: str) -> Iterator[tuple[Service, Service]]:
    """Three members of one service, and three more of the same service with tight role
    limits (for test 5), all started at once (their startups overlap), each healthy."""
    limited_config = attrs.evolve(base_config, limits=ROLE_LIMITS)
    started = time.monotonic()
    main, limited = start_fleet([(base_config, 3), (limited_config, 3)])
    print(f"[scale-out] 6 servers healthy in {time.monotonic() - started:.1f} s")
    services = Service(base_config, root_token, main), Service(limited_config, root_token, limited)
    try:
        yield services
    finally:
        for running in services:
            running.stop()


@pytest.fixture(scope="module")
def service(fleet: tuple[Service, Service]) -> Service:
    """Three members of one service (default limits)."""
    return fleet[0]


@pytest.fixture(scope="module")
def limited(fleet: tuple[Service, Service]) -> Service:
    """Three members of the same service with ``ROLE_LIMITS``."""
    return fleet[1]


@pytest.fixture(scope="module")
def principal(aws: MotoServer) -> tuple[str, Keys]:
    """An IAM user in moto (ARN, keys) that every role of the module binds."""
    user, keys = aws.create_user(f"scale-{uuid.uuid4().hex[:8]}")
    return str(user["Arn"]), keys


# ------------------------------------------------------------------------------- tests


def test_mount_config_and_role_written_on_a_serve_logins_on_b_and_c(
    service: Service, aws: MotoServer, principal: tuple[str, Keys]
) -> None:
    arn, keys = principal
    a, b, c = service.servers
    root = service.root
    mount = new_mount("shared")
    assert post(a, f"sys/auth/{mount}", {"type": "aws"}, root).status_code == 204
    for member in (b, c):
        poll(
            f"sys/auth enable on A seen by :{member.port}",
            shows(member, "sys/auth", root, lambda data: f"{mount}/" in data),
        )

    client_config = {
        "access_key": aws.admin.access_key,
        "secret_key": aws.admin.secret_key,
        "sts_endpoint": aws.endpoint,
        "iam_endpoint": aws.endpoint,
    }
    assert post(a, f"auth/{mount}/config/client", client_config, root).status_code == 204
    role = {"bound_iam_principal_arn": [arn], "resolve_aws_unique_ids": False,
            "policies": ["scale-one"], "token_ttl": "1h"}  # fmt: skip
    assert post(a, f"auth/{mount}/role/web", role, root).status_code == 204

    for member in (b, c):
        replies: list[requests.Response] = []

        def logged_in(m: ConfigServer = member, out: list[requests.Response] = replies) -> bool:
            out.append(service.login(m, mount, "web", keys))
            return out[-1].status_code == 200

        poll(f"config/client + role from A used by a login on :{member.port}", logged_in)
        auth = replies[-1].json()["auth"]
        assert auth["policies"] == ["default", "scale-one"]
        assert auth["lease_duration"] == 3600  # the role's token_ttl, as written on A
        assert auth["metadata"]["auth_type"] == "iam"
        shown = get(member, f"auth/{mount}/config/client", root).json()["data"]
        assert shown["sts_endpoint"] == aws.endpoint
        assert not shown.get("secret_key")  # never read back
        for other in service.servers:  # the token is the service's, not the member's
            assert lookup_self(other, auth["client_token"]) == 200


def test_replayed_payload_accepted_on_a_is_refused_on_b_and_c(
    service: Service, aws: MotoServer, principal: tuple[str, Keys]
) -> None:
    arn, keys = principal
    a, b, c = service.servers
    mount = setup_mount(service, aws, arn, label="replay", client={"replay_protection": True})
    for member in service.servers:
        poll(
            f"replay_protection=true seen by :{member.port}",
            shows(
                member,
                f"auth/{mount}/config/client",
                service.root,
                lambda data: data["replay_protection"] is True,
            ),
        )
    payload = service.signer.payload(keys, "app")
    accepted = service.login(a, mount, "app", keys, payload=payload)
    assert accepted.status_code == 200, accepted.text
    for member in (b, c, a):
        replayed = service.login(member, mount, "app", keys, payload=payload)
        assert replayed.status_code == 400, replayed.text
        assert "replay" in " ".join(replayed.json()["errors"])
    for member in (b, c):  # a fresh signature still logs in there
        fresh = service.login(member, mount, "app", keys)
        assert fresh.status_code == 200, fresh.text


def test_token_revoked_on_a_is_refused_on_b_and_c(
    service: Service, aws: MotoServer, principal: tuple[str, Keys]
) -> None:
    arn, keys = principal
    a, b, c = service.servers
    mount = setup_mount(service, aws, arn, label="revoke")

    first = service.login(b, mount, "app", keys)
    assert first.status_code == 200, first.text
    token = first.json()["auth"]["client_token"]
    assert [lookup_self(m, token) for m in (a, b, c)] == [200, 200, 200]
    revoked = post(a, "auth/token/revoke-self", {}, {"X-Vault-Token": token})
    assert revoked.status_code == 204, revoked.text
    # Tokens are never cached per process: refused everywhere as soon as A answered.
    assert [lookup_self(m, token) for m in (b, c)] == [403, 403]

    second = service.login(c, mount, "app", keys)
    assert second.status_code == 200, second.text
    token, accessor = second.json()["auth"]["client_token"], second.json()["auth"]["accessor"]
    assert [lookup_self(m, token) for m in (a, b, c)] == [200, 200, 200]
    revoked = post(a, "auth/token/revoke-accessor", {"accessor": accessor}, service.root)
    assert revoked.status_code == 204, revoked.text
    assert [lookup_self(m, token) for m in (b, c)] == [403, 403]
    assert lookup_self(a, token) == 403


def lookup_at_once(targets: list[ConfigServer], token: str) -> list[int]:
    """``lookup-self`` of ``token`` posted to every target at once (one thread each, each
    connected beforehand, released by one barrier); the statuses."""
    barrier = threading.Barrier(len(targets))
    statuses: list[int] = []
    lock = threading.Lock()

    def spend(member: ConfigServer) -> None:
        with requests.Session() as session:
            session.get(f"{member.address}/v1/sys/health", timeout=TIMEOUT)  # connect first
            barrier.wait(10)
            answer = session.get(
                f"{member.address}/v1/auth/token/lookup-self",
                headers={"X-Vault-Token": token},
                timeout=TIMEOUT,
            )
        with lock:
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=spend, args=(m,)) for m in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


def test_single_use_token_spent_on_three_servers_at_once_succeeds_once(
    service: Service, aws: MotoServer, principal: tuple[str, Keys]
) -> None:
    arn, keys = principal
    mount = setup_mount(service, aws, arn, label="uses", role_fields={"token_num_uses": 1})
    per_server = 3
    for round_number in range(4):
        response = service.login(service.servers[0], mount, "app", keys)
        assert response.status_code == 200, response.text
        token = response.json()["auth"]["client_token"]
        targets = [m for m in service.servers for _ in range(per_server)]
        statuses = lookup_at_once(targets, token)
        assert len(statuses) == len(targets), f"round {round_number}: a thread did not finish"
        assert sorted(statuses) == [200] + [403] * (len(targets) - 1), statuses
        assert [lookup_self(m, token) for m in service.servers] == [403, 403, 403]


def test_rate_limits_hold_across_instances(
    limited: Service, aws: MotoServer, principal: tuple[str, Keys]
) -> None:
    arn, keys = principal
    trio = limited
    mount = setup_mount(trio, aws, arn, label="limits", role="app")
    statuses = [trio.login(trio.servers[i % 3], mount, "app", keys).status_code for i in range(9)]
    assert statuses == [200, 200, 200] + [429] * 6, statuses

    # A second role has its own bucket: 12 logins at once over the three, 3 pass.
    written = post(
        trio.servers[0],
        f"auth/{mount}/role/burst",
        {"bound_iam_principal_arn": [arn], "resolve_aws_unique_ids": False},
        trio.root,
    )
    assert written.status_code == 204
    for member in trio.servers:
        poll(
            f"role burst on :{member.port}",
            answers(member, f"auth/{mount}/role/burst", trio.root),
        )
    payloads = [trio.signer.payload(keys, "burst") for _ in range(12)]
    barrier = threading.Barrier(len(payloads))
    results: list[int] = []
    lock = threading.Lock()

    def attempt(index: int) -> None:
        barrier.wait(10)
        member = trio.servers[index % 3]
        answer = trio.login(member, mount, "burst", keys, payload=payloads[index])
        with lock:
            results.append(answer.status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [200] * 3 + [429] * 9, results


class Storm:
    """Threads logging in round-robin over every member until told to stop."""

    def __init__(
        self, service: Service, mount: str, keys: Keys, threads: int, after_kill: int
    ) -> None:
        self.service = service
        self.mount = mount
        self.keys = keys
        self.lock = threading.Lock()
        self.ok: list[tuple[int, str]] = []  # (member index, token) answered 200
        self.refused: list[tuple[int, int, str]] = []  # (member index, status, text)
        self.unreachable: list[int] = []
        self.killed = threading.Event()
        self.ok_at_kill = 0
        self.after_kill = after_kill
        self.done = threading.Event()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def _run(self, offset: int) -> None:
        members = list(self.service.servers)
        sessions = [requests.Session() for _ in members]
        try:
            turn = offset
            while not self.stop.is_set():
                index = turn % len(members)
                turn += 1
                try:
                    answer = self.service.login(
                        members[index], self.mount, "app", self.keys, session=sessions[index]
                    )
                except requests.RequestException:
                    with self.lock:
                        self.unreachable.append(index)
                    continue
                with self.lock:
                    if answer.status_code == 200:
                        self.ok.append((index, answer.json()["auth"]["client_token"]))
                        if self.killed.is_set() and len(self.ok) >= self.ok_at_kill + (
                            self.after_kill
                        ):
                            self.done.set()
                    else:
                        self.refused.append((index, answer.status_code, answer.text[:200]))
        finally:
            for session in sessions:
                session.close()

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive()


def test_sigkill_of_one_instance_during_login_storm_keeps_acknowledged_tokens(
    service: Service, aws: MotoServer, principal: tuple[str, Keys]
) -> None:
    arn, keys = principal
    mount = setup_mount(service, aws, arn, label="storm")
    victim_index = 2
    victim = service.servers[victim_index]
    storm = Storm(service, mount, keys, threads=6, after_kill=24)
    try:
        storm.start()
        poll("storm: 30 logins before the kill", lambda: len(storm.ok) >= 30, bound=60)
        with storm.lock:
            storm.ok_at_kill = len(storm.ok)
            from_victim = sum(1 for index, _ in storm.ok if index == victim_index)
        victim.kill()  # SIGKILL while threads are sending to it
        storm.killed.set()
        assert storm.done.wait(60), f"storm too slow after the kill: {storm.refused[:3]}"
        storm.join()
    finally:
        storm.stop.set()
        victim.kill()
    assert from_victim > 0, "the victim acknowledged nothing before the kill"
    assert storm.refused == [], storm.refused[:5]  # survivors (and the victim) never refused
    assert set(storm.unreachable) <= {victim_index}
    survivors = [m for i, m in enumerate(service.servers) if i != victim_index]
    print(
        f"[scale-out] storm: {len(storm.ok)} logins acknowledged ({from_victim} by the victim "
        f"before the kill), {len(storm.unreachable)} attempts found the victim gone"
    )
    try:
        with requests.Session() as session:
            for index, token in storm.ok:
                for member in survivors:
                    answer = session.get(
                        f"{member.address}/v1/auth/token/lookup-self",
                        headers={"X-Vault-Token": token},
                        timeout=TIMEOUT,
                    )
                    assert answer.status_code == 200, (index, member.port, answer.text)
                    assert answer.json()["data"]["path"] == f"auth/{mount}/login"
    finally:
        replacement = ConfigServer(service.config)  # later tests see three members again
        replacement.wait()
        service.servers[victim_index] = replacement


def _secrets(service: Service, aws: MotoServer, seal_key: Path) -> dict[str, str]:
    found = {
        "config/client secret_key": aws.admin.secret_key,
        "root token": service.root_token,
        "seal key": seal_key.read_text().strip(),
    }
    for number, token in enumerate(service.tokens):
        found[f"issued token {number}"] = token
    return found


def _redis_dump(redis_url: str) -> list[tuple[bytes, bytes]]:
    """Every key under the server's prefix with its value (whatever its type)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    rows: list[tuple[bytes, bytes]] = []
    try:
        for key in client.scan_iter(match=f"{PREFIX}*", count=500):
            kind = client.type(key)
            value: Any
            if kind == b"string":
                value = client.get(key)
            elif kind == b"hash":
                value = client.hgetall(key)
            elif kind == b"list":
                value = client.lrange(key, 0, -1)
            elif kind == b"set":
                value = client.smembers(key)
            elif kind == b"zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                value = client.dump(key)
            rows.append((key, repr(value).encode()))
    finally:
        client.close()
    return rows


def test_no_secret_in_clear_in_postgres_or_redis(
    service: Service,
    aws: MotoServer,
    principal: tuple[str, Keys],
    services: tuple[str, str],
    base_config: ClusterConfig,
) -> None:
    import psycopg
    from psycopg import sql

    postgres_url, redis_url = services
    arn, keys = principal
    mount = setup_mount(service, aws, arn, label="secrets", client={"replay_protection": True})
    for member in service.servers:
        answer = service.login(member, mount, "app", keys)
        assert answer.status_code == 200, answer.text
        assert lookup_self(member, answer.json()["auth"]["client_token"]) == 200
    assert base_config.seal_key_file is not None
    hidden = _secrets(service, aws, base_config.seal_key_file)
    assert len(service.tokens) >= 3

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        assert "aws_iam_backend_kv" in tables
        rows: list[tuple[str, str]] = []
        for table in tables:
            query = sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))
            rows += [(table, str(row[0])) for row in conn.execute(query).fetchall()]
        documents = conn.execute("SELECT key, value FROM aws_iam_backend_kv").fetchall()
    unsealed = [key for key, value in documents if not is_sealed(json.loads(value))]
    assert unsealed == [], f"documents stored unsealed: {unsealed[:5]}"
    client_rows = [text for table, text in rows if "/config/client," in text]
    assert client_rows, "no config/client row found"
    assert all('"sealed"' in text for text in client_rows)  # stored, sealed
    for table, text in rows:
        for name, value in hidden.items():
            assert value not in text, f"{name} in clear in PostgreSQL table {table}"

    redis_rows = _redis_dump(redis_url)
    assert redis_rows, "nothing under the server's Redis prefix (replay claims expected)"
    for redis_key, redis_value in redis_rows:
        for name, secret in hidden.items():
            assert secret.encode() not in redis_key, f"{name} in a Redis key"
            assert secret.encode() not in redis_value, f"{name} in the value of {redis_key!r}"
    print(
        f"[scale-out] scanned {len(rows)} PostgreSQL rows in {len(tables)} tables and "
        f"{len(redis_rows)} Redis keys for {len(hidden)} secrets"
    )


def test_sealed_sqlite_server_keeps_no_secret_in_clear(
    tmp_path: Path, aws: MotoServer, principal: tuple[str, Keys], root_token: str
) -> None:
    arn, keys = principal
    db = tmp_path / "sealed.db"
    config = ClusterConfig(
        directory=tmp_path,
        storage_url=f"sqlite:///{db}",
        seal_key_file=write_seal_key(tmp_path / "seal.key"),
        root_token_file=write_private(tmp_path / "root-token", root_token + "\n"),
    )
    single = Service(config, root_token, start_servers(config, 1))
    try:
        server = single.servers[0]
        mount = setup_mount(single, aws, arn, label="sqlite", client={"replay_protection": True})
        for _ in range(3):
            answer = single.login(server, mount, "app", keys)
            assert answer.status_code == 200, answer.text
            assert lookup_self(server, answer.json()["auth"]["client_token"]) == 200
        assert config.seal_key_file is not None
        hidden = _secrets(single, aws, config.seal_key_file)
        files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
        assert db in files
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            documents = conn.execute("SELECT key, value FROM kv").fetchall()
        assert documents
        unsealed = [key for key, value in documents if not is_sealed(json.loads(value))]
        assert unsealed == [], f"documents stored unsealed: {unsealed[:5]}"
        _check_files(files, hidden, "running")
    finally:
        single.stop()
    _check_files([p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()],
                 hidden, "stopped")  # fmt: skip


def _check_files(files: list[Path], hidden: dict[str, str], when: str) -> None:
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"{path.name} has mode {mode:o} ({when})"
        raw = path.read_bytes()
        for name, value in hidden.items():
            assert value.encode() not in raw, f"{name} in clear in {path.name} ({when})"
    print(f"[scale-out] sqlite ({when}): {[p.name for p in files]} all 0600, no secret")


def _replace_netloc(url: str, netloc: str) -> str:
    return urlunsplit(urlsplit(url)._replace(netloc=netloc))


@pytest.mark.parametrize("broken", ["cache", "storage"])
def test_unreachable_store_fails_start_with_one_line(
    base_config: ClusterConfig, broken: str
) -> None:
    closed = free_port()  # nothing listens there
    password = "hunter2-" + secrets.token_hex(4)
    if broken == "cache":
        config = attrs.evolve(base_config, cache_url=f"redis://:{password}@127.0.0.1:{closed}/0")
    else:
        config = attrs.evolve(
            base_config,
            storage_url=f"postgresql://postgres:{password}@127.0.0.1:{closed}/test",
        )
    started = time.monotonic()
    result = run_once(config.write(free_port(), name=f"broken-{broken}"))
    print(f"[scale-out] {broken} unreachable: exit {result.returncode} after "
          f"{time.monotonic() - started:.1f} s: {result.stderr.strip()}")  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert f"127.0.0.1:{closed}" in lines[0]
    assert password not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def _health(server: ConfigServer) -> int:
    try:
        return requests.get(f"{server.address}/v1/sys/health", timeout=TIMEOUT).status_code
    except requests.RequestException:
        return -1


@pytest.mark.parametrize("store", ["cache", "storage"])
def test_health_follows_the_store_going_away_and_coming_back(
    base_config: ClusterConfig,
    services: tuple[str, str],
    aws: MotoServer,
    principal: tuple[str, Keys],
    root_token: str,
    store: str,
) -> None:
    postgres_url, redis_url = services
    arn, keys = principal
    url = redis_url if store == "cache" else postgres_url
    parts = urlsplit(url)
    relay = TcpRelay((parts.hostname or "127.0.0.1", parts.port or 0))
    relay.start()
    netloc = parts.netloc.rpartition("@")
    relayed = _replace_netloc(url, f"{netloc[0]}{netloc[1]}127.0.0.1:{relay.port}")
    if store == "cache":
        config = attrs.evolve(base_config, cache_url=relayed)
    else:
        config = attrs.evolve(base_config, storage_url=relayed)
    try:
        single = Service(config, root_token, start_servers(config, 1))
        try:
            server = single.servers[0]
            mount = setup_mount(single, aws, arn, label=f"outage-{store}")
            assert single.login(server, mount, "app", keys).status_code == 200
            assert _health(server) == 200

            relay.stop()
            seen: list[int] = []
            poll(
                f"{store} gone: health non-200",
                recorded(lambda: _health(server), seen, lambda status: status != 200),
            )
            assert seen[-1] == 503, seen
            if store == "cache":  # (with storage gone a login waits out the pool's 5 s)
                refused = single.login(server, mount, "app", keys)
                assert refused.status_code == 503, refused.text  # fails closed, not open
                assert f"127.0.0.1:{relay.port}" in " ".join(refused.json()["errors"])
            assert server.alive

            relay.start()
            poll(f"{store} back: health 200", lambda: _health(server) == 200, bound=30)
            again = single.login(server, mount, "app", keys)
            assert again.status_code == 200, again.text
        finally:
            single.stop()
    finally:
        relay.stop()
