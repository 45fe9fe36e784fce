"""Fault tolerance (issue item 5): storage failures, STS failures, a hanging STS.

(a) Storage faults: a failing ``commit`` or ``read`` (or SQLite reporting
``database is locked``/``database or disk is full`` inside a commit's transaction, or a
real ``SQLITE_FULL``) makes the operation raise :class:`InternalError` and leaves storage
exactly as it was: no token that was not durably stored is handed out, no partial role
or config. Conflicting commits are retried, and a store that keeps conflicting gives a
clean 500, never a lost write.

(b) STS faults through the real :class:`BotocoreTransport` against loopback servers:
resets, 5xx, garbage, silence give clean upstream errors and issue no token.

(c) A login stuck on a hanging STS does not block another login.
"""

from __future__ import annotations

import builtins
import socket
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from aws_iam_backend import BackendSettings
from aws_iam_backend.errors import (
    BackendError,
    ConflictError,
    InternalError,
    StorageUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from aws_iam_backend.io.protocols import Document, Operation, Put, Storage
from aws_iam_backend.io.storage import MemoryStorage, SQLiteStorage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage._sync.prefixed import PrefixedStorage
from aws_iam_backend.io.transport import BotocoreTransport
from tests.support.drivers import Backend, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, gci_body, ok_response
from tests.test_backend_attacks import USER_ARN, USER_ID, FixedClock, valid
from tests.test_transport import Behaviour, LoopbackServer, reply

# ----------------------------------------------------------------- fault-injecting storage


class FaultyStorage:
    """Wraps a :class:`Storage`; fails chosen calls with ``error``, before they reach it.

    ``op`` is a method (``read``, ``commit``, ``list``, ``expired``) or a kind of
    operation inside a commit (``put``, ``delete``: counted one per document, all checked
    before the commit, so failing one fails the whole commit). ``arm("commit", nth=2)``
    makes the 2nd commit from now on fail (and only it); ``arm("put", nth=2, times=0)``
    makes the 2nd and every later ``Put`` fail. ``key_prefix`` restricts counting to
    keys starting with it (a commit counts if any of its keys does).
    """

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self._rules: list[dict[str, Any]] = []
        self.failures: list[tuple[str, str]] = []
        self.before_commit: Callable[[], object] | None = None  # run once, then cleared

    def arm(
        self,
        op: str,
        *,
        nth: int = 1,
        times: int = 1,
        key_prefix: str = "",
        error: Callable[[], BaseException] = lambda: InternalError("storage error: injected"),
    ) -> None:
        assert op in ("read", "commit", "put", "delete", "list", "expired"), op
        self._rules.append(
            {"op": op, "nth": nth, "times": times, "prefix": key_prefix, "seen": 0,
             "error": error}
        )  # fmt: skip

    def disarm(self) -> None:
        self._rules.clear()

    def _check(self, op: str, *keys: str) -> None:
        for rule in self._rules:
            if rule["op"] != op or not any(key.startswith(rule["prefix"]) for key in keys):
                continue
            rule["seen"] += 1
            past = rule["seen"] - rule["nth"]
            if past >= 0 and (rule["times"] == 0 or past < rule["times"]):
                self.failures.append((op, keys[0]))
                raise rule["error"]()

    def read(self, key: str) -> Document | None:
        self._check("read", key)
        return self.inner.read(key)

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        if self.before_commit is not None:
            hook, self.before_commit = self.before_commit, None
            hook()
        self._check("commit", *(op.key for op in operations))
        for op in operations:
            self._check("put" if isinstance(op, Put) else "delete", op.key)
        return self.inner.commit(operations)

    def list(self, prefix: str) -> list[str]:
        self._check("list", prefix)
        return self.inner.list(prefix)

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        self._check("expired", prefix)
        return self.inner.expired(prefix, before, limit)


def snapshot(storage: Storage) -> dict[str, Document | None]:
    """Every document with its version: a rewrite of the same value is a change too."""
    return {key: storage.read(key) for key in storage.list("")}


def token_keys(storage: Storage) -> list[str]:
    return storage.list("token/")


@pytest.fixture(params=["memory", "sqlite"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    storage = SQLiteStorage(str(tmp_path / "faults.db"))
    yield storage
    storage.close()


def make_backend(storage: Storage, **settings: Any) -> Any:
    backend = Backend(
        storage=storage,
        transport=RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID)),
        iam=FakeIam(unique_ids={USER_ARN: USER_ID}),
        clock=FixedClock(),
        settings=BackendSettings(**settings),
    )
    backend.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
    return backend


@pytest.fixture
def faulty(inner: Storage) -> tuple[FaultyStorage, Backend]:
    storage = FaultyStorage(inner)
    backend = make_backend(storage)
    backend.write_client_config({"sts_region": "us-east-1"})
    backend.login(valid())  # one live token, so "nothing else changed" means something
    return storage, backend


# ------------------------------------------------------------------------ (a) login


@pytest.mark.parametrize(
    ("op", "nth", "what"),
    [
        ("put", 1, "token record"),
        ("put", 2, "accessor index"),
        ("commit", 1, "the login's one commit"),
    ],
)
def test_login_storage_failure_issues_nothing(
    faulty: tuple[FaultyStorage, Backend], op: str, nth: int, what: str
) -> None:
    storage, backend = faulty
    before = snapshot(storage.inner)
    storage.arm(op, nth=nth)
    with pytest.raises(InternalError) as caught:
        backend.login(valid())
    assert caught.value.status == 500
    assert storage.failures, what
    storage.disarm()
    assert snapshot(storage.inner) == before
    assert backend.login(valid()).auth  # recovers once storage does


def test_login_accessor_write_failure_leaves_nothing(
    faulty: tuple[FaultyStorage, Backend],
) -> None:
    """The token record and its accessor index are one atomic write: if the index cannot
    be written, neither is stored (no compensating delete that could fail too)."""
    storage, backend = faulty
    before = snapshot(storage.inner)
    storage.arm("put", nth=1, key_prefix="accessor/")
    with pytest.raises(InternalError):
        backend.login(valid())
    storage.disarm()
    assert snapshot(storage.inner) == before


def test_login_storage_read_failure_is_internal_error(
    faulty: tuple[FaultyStorage, Backend],
) -> None:
    storage, backend = faulty
    before = snapshot(storage.inner)
    storage.arm("read", nth=1, key_prefix="role/")
    with pytest.raises(InternalError):
        backend.login(valid())
    storage.disarm()
    assert snapshot(storage.inner) == before


def test_login_on_unreachable_storage_is_503_and_issues_nothing(
    faulty: tuple[FaultyStorage, Backend],
) -> None:
    storage, backend = faulty
    before = snapshot(storage.inner)
    storage.arm("commit", error=lambda: StorageUnavailableError("storage error: unreachable"))
    with pytest.raises(StorageUnavailableError) as caught:
        backend.login(valid())
    assert caught.value.status == 503
    storage.disarm()
    assert snapshot(storage.inner) == before
    assert backend.login(valid()).auth


# ---------------------------------------------------------------- (a) config and roles

WRITES: dict[str, Callable[[Backend], object]] = {
    "role_update": lambda b: b.write_role("dev", {"token_policies": "a,b", "token_ttl": 60}),
    "role_create": lambda b: b.write_role("new", {"bound_iam_principal_arn": USER_ARN}),
    "role_delete": lambda b: b.delete_role("dev"),
    "config_client": lambda b: b.write_client_config(
        {"sts_endpoint": "https://sts.eu-west-1.amazonaws.com", "sts_region": "eu-west-1"}
    ),
    "config_client_delete": lambda b: b.delete_client_config(),
    "config_sts": lambda b: b.write_sts_config(
        "210987654321", {"sts_role": "arn:aws:iam::210987654321:role/vault"}
    ),
    "config_identity": lambda b: b.write_identity_config({"iam_alias": "full_arn"}),
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_config_write_failure_changes_nothing(
    faulty: tuple[FaultyStorage, Backend], name: str
) -> None:
    storage, backend = faulty
    before = snapshot(storage.inner)
    op = "delete" if name.endswith("delete") else "put"
    storage.arm(op, nth=1)
    with pytest.raises(InternalError):
        WRITES[name](backend)
    storage.disarm()
    assert snapshot(storage.inner) == before
    WRITES[name](backend)  # and it works once storage does
    assert snapshot(storage.inner) != before


def test_concurrent_role_write_is_not_lost(faulty: tuple[FaultyStorage, Backend]) -> None:
    """Another writer (another process, say) changes the role between this write's read
    and its commit: the commit conflicts, and the write is recomputed on the other's
    result, so both changes survive."""
    storage, backend = faulty
    other = make_backend(storage.inner)  # rewrites ``dev`` with the same binding
    storage.before_commit = lambda: other.write_role("dev", {"token_ttl": 60})
    backend.write_role("dev", {"token_policies": "a,b"})
    assert storage.before_commit is None  # the other write did land in between
    role = backend.read_role("dev")
    assert role["token_ttl"] == 60
    assert role["token_policies"] == ["a", "b"]


PUT_WRITES = sorted(name for name in WRITES if not name.endswith("delete"))


@pytest.mark.parametrize("name", PUT_WRITES)
def test_config_write_retries_a_conflicting_commit(
    faulty: tuple[FaultyStorage, Backend], name: str
) -> None:
    storage, backend = faulty
    before = snapshot(storage.inner)
    storage.arm("commit", nth=1, error=lambda: ConflictError("injected"))
    WRITES[name](backend)
    assert len(storage.failures) == 1
    assert snapshot(storage.inner) != before


@pytest.mark.parametrize("name", PUT_WRITES)
def test_config_write_gives_up_cleanly_on_endless_conflicts(
    faulty: tuple[FaultyStorage, Backend], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, backend = faulty
    monkeypatch.setattr(ops, "backoff", lambda _attempt: None)  # no sleeps between retries
    before = snapshot(storage.inner)
    storage.arm("commit", times=0, error=lambda: ConflictError("injected"))
    with pytest.raises(InternalError, match="too many concurrent updates") as caught:
        WRITES[name](backend)
    assert type(caught.value) is InternalError  # a 500, not the conflict itself
    assert len(storage.failures) == ops.DEFAULT_ATTEMPTS  # retried, then gave up
    storage.disarm()
    assert snapshot(storage.inner) == before


# ------------------------------------------------- (a) SQLite errors inside a transaction

SQLITE_FAULTS = ["database is locked", "database or disk is full"]


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[tuple[SQLiteStorage, Backend]]:
    storage = SQLiteStorage(str(tmp_path / "tx.db"))
    backend = make_backend(storage)
    backend.login(valid())
    yield storage, backend
    storage.close()


STAGES = ["write", "commit"]


def fail_after_write(
    monkeypatch: pytest.MonkeyPatch, message: str, *, nth: int = 1, stage: str = "commit"
) -> list[str]:
    """Make SQLiteStorage's ``nth`` commit fail with ``message`` inside its transaction:
    ``stage="write"`` right after its first document write ran (a half-done transaction),
    ``"commit"`` at ``COMMIT`` (every statement ran). Returns the statements seen."""
    original = SQLiteStorage._connection
    seen: list[str] = []
    commits = [0]

    def failing(sql: str) -> bool:
        seen.append(sql)
        if sql == "BEGIN IMMEDIATE":
            commits[0] += 1
        if commits[0] != nth:
            return False
        if stage == "commit":
            return sql == "COMMIT"
        return sql.startswith(("INSERT INTO kv ", "DELETE FROM kv "))

    class FailingConnection:
        """The pooled connection, as much of it as ``commit`` uses."""

        def __init__(self, conn: sqlite3.Connection) -> None:
            self._conn = conn

        @property
        def in_transaction(self) -> bool:
            return self._conn.in_transaction

        def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
            if not failing(sql):
                return self._conn.execute(sql, params)
            if stage == "write":
                self._conn.execute(sql, params)  # the write happens, then the error
            raise sqlite3.OperationalError(message)

    @contextmanager
    def connection(self: SQLiteStorage) -> Iterator[Any]:
        with original(self) as conn:
            yield FailingConnection(conn)

    monkeypatch.setattr(SQLiteStorage, "_connection", connection)
    return seen


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("message", SQLITE_FAULTS)
@pytest.mark.parametrize("nth", [1])  # a login's only commit: the token and its index
def test_sqlite_error_mid_login_rolls_back(
    sqlite_backend: tuple[SQLiteStorage, Backend],
    monkeypatch: pytest.MonkeyPatch,
    message: str,
    nth: int,
    stage: str,
) -> None:
    storage, backend = sqlite_backend
    before = snapshot(storage)
    seen = fail_after_write(monkeypatch, message, nth=nth, stage=stage)
    with pytest.raises(InternalError, match="storage error"):
        backend.login(valid())
    if stage == "commit":  # the record and its index were both written, then rolled back
        assert sum(sql.startswith("INSERT INTO kv ") for sql in seen) == 2
    monkeypatch.undo()
    assert snapshot(storage) == before
    # the pooled connection that failed mid-transaction is usable again
    assert backend.login(valid()).auth


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("message", SQLITE_FAULTS)
@pytest.mark.parametrize("name", sorted(WRITES))
def test_sqlite_error_mid_config_write_rolls_back(
    sqlite_backend: tuple[SQLiteStorage, Backend],
    monkeypatch: pytest.MonkeyPatch,
    message: str,
    name: str,
    stage: str,
) -> None:
    storage, backend = sqlite_backend
    before = snapshot(storage)
    fail_after_write(monkeypatch, message, stage=stage)
    with pytest.raises(InternalError):
        WRITES[name](backend)
    monkeypatch.undo()
    assert snapshot(storage) == before


class CappedSQLite(SQLiteStorage):
    """SQLite whose every connection may not grow the file past ``max_pages`` pages."""

    def __init__(self, path: str, *, max_pages: int) -> None:
        self.max_pages = max_pages
        super().__init__(path)

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        conn.execute(f"PRAGMA max_page_count = {int(self.max_pages)}")
        return conn


def test_sqlite_really_full(tmp_path: Path) -> None:
    """A real SQLITE_FULL (``PRAGMA max_page_count`` on every connection): logins fail with
    a clean 500 once the file cannot grow, every token handed out before still works, and
    every stored token record belongs to a login that succeeded."""
    path = str(tmp_path / "full.db")
    plain = SQLiteStorage(path)
    make_backend(plain)
    plain.close()
    with sqlite3.connect(path) as conn:
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    storage = CappedSQLite(path, max_pages=pages + 2)
    backend = make_backend(storage)
    issued: list[str] = []
    failure: InternalError | None = None
    for _ in range(500):
        try:
            auth = backend.login(valid()).auth
        except InternalError as exc:
            failure = exc
            break
        assert auth is not None
        issued.append(auth["client_token"])
    assert failure is not None, "the database never filled up"
    assert failure.message == "storage error: SQLITE_FULL"
    assert issued
    for token in issued:
        assert backend.lookup_token(token)
    assert len(token_keys(storage)) == len(issued)
    assert len(storage.list("accessor/")) == len(issued)
    assert backend.read_role("dev")  # earlier data intact
    with pytest.raises(InternalError, match="SQLITE_FULL"):
        backend.write_role(
            "bigger",
            {"bound_iam_principal_arn": USER_ARN,
             "token_policies": ",".join(f"policy-{i:03d}-{'x' * 100}" for i in range(60))},
        )  # fmt: skip
    assert "bigger" not in storage.list("role/")
    storage.close()


# ------------------------------------------------------------------ (b) STS faults


def _rst(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def reset_mid_response(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 500\r\n\r\n<Ge")
    _rst(conn)


def reset_before_response(conn: socket.socket, stop: threading.Event) -> None:
    _rst(conn)


def garbage(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"\x00\xffSSH-2.0-nope\r\n\r\n\x16\x03\x01garbage" * 8)
    conn.close()


def never_answers(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


STS_FAULTS: dict[str, tuple[Behaviour, type[BackendError], str]] = {
    "reset_mid_response": (reset_mid_response, UpstreamError, "connection closed"),
    "reset_before_response": (reset_before_response, UpstreamError, "error making request"),
    "garbage_bytes": (garbage, UpstreamError, "error making request"),
    "500": (reply(500, b"<oops/>"), UpstreamError, "received error code 500"),
    "502": (reply(502, b"bad gateway"), UpstreamError, "received error code 502"),
    "503": (reply(503, b""), UpstreamError, "received error code 503"),
    "200_garbage_xml": (reply(200, b"<<<\x00\xff"), UpstreamError, "error parsing STS"),
    "200_html": (
        reply(200, b"<html/>", (("Content-Type", "text/html"),)),
        UpstreamError,
        "body of GetCallerIdentity is invalid",
    ),
    "never_answers": (never_answers, UpstreamTimeoutError, "deadline exceeded"),
}


@pytest.fixture
def transport() -> Iterator[BotocoreTransport]:
    instance = BotocoreTransport(sleep=lambda _s: None)
    yield instance
    instance.close()


def sts_backend(transport: BotocoreTransport, port: int, storage: Storage | None = None) -> Any:
    backend = Backend(
        storage=storage or MemoryStorage(),
        transport=transport,
        iam=FakeIam(unique_ids={USER_ARN: USER_ID}),
        clock=FixedClock(),
        settings=BackendSettings(sts_timeout=1.0),
    )
    backend.write_client_config(
        {"sts_endpoint": f"http://127.0.0.1:{port}", "sts_region": "us-east-1", "max_retries": 1}
    )
    backend.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
    return backend


@pytest.mark.parametrize("name", sorted(STS_FAULTS))
def test_sts_fault_is_clean_upstream_error(name: str, transport: BotocoreTransport) -> None:
    behaviour, kind, text = STS_FAULTS[name]
    server = LoopbackServer(behaviour)
    try:
        storage = MemoryStorage()
        backend = sts_backend(transport, server.port, storage)
        before = snapshot(storage)
        with pytest.raises(BackendError) as caught:
            backend.login(valid())
        assert type(caught.value) is kind
        assert text in caught.value.message
        assert "127.0.0.1" not in caught.value.message  # no URL echoed
        assert server.requests, "STS was never called"
        assert snapshot(storage) == before
        assert token_keys(storage) == []
    finally:
        server.close()


def test_sts_loopback_success_for_reference(transport: BotocoreTransport) -> None:
    server = LoopbackServer(reply(200, gci_body(USER_ARN, USER_ID, "123456789012")))
    try:
        backend = sts_backend(transport, server.port)
        assert backend.login(valid()).auth
    finally:
        server.close()


# --------------------------------------------------------------- (c) a hanging STS


class HangFirst:
    """Answers with a valid identity, except that the first request hangs until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._first = threading.Lock()
        self.good = reply(200, gci_body(USER_ARN, USER_ID, "123456789012"))

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        if self._first.acquire(blocking=False):
            self.entered.set()
            while not (self.release.wait(0.05) or stop.is_set()):
                pass
        self.good(conn, stop)


@pytest.mark.parametrize("shared", [True, False], ids=["same_backend", "two_mounts"])
def test_hanging_sts_does_not_block_other_logins(shared: bool) -> None:
    """One login hangs on STS; another (same backend and transport, or a second mount on
    the same storage and transport) completes meanwhile. Ordering only, no timings."""
    hang = HangFirst()
    hanging = LoopbackServer(hang)
    healthy = LoopbackServer(reply(200, gci_body(USER_ARN, USER_ID, "123456789012")))
    transport = BotocoreTransport()
    try:
        storage = MemoryStorage()
        slow_backend = Backend(
            storage=storage, transport=transport, iam=FakeIam({USER_ARN: USER_ID}),
            clock=FixedClock(), settings=BackendSettings(sts_timeout=30.0),
        )  # fmt: skip
        slow_backend.write_client_config(
            {"sts_endpoint": f"http://127.0.0.1:{hanging.port}", "sts_region": "us-east-1"}
        )
        slow_backend.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
        if shared:
            fast_backend = slow_backend
        else:
            fast_backend = sts_backend(
                transport, healthy.port, PrefixedStorage(storage, "auth/second/")
            )
        done = threading.Event()
        outcome: dict[str, object] = {}

        def slow_login() -> None:
            try:
                outcome["slow"] = slow_backend.login(valid()).auth
            except BaseException as exc:  # reported below
                outcome["slow"] = exc
            finally:
                done.set()

        thread = threading.Thread(target=slow_login, daemon=True)
        thread.start()
        assert hang.entered.wait(20), "the slow login never reached STS"
        fast = fast_backend.login(valid()).auth  # must not wait for the hanging one
        assert fast is not None
        assert not done.is_set(), "the hanging login finished before the other was served"
        assert fast_backend.lookup_token(fast["client_token"])
        hang.release.set()
        thread.join(20)
        assert done.is_set()
        slow = outcome["slow"]
        assert isinstance(slow, dict), slow
        assert slow["client_token"] != fast["client_token"]
    finally:
        hang.release.set()
        transport.close()
        hanging.close()
        healthy.close()
