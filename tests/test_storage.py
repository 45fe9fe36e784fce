"""SQLite storage beyond the shared contract (tests/test_storage_contract.py): the file on
disk, its schema and migrations, its modes, its errors and its connection pool; then
``open_storage``."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aws_iam_backend.errors import ConflictError, InternalError, StorageUnavailableError
from aws_iam_backend.io.protocols import ABSENT, Delete, Document, Put
from aws_iam_backend.io.storage import MemoryStorage, SQLiteStorage, open_storage
from aws_iam_backend.io.storage import sqlite as sqlite_module
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage.memory import encode_document

SECRET = "s3cr3t-Zq9-do-not-leak"

# The previous release's schema, exactly as it created it.
OLD_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "kv.db")


@pytest.fixture
def store(path: str) -> Iterator[SQLiteStorage]:
    storage = SQLiteStorage(path)
    try:
        yield storage
    finally:
        storage.close()


def raw(path: str) -> sqlite3.Connection:
    """A plain connection to the file, outside the storage."""
    return sqlite3.connect(path, isolation_level=None)


def schema(path: str) -> list[tuple[str, str, str | None]]:
    conn = raw(path)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()
    return rows


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def build_old_file(path: str, rows: dict[str, str]) -> None:
    """A file as the previous release left it: ``kv(key, value)``, ``user_version`` 0."""
    conn = raw(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(OLD_SCHEMA)
        conn.executemany("INSERT INTO kv (key, value) VALUES (?, ?)", rows.items())
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        conn.close()


# ------------------------------------------------------------ file and schema


def test_sqlite_persists_across_reopen(path: str) -> None:
    first = SQLiteStorage(path)
    version = ops.put(first, "config/client", {"a": "b"}, expires_at=7.5)
    first.close()
    second = SQLiteStorage(path)
    try:
        assert second.read("config/client") == Document("config/client", {"a": "b"}, version, 7.5)
        assert second.list("config/") == ["client"]
        ops.delete(second, "config/client")
        assert ops.put(second, "config/client", {}) > version  # the counter is in the file
    finally:
        second.close()


def test_sqlite_uses_wal_and_numbered_schema(path: str, store: SQLiteStorage) -> None:
    conn = raw(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_module.SCHEMA_VERSION
        assert sqlite_module.SCHEMA_VERSION == 1
        columns = [(r[1], r[2], r[3], r[5]) for r in conn.execute("PRAGMA table_info(kv)")]
        assert columns == [
            ("key", "TEXT", 0, 1),
            ("value", "TEXT", 1, 0),
            ("version", "INTEGER", 1, 0),
            ("expires_at", "REAL", 0, 0),
        ]
    finally:
        conn.close()
    tables = [name for kind, name, _ in schema(path) if kind == "table"]
    assert tables == ["kv", "kv_version"]
    index = {name: sql for kind, name, sql in schema(path) if kind == "index"}
    assert index["kv_expires_at"] is not None
    assert "WHERE expires_at IS NOT NULL" in index["kv_expires_at"]


def test_sqlite_connections_are_durable_and_wipe_deleted_content(store: SQLiteStorage) -> None:
    with store._connection() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000


@pytest.mark.parametrize("bounded", [True, False])
def test_sqlite_expired_walks_the_index(path: str, store: SQLiteStorage, bounded: bool) -> None:
    for i in range(50):
        ops.put(store, f"t/{i}", {}, expires_at=None if i % 2 else float(i))
    query = sqlite_module._EXPIRED_BOUNDED if bounded else sqlite_module._EXPIRED
    params = (10.0, "t/", "t0", 5) if bounded else (10.0, "", 5)
    conn = raw(path)
    try:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params))
    finally:
        conn.close()
    assert "INDEX kv_expires_at" in plan
    assert "TEMP B-TREE" not in plan  # the index gives the order too
    assert [d.key for d in store.expired("t/", 10.0, 5)] == ["t/0", "t/2", "t/4", "t/6", "t/8"]


def test_sqlite_stores_plain_json_text(path: str, store: SQLiteStorage) -> None:
    version = ops.put(store, "k", {"a": [1], "é": "😀"}, expires_at=3)
    conn = raw(path)
    try:
        rows = conn.execute("SELECT key, value, version, expires_at FROM kv").fetchall()
        assert rows == [("k", '{"a":[1],"\\u00e9":"\\ud83d\\ude00"}', version, 3.0)]
        assert conn.execute("SELECT id, last FROM kv_version").fetchall() == [(1, version)]
    finally:
        conn.close()


def _column_hits(path: str, needle: str) -> list[tuple[str, str, str]]:
    """(table, column, text) of every stored cell, in any table, containing ``needle``."""
    conn = raw(path)
    hits: list[tuple[str, str, str]] = []
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]:
                for (text,) in conn.execute(f'SELECT CAST("{column}" AS TEXT) FROM "{table}"'):
                    if text is not None and needle in text:
                        hits.append((table, column, text))
    finally:
        conn.close()
    return hits


def _file_count(path: str, needle: str) -> int:
    """Occurrences of ``needle`` in the database file, after moving the WAL into it."""
    conn = raw(path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        conn.close()
    assert os.path.getsize(path + "-wal") == 0
    return Path(path).read_bytes().count(needle.encode())


def test_secret_appears_in_the_file_only_as_written(path: str, store: SQLiteStorage) -> None:
    value = {"secret": SECRET, "n": 1}
    ops.put(store, "token/a", value, expires_at=100.0)
    ops.put(store, "token/b", {"other": "x"}, expires_at=100.0)
    assert _column_hits(path, SECRET) == [("kv", "value", encode_document(value))]
    assert _file_count(path, SECRET) == 1  # one copy: no index, log or second table holds it
    # neither a read nor an expiry scan writes anything
    store.read("token/a")
    store.expired("token/", 1000.0, 10)
    assert _file_count(path, SECRET) == 1
    # an overwrite and a delete leave no copy behind in the file's free space
    ops.put(store, "token/a", {"n": 2})
    assert _column_hits(path, SECRET) == []
    assert _file_count(path, SECRET) == 0
    ops.put(store, "token/c", {"secret": SECRET})
    store.commit([Delete("token/c")])
    assert _file_count(path, SECRET) == 0


# ----------------------------------------------------------------- file modes


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_sqlite_files_are_private(tmp_path: Path, umask: int) -> None:
    path = str(tmp_path / "kv.db")
    previous = os.umask(umask)
    try:
        store = SQLiteStorage(path)
        try:
            ops.put(store, "k", {"secret": SECRET})
            modes = {suffix: mode(path + suffix) for suffix in ("", "-wal", "-shm")}
        finally:
            store.close()
    finally:
        os.umask(previous)
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_sqlite_tightens_an_existing_readable_file(path: str) -> None:
    build_old_file(path, {"k": '{"v":1}'})
    os.chmod(path, 0o644)
    other = raw(path)  # keeps the -wal and -shm files, created 0644 like the database
    try:
        other.execute("INSERT INTO kv VALUES ('j', '{}')")
        assert mode(path + "-wal") == 0o644
        assert mode(path + "-shm") == 0o644
        store = SQLiteStorage(path)
        try:
            assert {s: mode(path + s) for s in ("", "-wal", "-shm")} == dict.fromkeys(
                ("", "-wal", "-shm"), 0o600
            )
            assert ops.get(store, "k") == {"v": 1}
        finally:
            store.close()
    finally:
        other.close()


def test_sqlite_never_loosens_a_mode(path: str) -> None:
    SQLiteStorage(path).close()
    os.chmod(path, 0o400)
    with contextlib.suppress(InternalError):  # opens as root; otherwise it cannot write
        SQLiteStorage(path).close()
    assert mode(path) == 0o400


# ------------------------------------------------------------------ migrations


def test_sqlite_migrates_the_previous_schema_in_place(tmp_path: Path, path: str) -> None:
    old = {"role/a": '{"x":1}', "config/client": '{"k":"v"}', "z": json.dumps({"secret": SECRET})}
    build_old_file(path, old)
    store = SQLiteStorage(path)
    try:
        documents = [store.read(key) for key in sorted(old)]
        assert [d.value if d else None for d in documents] == [
            {"k": "v"},
            {"x": 1},
            {"secret": SECRET},
        ]
        versions = [d.version for d in documents if d is not None]
        assert len(set(versions)) == 3
        assert min(versions) >= 1
        assert all(d is not None and d.expires_at is None for d in documents)
        assert store.list("") == sorted(old)
        # conditions work on the migrated versions, and new versions never repeat them
        (new,) = store.commit([Put("role/a", {"x": 2}, expect=versions[1])])
        assert new > max(versions)
        ops.delete(store, "z")
        assert store.commit([Put("z", {}, expect=ABSENT)])[0] > new
    finally:
        store.close()
    fresh = str(tmp_path / "fresh.db")
    SQLiteStorage(fresh).close()
    assert schema(path) == schema(fresh)  # the same schema as a file created today
    conn = raw(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        conn.close()


def test_sqlite_migration_runs_once(path: str) -> None:
    build_old_file(path, {"a": "{}"})
    first = SQLiteStorage(path)
    before = first.read("a")
    first.close()
    second = SQLiteStorage(path)
    try:
        assert second.read("a") == before
    finally:
        second.close()


def test_sqlite_failed_migration_changes_nothing(path: str) -> None:
    build_old_file(path, {"a": '{"v":1}'})
    conn = raw(path)
    conn.execute("CREATE TABLE kv_version (x)")  # migration 1 cannot create its counter
    conn.close()
    with pytest.raises(InternalError) as info:
        SQLiteStorage(path)
    assert info.value.message == f"storage error: cannot open SQLite database {path}: SQLITE_ERROR"
    conn = raw(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        assert conn.execute("SELECT * FROM kv").fetchall() == [("a", '{"v":1}')]
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert sorted(tables) == [("kv",), ("kv_version",)]
    finally:
        conn.close()


def test_sqlite_refuses_a_newer_schema(path: str) -> None:
    SQLiteStorage(path).close()
    conn = raw(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(InternalError) as info:
        SQLiteStorage(path)
    assert info.value.message == (
        f"storage error: cannot open SQLite database {path}: "
        "schema version 99 is newer than this release supports"
    )


def _open_and_read(path: str, keys: list[str]) -> list[tuple[object, int]]:
    """A spawned process: open (and maybe migrate) the file, read ``keys``."""
    store = SQLiteStorage(path)
    try:
        documents = [store.read(key) for key in keys]
    finally:
        store.close()
    return [(d.value, d.version) if d else (None, 0) for d in documents]


def test_sqlite_processes_migrating_at_once(path: str) -> None:
    old = {f"k/{i:03d}": f'{{"i":{i}}}' for i in range(100)}
    build_old_file(path, old)
    keys = sorted(old)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        seen = pool.starmap(_open_and_read, [(path, keys)] * 4)
    assert seen[0] == seen[1] == seen[2] == seen[3]
    assert [value for value, _ in seen[0]] == [{"i": i} for i in range(100)]
    assert len({version for _, version in seen[0]}) == 100


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("missing-dir", "SQLITE_CANTOPEN"),
        ("directory", "SQLITE_CANTOPEN"),
        ("garbage", "SQLITE_NOTADB"),
    ],
)
def test_sqlite_unusable_path_names_the_file_and_code(tmp_path: Path, kind: str, code: str) -> None:
    if kind == "missing-dir":
        path = tmp_path / "no" / "such" / "dir" / "kv.db"
    elif kind == "directory":
        path = tmp_path
    else:
        path = tmp_path / "garbage.db"
        path.write_bytes(f"this is not an sqlite database, {SECRET}".encode() * 100)
    with pytest.raises(InternalError) as info:
        SQLiteStorage(str(path))
    assert info.value.message == f"storage error: cannot open SQLite database {path}: {code}"
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("bad", ["", ":memory:"])
def test_sqlite_needs_a_file(bad: str) -> None:
    with pytest.raises(ValueError, match="file path"):
        SQLiteStorage(bad)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_sqlite_read_only_file_is_internal_error(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    SQLiteStorage(str(path)).close()
    for name in os.listdir(tmp_path):
        (tmp_path / name).chmod(0o400)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(InternalError, match=r"^storage error: "):  # noqa: PT012
            store = SQLiteStorage(str(path))  # opening may already fail, or the write
            ops.put(store, "k", {"v": 1})
    finally:
        tmp_path.chmod(0o755)


def test_sqlite_lock_timeout_is_a_retryable_503(path: str) -> None:
    store = SQLiteStorage(path, busy_timeout=0.05)
    blocker = raw(path)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(InternalError) as info:
            store.commit([Put(f"token/{SECRET}", {"secret": SECRET})])
        assert info.value.message == "storage error: SQLITE_BUSY (the database stayed locked)"
        assert isinstance(info.value, StorageUnavailableError)
        assert info.value.status == 503
        assert not isinstance(info.value, ConflictError)
        assert store.read(f"token/{SECRET}") is None  # readers are not blocked
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    ops.put(store, "k", {"ok": True})  # the pooled connection is usable again
    assert ops.get(store, "k") == {"ok": True}
    assert store.read(f"token/{SECRET}") is None
    store.close()


def test_sqlite_bad_key_error_names_no_key(store: SQLiteStorage) -> None:
    key = f"token/{SECRET}\udc80"  # a lone surrogate cannot be encoded as UTF-8
    with pytest.raises(InternalError) as info:
        ops.put(store, key, {"secret": SECRET})
    assert info.value.message == "storage error: UnicodeEncodeError"
    assert store.list("") == []


def test_sqlite_closed_storage_raises(path: str) -> None:
    store = SQLiteStorage(path)
    store.close()
    store.close()  # twice is fine
    calls: list[Callable[[], object]] = [
        lambda: store.read("k"),
        lambda: store.commit([Put("k", {})]),
        lambda: store.list(""),
        lambda: store.expired("", 1.0, 1),
    ]
    for call in calls:
        with pytest.raises(InternalError, match=r"^storage error: closed$"):
            call()


@pytest.mark.parametrize(
    ("value", "version", "expires_at"),
    [
        ("[1, 2", 1, None),
        ("[1, 2]", 1, None),
        ('"text"', 1, 5.0),
        ("{}", 0, 5.0),
        ("{}", "one", 5.0),
        ("{}", 1.5, None),
        ("{}", 1, "soon"),
    ],
    ids=[
        "bad-json",
        "json-list",
        "json-string",
        "version-0",
        "version-text",
        "version-real",
        "expiry-text",
    ],
)
def test_sqlite_corrupt_row_is_internal_error(
    path: str, store: SQLiteStorage, value: str, version: object, expires_at: object
) -> None:
    conn = raw(path)
    conn.execute("INSERT INTO kv VALUES ('bad', ?, ?, ?)", (value, version, expires_at))
    conn.close()
    ops.put(store, "good", {}, expires_at=1.0)
    with pytest.raises(InternalError, match=r"^storage error: corrupt document$"):
        store.read("bad")
    assert store.list("") == ["bad", "good"]
    if isinstance(expires_at, float):
        with pytest.raises(InternalError, match=r"^storage error: corrupt document$"):
            store.expired("", 10.0, 10)
    assert store.expired("good", 10.0, 10)[0].key == "good"


def test_sqlite_corrupt_version_counter_writes_nothing(path: str, store: SQLiteStorage) -> None:
    conn = raw(path)
    conn.execute("DELETE FROM kv_version")
    conn.close()
    with pytest.raises(InternalError, match=r"^storage error: corrupt version counter$"):
        store.commit([Put("a", {}), Delete("b")])
    assert store.list("") == []
    assert store.commit([Delete("a")]) == (0,)  # a commit of deletes takes no version


# ------------------------------------------------------------------------ pool


def test_sqlite_pool_keeps_a_few_idle_connections(store: SQLiteStorage) -> None:
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            barrier.wait(timeout=60)
            for _ in range(20):
                store.read("k")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 1 <= len(store._idle) <= sqlite_module._MAX_IDLE


def test_sqlite_pool_drops_a_broken_connection(store: SQLiteStorage) -> None:
    ops.put(store, "k", {"v": 1})
    assert len(store._idle) == 1
    store._idle[0].close()  # broken under the pool's feet
    with pytest.raises(InternalError, match=r"^storage error: ProgrammingError$"):
        store.read("k")
    assert store._idle == []
    assert ops.get(store, "k") == {"v": 1}  # a new connection


def test_sqlite_rolls_back_a_commit_that_fails_midway(store: SQLiteStorage) -> None:
    ops.put(store, "a", {"v": 1})
    with pytest.raises(InternalError, match=r"^storage error: UnicodeEncodeError$"):
        store.commit([Put("a", {"v": 2}), Put("b", {}), Put("c\udc80", {})])
    assert ops.get(store, "a") == {"v": 1}
    assert store.list("") == ["a"]
    assert len(store._idle) == 1
    assert not store._idle[0].in_transaction


# ----------------------------------------------------------------- open_storage


def test_open_storage_memory() -> None:
    assert isinstance(open_storage("memory://"), MemoryStorage)


def test_open_storage_sqlite_relative_and_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rel = open_storage("sqlite:///rel.db")
    assert isinstance(rel, SQLiteStorage)
    rel.close()
    assert (tmp_path / "rel.db").exists()
    assert mode(str(tmp_path / "rel.db")) == 0o600
    absolute = tmp_path / "sub" / "abs.db"
    absolute.parent.mkdir()
    store = open_storage(f"sqlite:///{absolute}")
    assert isinstance(store, SQLiteStorage)
    store.close()
    assert absolute.exists()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "memory:",
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "mysql://user:hunter2@db/x",
        "SQLITE:///x.db",
        "file:///x.db",
    ],
)
def test_open_storage_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="storage URL") as info:
        open_storage(url)
    assert "hunter2" not in str(info.value)


def test_migration_indexes_expiring_documents_of_the_previous_release(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    rows = {
        "sys/token/token/abc": {"expire_time": "2024-05-01T12:00:00+00:00", "accessor": "a"},
        "replay/xyz": {"expires": 1714564800.5},
        "role/dev": {"expire_time": "2024-05-01T12:00:00+00:00"},  # not a token: no index
    }
    conn.executemany("INSERT INTO kv VALUES (?, ?)", [(k, json.dumps(v)) for k, v in rows.items()])
    conn.commit()
    conn.close()
    storage = SQLiteStorage(str(path))
    due = {d.key: d.expires_at for d in storage.expired("", 2e9, 10)}
    assert set(due) == {"sys/token/token/abc", "replay/xyz"}
    assert due["replay/xyz"] == 1714564800.5
    assert due["sys/token/token/abc"] == pytest.approx(1714564800.0, abs=0.01)
    storage.close()


# ------------------------------------------------------------------ group commit (SQLite)


def test_commit_group_applies_each_commit_on_its_own(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "group.db")
    storage.commit([Put("taken", {"v": 0})])
    results = storage.commit_group(
        [
            [Put("a", {"v": 1}, expect=ABSENT), Put("b", {"v": 1})],
            [Put("c", {"v": 2}), Put("taken", {"v": 2}, expect=ABSENT)],  # fails: no c either
            [Put("d", {"v": 3}, expect=ABSENT)],
            [Put("e", {"v": float("nan")})],  # not storable: its own error
        ]
    )
    assert isinstance(results[0], tuple)
    assert len(results[0]) == 2
    assert isinstance(results[1], ConflictError)
    assert isinstance(results[2], tuple)
    assert isinstance(results[3], Exception)
    assert not isinstance(results[3], ConflictError)
    assert storage.list("") == ["a", "b", "d", "taken"]
    versions = [*results[0], *results[2]]
    assert versions == sorted(set(versions))  # fresh, increasing versions
    storage.close()


def test_async_commits_waiting_together_are_one_group_each_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits queued while the store's thread is busy are applied as one group (one
    transaction, one fsync), and each still succeeds or fails by its own conditions."""
    import asyncio

    from aws_iam_backend.io.storage import AsyncSQLiteStorage

    sizes: list[int] = []
    group = SQLiteStorage.commit_group

    def recording(self: SQLiteStorage, commits: Any) -> Any:
        sizes.append(len(commits))
        return group(self, commits)

    monkeypatch.setattr(SQLiteStorage, "commit_group", recording)
    gate = threading.Event()

    async def scenario() -> list[object]:
        storage = AsyncSQLiteStorage(tmp_path / "async-group.db")
        await storage.commit([Put("taken", {"v": 0})])
        blocked = asyncio.ensure_future(storage._call(lambda _s: gate.wait(10)))
        commits = [
            storage.commit([Put(f"k{i}", {"i": i}, expect=ABSENT)]) for i in range(20)
        ] + [storage.commit([Put("taken", {"v": 1}, expect=ABSENT)])]
        tasks = [asyncio.ensure_future(c) for c in commits]
        await asyncio.sleep(0)  # each task runs up to its await: queued behind the thread
        gate.set()
        await blocked
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        keys = await storage.list("")
        await storage.aclose()
        assert keys == sorted([*(f"k{i}" for i in range(20)), "taken"])
        return list(outcomes)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, tuple) for o in outcomes[:20])
    assert isinstance(outcomes[20], ConflictError)
    assert sizes[0] == 1
    assert max(sizes) == 21
