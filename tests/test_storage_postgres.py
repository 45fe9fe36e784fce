"""PostgresStorage against the real server: what the shared contract suite cannot see.

Schema migrations (concurrent first start, restart, a newer schema), connections killed
under the storage, an unreachable server, passwords kept out of errors, ``COLLATE "C"``
ordering, atomic multi-key conflicts and racing threads. The database comes from the
module-scoped ``postgres_url`` fixture (:mod:`tests.support.services`); tests that need
an empty schema get a namespace of their own through ``search_path``. No test asserts
anything about timing except that an unreachable server is reported within seconds.
"""

from __future__ import annotations

import secrets
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("psycopg")

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from aws_iam_backend.errors import (
    ConflictError,
    InternalError,
    StorageUnavailableError,
)
from aws_iam_backend.io.protocols import ABSENT, Delete, Document, Put
from aws_iam_backend.io.storage._sync.postgres import SCHEMA_VERSION, PostgresStorage
from tests.support.processes import run_together
from tests.support.relay import TcpRelay

PASSWORD = "s3cr3t-pw"
PROCESSES = 4
THREADS = 16
JOIN_TIMEOUT = 300.0
RECOVERY_ATTEMPTS = 50


# ------------------------------------------------------------------ helpers


def side_connection(url: str) -> Any:
    """An autocommit connection of the test's own, outside any storage."""
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@pytest.fixture
def namespace(postgres_url: str) -> str:
    """A URL whose ``search_path`` is a new, empty schema: a fresh storage per test."""
    name = f"ns_{secrets.token_hex(6)}"
    with side_connection(postgres_url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    url: str = make_conninfo(postgres_url, options=f"-c search_path={name}")
    return url


@pytest.fixture
def storage(namespace: str) -> Iterator[PostgresStorage]:
    store = PostgresStorage(namespace)
    try:
        yield store
    finally:
        store.close()


def with_password(url: str) -> str:
    """``url`` carrying :data:`PASSWORD` (trust authentication ignores it)."""
    conninfo: str = make_conninfo(url, password=PASSWORD)
    return conninfo


def schema_rows(url: str) -> list[tuple[Any, ...]]:
    with side_connection(url) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(
            "SELECT version FROM aws_iam_backend_schema ORDER BY version"
        ).fetchall()
        return rows


def error_text(exc: BaseException) -> str:
    """Everything a traceback of ``exc`` would show, causes and contexts included."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


def kill_connections(url: str, application_name: str) -> int:
    """Terminate every backend of ``application_name``; how many there were."""
    with side_connection(url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


# --------------------------------------------------------------- migrations


def _construct(url: str, barrier: Any, results: Any) -> None:
    """A spawned process: start a storage together with the others, report what it did."""
    try:
        barrier.wait(timeout=JOIN_TIMEOUT)
        store = PostgresStorage(url)
        try:
            store.commit([Put(f"proc/{id(store)}-{time.monotonic_ns()}", {"ok": True})])
            results.put(("ok", store.migrated))
        finally:
            store.close()
    except BaseException as exc:
        barrier.abort()
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def test_concurrent_first_start_migrates_once(namespace: str) -> None:
    outcomes = run_together(_construct, [(namespace,)] * PROCESSES)
    assert [status for status, _ in outcomes] == ["ok"] * PROCESSES, outcomes
    applied = sorted(migrated for _, migrated in outcomes)
    assert applied == [()] * (PROCESSES - 1) + [tuple(range(1, SCHEMA_VERSION + 1))]
    assert schema_rows(namespace) == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    with PostgresStorage(namespace) as store:
        assert len(store.list("proc/")) == PROCESSES


def test_restart_is_idempotent(namespace: str) -> None:
    with PostgresStorage(namespace) as first:
        assert first.migrated == tuple(range(1, SCHEMA_VERSION + 1))
        (version,) = first.commit([Put("k", {"v": 1}, expires_at=5.0)])
    for _ in range(2):
        with PostgresStorage(namespace) as again:
            assert again.migrated == ()
            assert again.read("k") == Document("k", {"v": 1}, version, 5.0)
            (newer,) = again.commit([Put("k", {"v": 1}, expires_at=5.0)])
            assert newer > version  # the sequence carried on: versions never repeat
            version = newer
    assert schema_rows(namespace) == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_newer_schema_is_refused(namespace: str) -> None:
    PostgresStorage(namespace).close()
    with side_connection(namespace) as conn:
        conn.execute(
            "INSERT INTO aws_iam_backend_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,)
        )
    with pytest.raises(InternalError, match="newer than this aws_iam_backend") as info:
        PostgresStorage(with_password(namespace))
    assert not isinstance(info.value, StorageUnavailableError)
    assert f"version {SCHEMA_VERSION + 1}" in info.value.message
    assert PASSWORD not in error_text(info.value)


def test_schema_objects_are_namespaced(storage: PostgresStorage, namespace: str) -> None:
    with side_connection(namespace) as conn:
        names = {
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema()"
            )
        }
        collation = conn.execute(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'aws_iam_backend_kv' "
            "AND column_name = 'key'"
        ).fetchone()
    assert names, "nothing was created"
    assert all(name.startswith("aws_iam_backend_") for name in names), names
    assert collation == ("C",)


# ------------------------------------------------------- killed connections


def _recover(call: Callable[[], Any]) -> tuple[Any, list[StorageUnavailableError]]:
    """Call until it succeeds (a bounded number of times); its result and the failures,
    each of which must be a :class:`StorageUnavailableError`."""
    failures: list[StorageUnavailableError] = []
    for _ in range(RECOVERY_ATTEMPTS):
        try:
            return call(), failures
        except StorageUnavailableError as exc:
            failures.append(exc)
    raise AssertionError(f"no recovery after {RECOVERY_ATTEMPTS} calls: {failures[-1]}")


def test_killed_connections_are_replaced(namespace: str) -> None:
    application = f"aws-iam-test-{secrets.token_hex(6)}"
    url = with_password(make_conninfo(namespace, application_name=application))
    failures: list[StorageUnavailableError] = []
    with PostgresStorage(url, min_size=2, max_size=4) as store:
        store.commit([Put("k", {"n": 0})])
        with ThreadPoolExecutor(4) as pool:  # open several connections
            list(pool.map(lambda _: store.read("k"), range(16)))
        calls: list[Callable[[], Any]] = [
            lambda: store.read("k"),
            lambda: store.commit([Put("k", {"n": 1})]),
            lambda: store.commit([Put("a", {}), Put("b", {}), Delete("c")]),
            lambda: store.list(""),
            lambda: store.expired("", 1e12, 10),
        ]
        for call in calls:
            assert kill_connections(namespace, application) >= 1
            _, failed = _recover(call)
            failures += failed
            for _ in range(3):  # and it keeps working
                call()
        # every kill at once, then a burst of threads on the recovering pool
        assert kill_connections(namespace, application) >= 1
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(lambda _: _recover(lambda: store.read("k")), range(16)))
        for document, failed in outcomes:
            assert document is not None
            assert document.value == {"n": 1}
            failures += failed
        assert store.list("") == ["a", "b", "k"]
    for failure in failures:
        assert failure.status == 503
        assert failure.message.startswith("storage error: PostgreSQL at 127.0.0.1:")
        assert "is unavailable: " in failure.message
        assert PASSWORD not in error_text(failure)


def test_server_down_then_back(namespace: str) -> None:
    params = conninfo_to_dict(namespace)
    proxy = TcpRelay((str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)))
    proxy.start()
    try:
        url = with_password(make_conninfo(namespace, host="127.0.0.1", port=str(proxy.port)))
        with PostgresStorage(url, min_size=2, max_size=4, connect_timeout=1.0) as store:
            store.commit([Put("k", {"n": 1})])
            proxy.stop()
            for call in (
                lambda: store.read("k"),
                lambda: store.commit([Put("k", {"n": 2}), Put("j", {})]),
                lambda: store.list(""),
            ):
                with pytest.raises(StorageUnavailableError) as info:
                    call()
                assert info.value.message.startswith(
                    f"storage error: PostgreSQL at 127.0.0.1:{proxy.port}/"
                )
                assert PASSWORD not in error_text(info.value)
            proxy.start()
            document, _ = _recover(lambda: store.read("k"))
            assert document is not None
            assert document.value == {"n": 1}
            store.commit([Put("k", {"n": 3})])
            assert store.list("") == ["k"]
    finally:
        proxy.stop()


# ------------------------------------------------------ unreachable, secrets


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test",
        f"host=127.0.0.1 port=1 user=postgres password={PASSWORD} dbname=test",
    ],
    ids=["uri", "keywords"],
)
def test_unreachable_server_fails_fast_without_the_password(url: str) -> None:
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as info:
        PostgresStorage(url, connect_timeout=2.0)
    assert time.monotonic() - started < 15.0
    message = info.value.message
    assert info.value.status == 503
    assert "\n" not in message
    assert message.startswith("storage error: PostgreSQL at 127.0.0.1:1/test is unavailable: ")
    assert PASSWORD not in error_text(info.value)


def test_unparsable_url_does_not_echo_it() -> None:
    with pytest.raises(ValueError, match="invalid PostgreSQL URL") as info:
        PostgresStorage(f"host=127.0.0.1 password={PASSWORD} nonsense")
    assert PASSWORD not in error_text(info.value)


def test_password_never_in_errors(namespace: str) -> None:
    url = with_password(namespace)
    errors: list[BaseException] = []
    with PostgresStorage(url, min_size=1, max_size=1, connect_timeout=1.0) as store:
        assert PASSWORD not in repr(store)
        held = store._pool.getconn()  # exhaust the pool: the next call times out
        try:
            with pytest.raises(StorageUnavailableError, match="no connection available") as info:
                store.read("k")
            errors.append(info.value)
        finally:
            store._pool.putconn(held)
        with pytest.raises(InternalError) as internal:
            store.commit([Put("nul\x00key", {})])
        errors.append(internal.value)
        with pytest.raises(InternalError) as surrogate:
            store.commit([Put("\ud800", {})])
        errors.append(surrogate.value)
    with pytest.raises(InternalError, match="closed") as closed:
        store.read("k")
    errors.append(closed.value)
    for error in errors:
        assert isinstance(error, InternalError)
        assert error.message.startswith("storage error: ")
        assert PASSWORD not in error_text(error)


def test_keys_postgresql_cannot_store(storage: PostgresStorage) -> None:
    assert storage.read("nul\x00key") is None
    assert storage.read("\udcff") is None
    assert storage.list("\x00") == []
    assert storage.expired("\ud800", 1e12, 10) == []
    with pytest.raises(InternalError, match=r"^storage error: key is not storable"):
        storage.commit([Put("ok", {}), Delete("bad\x00")])
    assert storage.read("ok") is None


# ------------------------------------------------------------------ order


def test_collate_c_orders_by_code_point(storage: PostgresStorage) -> None:
    keys = ["é", "e", "E", "z", "Z", "ß", "ss", "日本", "日", "😀", "\uffff", "a b", "a-b", "ab"]
    keys += ["Ä", "ä", "å", "ø", "o", "ﬁ", "fi", "İ", "i", "~", "_"]
    storage.commit([Put(f"n/{key}", {}) for key in keys])
    assert storage.list("n/") == sorted(keys)
    storage.commit([Put(f"t/{key}", {}, expires_at=1.0) for key in keys])
    assert [d.key for d in storage.expired("t/", 2.0, 100)] == sorted(f"t/{k}" for k in keys)


# ---------------------------------------------------------------- commits


@pytest.mark.parametrize("conflicting", ["first", "second"])
@pytest.mark.parametrize("given", ["sorted", "reversed"])
def test_two_keys_one_conflicting_leaves_both(
    storage: PostgresStorage, conflicting: str, given: str
) -> None:
    va, vb = storage.commit([Put("x/a", {"a": 1}), Put("x/b", {"b": 1}, expires_at=3.0)])
    before = {key: storage.read(key) for key in ("x/a", "x/b")}
    operations = [
        Put("x/a", {"a": 2}, expect=va + 1000 if conflicting == "first" else va),
        Put("x/b", {"b": 2}, expect=vb + 1000 if conflicting == "second" else vb),
    ]
    if given == "reversed":
        operations.reverse()
    with pytest.raises(ConflictError) as info:
        storage.commit(operations)
    assert info.value.key == ("x/a" if conflicting == "first" else "x/b")
    assert {key: storage.read(key) for key in ("x/a", "x/b")} == before
    # an absent-key condition and a delete condition fail the same way
    with pytest.raises(ConflictError):
        storage.commit([Put("x/c", {}, expect=ABSENT), Put("x/a", {"a": 3}, expect=ABSENT)])
    with pytest.raises(ConflictError):
        storage.commit([Delete("x/a", expect=va), Delete("x/b", expect=vb + 1)])
    assert {key: storage.read(key) for key in ("x/a", "x/b")} == before
    assert storage.read("x/c") is None
    # the connection is still usable after the rolled-back transaction
    assert storage.commit([Put("x/a", {"a": 4}, expect=va), Delete("x/b", expect=vb)])[1] == 0


def test_versions_come_back_in_the_order_given(storage: PostgresStorage) -> None:
    versions = storage.commit([Put("z", {}), Put("a", {}), Delete("m"), Put("k", {})])
    assert versions[2] == 0
    for key, version in zip(["z", "a", "k"], [versions[0], versions[1], versions[3]], strict=True):
        document = storage.read(key)
        assert document is not None
        assert document.version == version


def test_versions_never_repeat_across_instances(namespace: str) -> None:
    with PostgresStorage(namespace) as one, PostgresStorage(namespace) as two:
        seen: list[int] = []
        for i in range(20):
            store = one if i % 2 else two
            seen += store.commit([Put("k", {"i": i}), Put(f"other/{i}", {})])
            if i % 3 == 0:
                store.commit([Delete("k")])
        assert len(set(seen)) == len(seen)


def test_threads_conditional_increments_give_the_exact_total(storage: PostgresStorage) -> None:
    times = 20
    barrier = threading.Barrier(THREADS)

    def worker(_: int) -> int:
        barrier.wait(timeout=JOIN_TIMEOUT)
        conflicts = 0
        done = 0
        while done < times:
            document = storage.read("counter")
            count = 0 if document is None else document.value["n"]
            expect = ABSENT if document is None else document.version
            try:
                storage.commit([Put("counter", {"n": count + 1}, expect=expect)])
            except ConflictError:
                conflicts += 1
                continue
            done += 1
        return conflicts

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    document = storage.read("counter")
    assert document is not None
    assert document.value == {"n": THREADS * times}


def test_threads_moving_between_keys_in_both_orders(storage: PostgresStorage) -> None:
    storage.commit([Put("acct/a", {"n": 0}), Put("acct/b", {"n": 0})])
    rounds = 10

    def worker(i: int) -> None:
        source, target = ("acct/a", "acct/b") if i % 2 else ("acct/b", "acct/a")
        for _ in range(rounds):
            while True:
                a, b = storage.read(source), storage.read(target)
                assert a is not None
                assert b is not None
                try:
                    storage.commit(
                        [
                            Put(source, {"n": a.value["n"] - 1}, expect=a.version),
                            Put(target, {"n": b.value["n"] + 1}, expect=b.version),
                        ]
                    )
                except ConflictError:
                    continue
                break

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    a, b = storage.read("acct/a"), storage.read("acct/b")
    assert a is not None
    assert b is not None
    assert a.value["n"] + b.value["n"] == 0
    assert a.value["n"] == 0  # as many threads moved each way


def test_closed_storage_raises_internal_error(namespace: str) -> None:
    store = PostgresStorage(namespace)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(InternalError, match="closed"):
        store.commit([Put("k", {})])


def test_multi_op_commits_without_pipeline_mode(
    storage: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path for a libpq too old for pipeline mode: one statement per round trip."""
    monkeypatch.setattr(storage, "_pipeline", False)
    va, vb, zero = storage.commit([Put("p/a", {"a": 1}), Put("p/b", {}), Delete("p/c")])
    assert zero == 0
    before = {key: storage.read(key) for key in ("p/a", "p/b")}
    with pytest.raises(ConflictError) as info:
        storage.commit([Put("p/b", {"b": 2}, expect=vb), Put("p/a", {"a": 2}, expect=ABSENT)])
    assert info.value.key == "p/a"
    assert {key: storage.read(key) for key in ("p/a", "p/b")} == before
    new_a, gone = storage.commit([Put("p/a", {"a": 3}, expect=va), Delete("p/b", expect=vb)])
    assert gone == 0
    assert storage.read("p/a") == Document("p/a", {"a": 3}, new_a)
    assert storage.list("p/") == ["a"]
