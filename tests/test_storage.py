"""Storage contract (memory and SQLite alike), then SQLite's durability and concurrency."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aws_iam_backend.errors import InternalError
from aws_iam_backend.interfaces import Storage
from aws_iam_backend.storage import MemoryStorage, SQLiteStorage, open_storage

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    store = SQLiteStorage(str(tmp_path / "kv.db"))
    try:
        yield store
    finally:
        store.close()


# ------------------------------------------------------------------ contract


def test_get_missing_is_none(storage: Storage) -> None:
    assert storage.get("nope") is None


def test_put_get_overwrite_delete(storage: Storage) -> None:
    storage.put("role/a", {"x": 1, "nested": {"l": [1, "two", None, True, 1.5]}})
    assert storage.get("role/a") == {"x": 1, "nested": {"l": [1, "two", None, True, 1.5]}}
    storage.put("role/a", {"x": 2})
    assert storage.get("role/a") == {"x": 2}
    storage.delete("role/a")
    assert storage.get("role/a") is None
    storage.delete("role/a")  # absent: no error


def test_put_many_is_all_or_nothing(storage: Storage) -> None:
    storage.put_many({"batch/a": {"v": 1}, "batch/b": {"v": 2}})
    assert storage.list("batch/") == ["a", "b"]
    with pytest.raises(InternalError):
        storage.put_many({"batch/a": {"v": 9}, "batch/c": {"bad": object()}})
    assert storage.get("batch/a") == {"v": 1}
    assert storage.get("batch/c") is None


def test_create_only_if_absent(storage: Storage) -> None:
    assert storage.create("nonce/a", {"v": 1}) is True
    assert storage.create("nonce/a", {"v": 2}) is False
    assert storage.get("nonce/a") == {"v": 1}


def test_create_is_atomic_across_threads(storage: Storage) -> None:
    winners: list[int] = []

    def attempt(i: int) -> None:
        if storage.create("race", {"winner": i}):
            winners.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert storage.get("race") == {"winner": winners[0]}


def test_list_sorted_with_prefix_removed(storage: Storage) -> None:
    for key in ["role/b", "role/a", "role/c/d", "rolex", "config/client"]:
        storage.put(key, {})
    assert storage.list("role/") == ["a", "b", "c/d"]
    assert storage.list("") == ["config/client", "role/a", "role/b", "role/c/d", "rolex"]
    assert storage.list("missing/") == []


def test_list_treats_like_wildcards_literally(storage: Storage) -> None:
    for key in ["a%b/x", "a%c", "a_b/y", "aXb/z", "aYc", "A%b", "a\\b"]:
        storage.put(key, {})
    assert storage.list("a%") == ["b/x", "c"]
    assert storage.list("a_") == ["b/y"]
    assert storage.list("a\\") == ["b"]
    assert storage.list("a") == ["%b/x", "%c", "Xb/z", "Yc", "\\b", "_b/y"]


def test_list_prefix_is_case_sensitive(storage: Storage) -> None:
    storage.put("Role/a", {})
    storage.put("role/b", {})
    assert storage.list("role/") == ["b"]
    assert storage.list("Role/") == ["a"]


@pytest.mark.parametrize("last", ["\U0010ffff", "\ud7ff", "\uffff", "\U0001f600"])
def test_list_prefix_ending_in_edge_code_points(storage: Storage, last: str) -> None:
    prefix = "p" + last
    for key in [prefix, prefix + "x", prefix + "\U0010ffff", "p", "q", "p\U0010ffff\U0010ffff"]:
        storage.put(key, {})
    expected = sorted(k[len(prefix) :] for k in storage.list("") if k.startswith(prefix))
    assert storage.list(prefix) == expected
    assert "x" in expected


def test_values_are_isolated_from_callers(storage: Storage) -> None:
    value = {"list": [1, 2], "inner": {"k": "v"}}
    storage.put("k", value)
    value["list"].append(3)  # type: ignore[attr-defined]
    value["inner"]["k"] = "changed"  # type: ignore[index]
    got = storage.get("k")
    assert got == {"list": [1, 2], "inner": {"k": "v"}}
    assert got is not None
    got["list"].append(99)
    assert storage.get("k") == {"list": [1, 2], "inner": {"k": "v"}}


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": float("nan")}, ["not", "a", "dict"]])
def test_non_json_values_are_internal_errors(storage: Storage, bad: object) -> None:
    with pytest.raises(InternalError, match=r"^storage error: "):
        storage.put("k", bad)  # type: ignore[arg-type]
    assert storage.get("k") is None


def test_concurrent_writers_from_threads(storage: Storage) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                storage.put(f"t/{n}/{i:03d}", {"n": n, "i": i})
                assert storage.get(f"t/{n}/{i:03d}") == {"n": n, "i": i}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(storage.list("t/")) == 400


# -------------------------------------------------------------------- SQLite


def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "kv.db")
    first = SQLiteStorage(path)
    first.put("config/client", {"a": "b"})
    first.close()
    second = SQLiteStorage(path)
    try:
        assert second.get("config/client") == {"a": "b"}
        assert second.list("config/") == ["client"]
    finally:
        second.close()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "kv.db")
    SQLiteStorage(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert tables == [("kv",)]
    finally:
        conn.close()


def test_sqlite_stores_plain_json_text(tmp_path: Path) -> None:
    path = str(tmp_path / "kv.db")
    store = SQLiteStorage(path)
    store.put("k", {"a": [1]})
    store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT key, value FROM kv").fetchall() == [("k", '{"a":[1]}')]
    finally:
        conn.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from aws_iam_backend.storage.sqlite import SQLiteStorage

    store = SQLiteStorage(sys.argv[1])
    for i in range(200):
        store.put(f"p/{sys.argv[2]}/{i:03d}", {"i": i})
    store.close()
    """
)


def test_sqlite_two_processes_write_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStorage(path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, path, name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    store = SQLiteStorage(path)
    try:
        assert len(store.list("p/a/")) == 200
        assert len(store.list("p/b/")) == 200
        assert store.get("p/b/199") == {"i": 199}
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["missing-dir", "directory", "not-a-database"])
def test_sqlite_unusable_path_is_internal_error(tmp_path: Path, kind: str) -> None:
    if kind == "missing-dir":
        path = tmp_path / "no" / "such" / "dir" / "kv.db"
    elif kind == "directory":
        path = tmp_path
    else:
        path = tmp_path / "garbage.db"
        path.write_bytes(b"this is not an sqlite database, secret-value-123" * 100)
    with pytest.raises(InternalError) as info:
        SQLiteStorage(str(path))
    assert info.value.message.startswith("storage error: ")
    assert str(tmp_path) not in info.value.message
    assert "secret-value" not in info.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_sqlite_read_only_file_is_internal_error(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    SQLiteStorage(str(path)).close()
    for name in os.listdir(tmp_path):
        (tmp_path / name).chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(InternalError, match=r"^storage error: "):  # noqa: PT012
            store = SQLiteStorage(str(path))  # opening may already fail, or the write
            store.put("k", {"v": 1})
    finally:
        tmp_path.chmod(0o755)


def test_sqlite_lock_timeout_is_internal_error(tmp_path: Path) -> None:
    path = str(tmp_path / "kv.db")
    store = SQLiteStorage(path, busy_timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(InternalError) as info:
            store.put("k", {"secret": "s3cr3t"})
        assert info.value.message == "storage error: SQLITE_BUSY"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.put("k", {"ok": True})  # the pooled connection is usable again
    assert store.get("k") == {"ok": True}
    store.close()


def test_sqlite_closed_storage_raises(tmp_path: Path) -> None:
    store = SQLiteStorage(str(tmp_path / "kv.db"))
    store.close()
    with pytest.raises(InternalError, match=r"^storage error: closed$"):
        store.get("k")


def test_sqlite_corrupt_document_is_internal_error(tmp_path: Path) -> None:
    path = str(tmp_path / "kv.db")
    store = SQLiteStorage(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO kv VALUES ('bad', '[1, 2')")
    conn.execute("INSERT INTO kv VALUES ('list', '[1, 2]')")
    conn.close()
    try:
        for key in ("bad", "list"):
            with pytest.raises(InternalError, match=r"^storage error: corrupt document$"):
                store.get(key)
    finally:
        store.close()


# --------------------------------------------------------------- open_storage


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
        "postgres://user:hunter2@db/x",
        "SQLITE:///x.db",
        "file:///x.db",
    ],
)
def test_open_storage_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="storage URL") as info:
        open_storage(url)
    assert "hunter2" not in str(info.value)
