"""The storage contract, one suite for every store, sync and async.

Each test runs against ``memory``, ``sqlite`` (a file under ``tmp_path``) and
``postgresql`` (a fresh database per module, see :mod:`tests.support.services`), and
against their async twins (``async-memory``, ``async-sqlite``, ``async-postgresql``),
which the suite sees through :class:`Blocking`: each call is awaited on a per-test event
loop, and :data:`ops` runs the async operations for them. Then it races threads (for an
async store: concurrent tasks on its loop), tasks, and, for the stores shared between
processes, spawned processes. No test asserts anything about timing.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aws_iam_backend.errors import ConflictError, InternalError
from aws_iam_backend.io.protocols import (
    ABSENT,
    AsyncStorage,
    Check,
    Delete,
    Document,
    JSONDict,
    Operation,
    Put,
    Storage,
)
from aws_iam_backend.io.storage import sqlite as sqlite_module
from aws_iam_backend.io.storage._async import ops as async_ops
from aws_iam_backend.io.storage._sync import ops as sync_ops
from aws_iam_backend.io.storage.memory import AsyncMemoryStorage, MemoryStorage, encode_document
from aws_iam_backend.io.storage.ops import Change
from aws_iam_backend.io.storage.sqlite import AsyncSQLiteStorage, SQLiteStorage
from tests.support.aio import LoopThread
from tests.support.processes import run_together

THREADS = 16
PROCESSES = 4
JOIN_TIMEOUT = 300.0
ASYNC = "async-"
_T = TypeVar("_T")


# --------------------------------------------------------- async adapter


class Blocking:
    """An :class:`AsyncStorage` through the :class:`Storage` protocol: each call is awaited
    on ``loop``, so many threads calling at once are many tasks running at once.

    A call made on the loop's own thread (from the sync ``change`` of an async
    ``ops.update``: "another writer gets in between") goes to ``twin()``, a sync store on
    the same data, since the loop cannot wait for itself.
    """

    def __init__(self, inner: AsyncStorage, loop: LoopThread, twin: Callable[[], Storage]):
        self.inner = inner
        self.loop = loop
        self._make_twin = twin
        self._twin: Storage | None = None

    def twin(self) -> Storage:
        if self._twin is None:
            self._twin = self._make_twin()
        return self._twin

    def read(self, key: str) -> Document | None:
        if self.loop.on_loop():
            return self.twin().read(key)
        return self.loop.run(self.inner.read(key))

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        if self.loop.on_loop():
            return self.twin().commit(operations)
        return self.loop.run(self.inner.commit(operations))

    def list(self, prefix: str) -> list[str]:
        if self.loop.on_loop():
            return self.twin().list(prefix)
        return self.loop.run(self.inner.list(prefix))

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        if self.loop.on_loop():
            return self.twin().expired(prefix, before, limit)
        return self.loop.run(self.inner.expired(prefix, before, limit))

    def close(self) -> None:
        try:
            aclose: Callable[[], Coroutine[Any, Any, None]] | None = getattr(
                self.inner, "aclose", None
            )
            if aclose is not None:
                self.loop.run(aclose())
            if self._twin is not None:
                close_storage(self._twin)
        finally:
            self.loop.close()


class Ops:
    """:mod:`aws_iam_backend.io.storage._sync.ops` for a sync store, the async operations
    (:mod:`aws_iam_backend.io.storage._async.ops`) on its loop for a :class:`Blocking` one."""

    def get(self, storage: Storage, key: str) -> JSONDict | None:
        if isinstance(storage, Blocking):
            return storage.loop.run(async_ops.get(storage.inner, key))
        return sync_ops.get(storage, key)

    def put(self, storage: Storage, key: str, value: JSONDict, **kwargs: Any) -> int:
        if isinstance(storage, Blocking):
            return storage.loop.run(async_ops.put(storage.inner, key, value, **kwargs))
        return sync_ops.put(storage, key, value, **kwargs)

    def create(self, storage: Storage, key: str, value: JSONDict, **kwargs: Any) -> bool:
        if isinstance(storage, Blocking):
            return storage.loop.run(async_ops.create(storage.inner, key, value, **kwargs))
        return sync_ops.create(storage, key, value, **kwargs)

    def delete(self, storage: Storage, key: str) -> None:
        if isinstance(storage, Blocking):
            return storage.loop.run(async_ops.delete(storage.inner, key))
        return sync_ops.delete(storage, key)

    def update(self, storage: Storage, key: str, change: Change, **kwargs: Any) -> Document | None:
        if isinstance(storage, Blocking):
            return storage.loop.run(async_ops.update(storage.inner, key, change, **kwargs))
        return sync_ops.update(storage, key, change, **kwargs)

    def backoff(self, attempt: int) -> None:
        sync_ops.backoff(attempt)


ops = Ops()


# ------------------------------------------------------------------ fixtures


def open_storage(kind: str, location: str) -> Storage:
    """A store of ``kind`` at ``location`` (a file path, a URL, or "" for memory)."""
    if kind.startswith(ASYNC):
        return open_blocking(kind, location)
    if kind == "memory":
        return MemoryStorage()
    if kind == "sqlite":
        return SQLiteStorage(location)
    if kind == "postgresql":
        from aws_iam_backend.io.storage._sync.postgres import PostgresStorage

        store: Storage = PostgresStorage(location)
        return store
    raise AssertionError(kind)


def open_blocking(kind: str, location: str) -> Blocking:
    """An async store of ``kind`` (``async-...``) on a loop of its own, seen as sync."""
    loop = LoopThread()
    inner: AsyncStorage
    if kind == "async-memory":
        memory = MemoryStorage()
        return Blocking(AsyncMemoryStorage(memory), loop, lambda: memory)
    if kind == "async-sqlite":
        inner = AsyncSQLiteStorage(location)
    elif kind == "async-postgresql":
        from aws_iam_backend.io.storage._async.postgres import AsyncPostgresStorage

        inner = AsyncPostgresStorage(location)
    else:
        raise AssertionError(kind)
    return Blocking(inner, loop, lambda: open_storage(kind.removeprefix(ASYNC), location))


def close_storage(store: Storage) -> None:
    close: Callable[[], None] | None = getattr(store, "close", None)
    if close is not None:
        close()


def clear(store: Storage) -> None:
    """Delete every key, through the contract (the PostgreSQL database serves a module)."""
    keys = store.list("")
    for start in range(0, len(keys), 500):
        store.commit([Delete(key) for key in keys[start : start + 500]])


def _location(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = kind.removeprefix(ASYNC)
    if kind == "sqlite":
        return str(tmp_path / "kv.db")
    if kind == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return ""


SYNC_KINDS = ["memory", "sqlite", "postgresql"]
ASYNC_KINDS = [ASYNC + kind for kind in SYNC_KINDS]


@pytest.fixture(params=SYNC_KINDS + ASYNC_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture(params=ASYNC_KINDS)
def async_kind(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_kind(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture
def storage(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store = open_storage(kind, _location(kind, request, tmp_path))
    try:
        clear(store)
        yield store
    finally:
        close_storage(store)


@pytest.fixture
def async_storage(
    async_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Blocking]:
    store = open_blocking(async_kind, _location(async_kind, request, tmp_path))
    try:
        clear(store)
        yield store
    finally:
        store.close()


@pytest.fixture
def shared(
    shared_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str, Storage]]:
    """A store other processes can open too: ``(kind, location, store)``."""
    location = _location(shared_kind, request, tmp_path)
    store = open_storage(shared_kind, location)
    try:
        clear(store)
        yield shared_kind, location, store
    finally:
        close_storage(store)


def put(store: Storage, key: str, value: JSONDict, **kwargs: Any) -> int:
    return store.commit([Put(key, value, **kwargs)])[0]


def snapshot(store: Storage, keys: Sequence[str]) -> dict[str, Document | None]:
    return {key: store.read(key) for key in keys}


# ------------------------------------------------------------- read and put


def test_read_absent_is_none(storage: Storage) -> None:
    assert storage.read("nope") is None
    assert storage.read("") is None


def test_put_then_read(storage: Storage) -> None:
    value = {"x": 1, "nested": {"l": [1, "two", None, True, 1.5]}, "u": "é€😀"}
    (version,) = storage.commit([Put("role/a", value, expires_at=1_700_000_000.5)])
    assert version >= 1
    document = storage.read("role/a")
    assert document == Document("role/a", value, version, 1_700_000_000.5)
    (second,) = storage.commit([Put("role/b", {"y": 2})])
    assert storage.read("role/b") == Document("role/b", {"y": 2}, second, None)


def test_values_are_isolated_from_callers(storage: Storage) -> None:
    value: JSONDict = {"list": [1, 2], "inner": {"k": "v"}}
    put(storage, "k", value)
    value["list"].append(3)
    value["inner"]["k"] = "changed"
    document = storage.read("k")
    assert document is not None
    assert document.value == {"list": [1, 2], "inner": {"k": "v"}}
    document.value["list"].append(99)
    assert ops.get(storage, "k") == {"list": [1, 2], "inner": {"k": "v"}}


def test_versions_change_on_every_write_and_never_repeat(storage: Storage) -> None:
    seen: list[int] = []
    for round_ in range(3):
        for i in range(3):
            version = put(storage, "k", {"round": round_, "i": i})
            document = storage.read("k")
            assert document is not None
            assert document.version == version
            seen.append(version)
        assert storage.commit([Delete("k")]) == (0,)
        assert storage.read("k") is None
    assert all(v >= 1 for v in seen)
    assert len(set(seen)) == len(seen)
    # the version of a deleted key stays dead: a write conditioned on it conflicts
    with pytest.raises(ConflictError):
        storage.commit([Put("k", {}, expect=seen[-1])])
    assert put(storage, "k", {}, expect=ABSENT) not in seen


def test_commit_returns_each_version_in_order(storage: Storage) -> None:
    put(storage, "gone", {})
    versions = storage.commit([Put("a", {"n": 1}), Delete("gone"), Put("b", {"n": 2})])
    assert len(versions) == 3
    assert versions[1] == 0
    assert versions[0] != versions[2]
    a, b = storage.read("a"), storage.read("b")
    assert a is not None
    assert b is not None
    assert (a.version, b.version) == (versions[0], versions[2])


# ------------------------------------------------------------------- expect


def test_put_expect_absent(storage: Storage) -> None:
    version = put(storage, "k", {"v": 1}, expect=ABSENT)
    with pytest.raises(ConflictError) as info:
        put(storage, "k", {"v": 2}, expect=ABSENT)
    assert info.value.key == "k"
    assert info.value.status == 409
    assert storage.read("k") == Document("k", {"v": 1}, version)


def test_put_expect_version(storage: Storage) -> None:
    first = put(storage, "k", {"v": 1})
    second = put(storage, "k", {"v": 2}, expect=first)
    assert second != first
    with pytest.raises(ConflictError) as info:
        put(storage, "k", {"v": 3}, expect=first)  # stale
    assert info.value.key == "k"
    assert storage.read("k") == Document("k", {"v": 2}, second)
    with pytest.raises(ConflictError):
        put(storage, "absent", {"v": 1}, expect=second)  # a version of an absent key
    assert storage.read("absent") is None


def test_check_requires_a_version_and_writes_nothing(storage: Storage) -> None:
    (guard,) = storage.commit([Put("guard", {"g": 1})])
    versions = storage.commit([Put("a", {"x": 1}, expect=ABSENT), Check("guard", guard)])
    assert versions[1] == guard
    assert storage.read("guard") == Document("guard", {"g": 1}, guard)  # not rewritten
    (moved,) = storage.commit([Put("guard", {"g": 2})])
    with pytest.raises(ConflictError) as info:
        storage.commit([Put("b", {"x": 1}), Check("guard", guard)])  # stale: nothing applied
    assert info.value.key == "guard"
    assert storage.read("b") is None
    with pytest.raises(ConflictError):
        storage.commit([Put("c", {"x": 1}), Check("nowhere", moved)])  # absent key
    assert storage.read("c") is None
    assert storage.commit([Check("guard", moved)]) == (moved,)  # alone: a plain check


def test_check_expect_is_a_version() -> None:
    for bad in (ABSENT, -1, True):
        with pytest.raises(ValueError, match="version >= 1"):
            Check("k", bad)


def test_put_unconditional_overwrites(storage: Storage) -> None:
    put(storage, "k", {"v": 1})
    version = put(storage, "k", {"v": 2})
    assert storage.read("k") == Document("k", {"v": 2}, version)


def test_delete_expect_version(storage: Storage) -> None:
    first = put(storage, "k", {"v": 1})
    second = put(storage, "k", {"v": 2})
    with pytest.raises(ConflictError) as info:
        storage.commit([Delete("k", expect=first)])
    assert info.value.key == "k"
    assert storage.read("k") == Document("k", {"v": 2}, second)
    assert storage.commit([Delete("k", expect=second)]) == (0,)
    assert storage.read("k") is None


def test_delete_absent_key(storage: Storage) -> None:
    assert storage.commit([Delete("absent")]) == (0,)  # unconditional: fine
    with pytest.raises(ConflictError) as info:
        storage.commit([Delete("absent", expect=1)])
    assert info.value.key == "absent"
    assert storage.read("absent") is None


def test_conflict_message_names_no_key(storage: Storage) -> None:
    put(storage, "token/s3cr3t-accessor", {"v": 1})
    with pytest.raises(ConflictError) as info:
        put(storage, "token/s3cr3t-accessor", {"v": 2}, expect=ABSENT)
    assert "s3cr3t" not in info.value.message
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("failing", [0, 1, 2, 3])
def test_failed_multi_op_commit_changes_nothing(storage: Storage, failing: int) -> None:
    va = put(storage, "m/a", {"a": 1}, expires_at=100.0)
    vb = put(storage, "m/b", {"b": 1})
    vd = put(storage, "m/d", {"d": 1}, expires_at=200.0)
    keys = ["m/a", "m/b", "m/c", "m/d", "m/e"]
    before = snapshot(storage, keys)
    good: list[Operation] = [
        Put("m/a", {"a": 2}, expect=va),  # holds
        Delete("m/b", expect=vb),  # holds
        Put("m/c", {"c": 1}, expect=ABSENT, expires_at=50.0),  # holds
        Put("m/e", {"e": 1}),  # unconditional
    ]
    bad = Put("m/d", {"d": 2}, expect=vd + 1000)  # does not hold
    operations = [*good[:failing], bad, *good[failing:]]
    with pytest.raises(ConflictError) as info:
        storage.commit(operations)
    assert info.value.key == "m/d"
    assert snapshot(storage, keys) == before
    assert storage.list("m/") == ["a", "b", "d"]
    assert [d.key for d in storage.expired("m/", 1000.0, 10)] == ["m/a", "m/d"]


def test_every_failed_condition_is_a_conflict(storage: Storage) -> None:
    va = put(storage, "c/a", {"a": 1})
    with pytest.raises(ConflictError) as info:
        storage.commit([Put("c/a", {"a": 2}, expect=ABSENT), Delete("c/absent", expect=va)])
    assert info.value.key in {"c/a", "c/absent"}
    assert storage.read("c/a") == Document("c/a", {"a": 1}, va)


# ------------------------------------------------------------ bad commits


@pytest.mark.parametrize(
    "operations",
    [
        [],
        [Put("k", {}), Put("k", {})],
        [Put("k", {}), Delete("k")],
        [Delete("k"), Put("j", {}), Delete("k")],
    ],
    ids=["empty", "put-put", "put-delete", "delete-delete"],
)
def test_empty_or_duplicate_commit_is_value_error(
    storage: Storage, operations: list[Operation]
) -> None:
    with pytest.raises(ValueError, match="commit"):
        storage.commit(operations)
    assert storage.list("") == []


@pytest.mark.parametrize(
    "bad",
    [{"x": object()}, {"x": float("nan")}, {"x": float("inf")}, ["not", "a", "dict"], "text"],
    ids=["object", "nan", "inf", "list", "str"],
)
def test_non_json_values_are_internal_errors(storage: Storage, bad: object) -> None:
    put(storage, "keep", {"v": 1})
    before = storage.read("keep")
    with pytest.raises(InternalError, match=r"^storage error: ") as info:
        storage.commit([Put("keep", {"v": 2}), Put("k", bad)])  # type: ignore[arg-type]
    assert not isinstance(info.value, ConflictError)
    assert storage.read("k") is None
    assert storage.read("keep") == before
    assert storage.list("") == ["keep"]


# -------------------------------------------------------------------- list


def test_list_sorted_with_prefix_removed(storage: Storage) -> None:
    for key in ["role/b", "role/a", "role/c/d", "rolex", "config/client", "role", "role/"]:
        put(storage, key, {})
    assert storage.list("role/") == ["", "a", "b", "c/d"]
    assert storage.list("role") == ["", "/", "/a", "/b", "/c/d", "x"]
    assert storage.list("") == [
        "config/client",
        "role",
        "role/",
        "role/a",
        "role/b",
        "role/c/d",
        "rolex",
    ]
    assert storage.list("missing/") == []
    assert storage.list("role/a/") == []


def test_list_treats_like_wildcards_literally(storage: Storage) -> None:
    for key in ["a%b/x", "a%c", "a_b/y", "aXb/z", "aYc", "A%b", "a\\b", "a%%", "a__"]:
        put(storage, key, {})
    assert storage.list("a%") == ["%", "b/x", "c"]
    assert storage.list("a_") == ["_", "b/y"]
    assert storage.list("a\\") == ["b"]
    assert storage.list("a%b") == ["/x"]
    assert storage.list("a") == ["%%", "%b/x", "%c", "Xb/z", "Yc", "\\b", "__", "_b/y"]


def test_list_prefix_is_case_sensitive(storage: Storage) -> None:
    put(storage, "Role/a", {})
    put(storage, "role/b", {})
    assert storage.list("role/") == ["b"]
    assert storage.list("Role/") == ["a"]


def test_list_orders_by_code_point(storage: Storage) -> None:
    keys = ["n/é", "n/e", "n/z", "n/É", "n/日本", "n/日", "n/😀", "n/\uffff", "n/Z", "n/ée", "n/~"]
    for key in keys:
        put(storage, key, {})
    assert storage.list("n/") == sorted(k[2:] for k in keys)


def test_list_non_ascii_prefixes_are_exact(storage: Storage) -> None:
    keys = ["rôle/a", "rôle/b", "rôlé/c", "rôle", "rôlex/d", "role/e", "日本/x", "日本語/y", "日/z"]
    for key in keys:
        put(storage, key, {})
    assert storage.list("rôle/") == ["a", "b"]
    assert storage.list("rôle") == ["", "/a", "/b", "x/d"]
    assert storage.list("rôl") == ["e", "e/a", "e/b", "ex/d", "é/c"]
    assert storage.list("日本") == ["/x", "語/y"]
    assert storage.list("日") == ["/z", "本/x", "本語/y"]


@pytest.mark.parametrize("last", ["\U0010ffff", "\ud7ff", "\uffff", "\U0001f600", "\x7f", "ÿ"])
def test_list_prefix_ending_in_edge_code_points(storage: Storage, last: str) -> None:
    prefix = "p" + last
    keys = [prefix, prefix + "x", prefix + "\U0010ffff", "p", "q", "p\U0010ffff\U0010ffff"]
    keys += ["p" + chr(ord(last) - 1) + "x"]
    for key in set(keys):
        put(storage, key, {})
    expected = sorted(k[len(prefix) :] for k in set(keys) if k.startswith(prefix))
    assert storage.list(prefix) == expected
    assert "x" in expected


# ----------------------------------------------------------------- expired


def test_expired_soonest_first_with_full_keys(storage: Storage) -> None:
    for key, at in [("t/c", 30.0), ("t/a", 10.0), ("t/d", 40.0), ("t/b", 20.0), ("t/e", None)]:
        put(storage, key, {"k": key}, expires_at=at)
    due = storage.expired("t/", 35.0, 10)
    assert [d.key for d in due] == ["t/a", "t/b", "t/c"]
    assert [d.expires_at for d in due] == [10.0, 20.0, 30.0]
    for document in due:
        assert storage.read(document.key) == document
        assert document.value == {"k": document.key}


def test_expired_limit(storage: Storage) -> None:
    for i in range(10):
        put(storage, f"t/{i}", {}, expires_at=float(100 - i))
    assert [d.key for d in storage.expired("t/", 1000.0, 3)] == ["t/9", "t/8", "t/7"]
    assert len(storage.expired("t/", 1000.0, 10)) == 10
    assert len(storage.expired("t/", 1000.0, 100)) == 10
    assert storage.expired("t/", 1000.0, 0) == []


def test_expired_prefix_is_exact(storage: Storage) -> None:
    for key in ["t/a", "tx/b", "t", "T/c", "t%/d", "t_/e", "u/f", "t/sub/g", "tôt/h"]:
        put(storage, key, {}, expires_at=1.0)
    assert [d.key for d in storage.expired("t/", 2.0, 10)] == ["t/a", "t/sub/g"]
    assert [d.key for d in storage.expired("t%", 2.0, 10)] == ["t%/d"]
    assert [d.key for d in storage.expired("t_", 2.0, 10)] == ["t_/e"]
    assert [d.key for d in storage.expired("tô", 2.0, 10)] == ["tôt/h"]
    everything = storage.expired("", 2.0, 100)
    assert sorted(d.key for d in everything) == sorted(
        ["t/a", "tx/b", "t", "T/c", "t%/d", "t_/e", "u/f", "t/sub/g", "tôt/h"]
    )


def test_expired_before_is_inclusive(storage: Storage) -> None:
    put(storage, "t/a", {}, expires_at=1_700_000_000.25)
    put(storage, "t/b", {}, expires_at=1_700_000_000.5)
    assert [d.key for d in storage.expired("t/", 1_700_000_000.25, 10)] == ["t/a"]
    assert [d.key for d in storage.expired("t/", 1_700_000_000.24, 10)] == []
    assert [d.key for d in storage.expired("t/", 1_700_000_000.5, 10)] == ["t/a", "t/b"]
    assert storage.expired("t/", 0.0, 10) == []


def test_put_without_expires_at_clears_it(storage: Storage) -> None:
    put(storage, "t/a", {"v": 1}, expires_at=10.0)
    put(storage, "t/b", {"v": 1}, expires_at=10.0)
    version = put(storage, "t/a", {"v": 2})
    assert storage.read("t/a") == Document("t/a", {"v": 2}, version, None)
    put(storage, "t/b", {"v": 2}, expires_at=50.0)  # moved later
    assert [d.key for d in storage.expired("t/", 20.0, 10)] == []
    assert [d.key for d in storage.expired("t/", 50.0, 10)] == ["t/b"]
    storage.commit([Delete("t/b")])
    assert storage.expired("t/", 1e12, 10) == []


# --------------------------------------------------------------------- ops


def test_ops_get_put_delete(storage: Storage) -> None:
    assert ops.get(storage, "k") is None
    version = ops.put(storage, "k", {"v": 1}, expires_at=5.0)
    assert ops.get(storage, "k") == {"v": 1}
    assert storage.read("k") == Document("k", {"v": 1}, version, 5.0)
    ops.delete(storage, "k")
    ops.delete(storage, "k")  # absent: no error
    assert ops.get(storage, "k") is None


def test_ops_create_only_if_absent(storage: Storage) -> None:
    assert ops.create(storage, "nonce/a", {"v": 1}, expires_at=9.0) is True
    assert ops.create(storage, "nonce/a", {"v": 2}) is False
    document = storage.read("nonce/a")
    assert document is not None
    assert (document.value, document.expires_at) == ({"v": 1}, 9.0)
    ops.delete(storage, "nonce/a")
    assert ops.create(storage, "nonce/a", {"v": 3}) is True


def test_ops_update_creates_changes_and_deletes(storage: Storage) -> None:
    seen: list[Document | None] = []

    def bump(document: Document | None) -> list[Operation]:
        seen.append(document)
        count = 0 if document is None else document.value["n"]
        return [Put("c", {"n": count + 1}, expires_at=float(count + 1))]

    assert ops.update(storage, "c", bump) is None
    after = ops.update(storage, "c", bump)
    assert after is not None
    assert after.value == {"n": 1}
    current = storage.read("c")
    assert current is not None
    assert (current.value, current.expires_at) == ({"n": 2}, 2.0)
    assert seen[0] is None
    assert seen[1] == after

    assert ops.update(storage, "c", lambda document: None) == current  # nothing to do
    assert ops.update(storage, "c", lambda document: []) == current
    assert storage.read("c") == current

    assert ops.update(storage, "c", lambda document: [Delete("c")]) == current
    assert storage.read("c") is None
    assert ops.update(storage, "c", lambda document: [Delete("c")]) is None  # already gone


def test_ops_update_retries_after_a_concurrent_write(storage: Storage) -> None:
    put(storage, "c", {"n": 0})
    calls: list[int] = []

    def bump(document: Document | None) -> list[Operation]:
        assert document is not None
        calls.append(document.value["n"])
        if len(calls) == 1:  # another writer gets in between the read and the commit
            put(storage, "c", {"n": 10})
        return [Put("c", {"n": document.value["n"] + 1})]

    ops.update(storage, "c", bump)
    assert calls == [0, 10]
    assert ops.get(storage, "c") == {"n": 11}


def test_ops_update_commits_other_keys_with_it(storage: Storage) -> None:
    put(storage, "other", {"v": 1})

    def change(document: Document | None) -> list[Operation]:
        return [Put("main", {"v": 1}), Put("index/x", {"main": True}), Delete("other")]

    ops.update(storage, "main", change)
    assert storage.list("") == ["index/x", "main"]


def test_ops_update_gives_up_after_attempts(storage: Storage) -> None:
    put(storage, "c", {"n": 0})

    def always_beaten(document: Document | None) -> list[Operation]:
        put(storage, "c", {"n": -1})
        return [Put("c", {"n": 1})]

    with pytest.raises(InternalError, match="too many concurrent updates"):
        ops.update(storage, "c", always_beaten, attempts=3)
    assert ops.get(storage, "c") == {"n": -1}


# --------------------------------------------------------- thread races


def _race(worker: Callable[[int], Any], count: int = THREADS) -> list[Any]:
    """``worker(i)`` for every i in parallel threads, started together; their results."""
    barrier = threading.Barrier(count)

    def start(i: int) -> Any:
        barrier.wait(timeout=JOIN_TIMEOUT)
        return worker(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(start, i) for i in range(count)]
        return [future.result(timeout=JOIN_TIMEOUT) for future in futures]


def _increment(store: Storage, key: str, times: int) -> None:
    def bump(document: Document | None) -> list[Operation]:
        count = 0 if document is None else document.value["n"]
        return [Put(key, {"n": count + 1})]

    # These races check that no increment is lost, not the default retry budget (16
    # conflicts in a row), which a loaded machine may exhaust: hence the high ``attempts``.
    for _ in range(times):
        ops.update(store, key, bump, attempts=1000)


def test_threads_incrementing_one_counter(storage: Storage) -> None:
    times = 10
    _race(lambda i: _increment(storage, "counter", times))
    assert ops.get(storage, "counter") == {"n": THREADS * times}


def test_threads_creating_one_key(storage: Storage) -> None:
    won = _race(lambda i: ops.create(storage, "race", {"winner": i}))
    assert won.count(True) == 1
    assert ops.get(storage, "race") == {"winner": won.index(True)}


def _move(store: Storage, source: str, target: str, amount: int) -> None:
    """Move ``amount`` from ``source`` to ``target`` in one conditional commit, retrying."""
    for attempt in range(1, 1001):
        a, b = store.read(source), store.read(target)
        assert a is not None
        assert b is not None
        try:
            store.commit(
                [
                    Put(source, {"n": a.value["n"] - amount}, expect=a.version),
                    Put(target, {"n": b.value["n"] + amount}, expect=b.version),
                ]
            )
        except ConflictError:
            ops.backoff(attempt)
            continue
        return
    raise AssertionError("too many conflicts")


def test_threads_moving_between_two_keys_keep_the_total(storage: Storage) -> None:
    put(storage, "acct/a", {"n": 1000})
    put(storage, "acct/b", {"n": 0})
    rounds = 3

    def worker(i: int) -> None:
        for _ in range(rounds):
            _move(storage, "acct/a", "acct/b", i + 1)
            _move(storage, "acct/b", "acct/a", 1)

    _race(worker)
    moved = rounds * sum(i + 1 for i in range(THREADS)) - rounds * THREADS
    assert ops.get(storage, "acct/a") == {"n": 1000 - moved}
    assert ops.get(storage, "acct/b") == {"n": moved}


# ---------------------------------------------------------- task races


def _bump(key: str) -> Change:
    def change(document: Document | None) -> list[Operation]:
        count = 0 if document is None else document.value["n"]
        return [Put(key, {"n": count + 1})]

    return change


def test_tasks_incrementing_one_counter(async_storage: Blocking) -> None:
    times = 10
    store = async_storage.inner

    async def worker() -> None:
        for _ in range(times):
            await async_ops.update(store, "counter", _bump("counter"), attempts=1000)

    async def race() -> None:
        await asyncio.gather(*(worker() for _ in range(THREADS)))

    async_storage.loop.run(race())
    assert ops.get(async_storage, "counter") == {"n": THREADS * times}


def test_tasks_creating_one_key(async_storage: Blocking) -> None:
    store = async_storage.inner

    async def race() -> list[bool]:
        return await asyncio.gather(
            *(async_ops.create(store, "race", {"winner": i}) for i in range(THREADS))
        )

    won = async_storage.loop.run(race())
    assert won.count(True) == 1
    assert ops.get(async_storage, "race") == {"winner": won.index(True)}


class _Gate:
    """Holds the first commit of an :class:`AsyncSQLiteStorage` on its thread, mid-commit
    (encoding its values), until :meth:`open`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        encode = encode_document

        def held(value: JSONDict) -> str:
            if not self.started.is_set():
                self.started.set()
                assert self.release.wait(JOIN_TIMEOUT)
            return encode(value)

        monkeypatch.setattr(sqlite_module, "encode_document", held)

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, JOIN_TIMEOUT)

    def open(self) -> None:
        self.release.set()


def test_async_sqlite_cancelled_commit_runs_to_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"c/{i}" for i in range(20)]

    async def main() -> None:
        async with AsyncSQLiteStorage(tmp_path / "kv.db") as store:
            gate = _Gate(monkeypatch)
            running = asyncio.create_task(store.commit([Put(key, {"k": key}) for key in keys]))
            await gate.wait_started()  # the commit is running on the storage's thread
            queued = asyncio.create_task(store.commit([Put("q/1", {}), Put("q/2", {})]))
            await asyncio.sleep(0)  # submitted: queued behind the running commit
            running.cancel()
            queued.cancel()
            gate.open()
            for task in (running, queued):
                with pytest.raises(asyncio.CancelledError):
                    await task
            # The running commit was fully applied; the queued one never started.
            assert await store.list("c/") == sorted(key[2:] for key in keys)
            documents = [await store.read(key) for key in keys]
            assert all(d is not None and d.value == {"k": d.key} for d in documents)
            assert len({d.version for d in documents if d is not None}) == len(keys)
            assert await store.list("q/") == []
            await async_ops.put(store, "after", {"ok": True})  # and the store still works
            assert await async_ops.get(store, "after") == {"ok": True}

    asyncio.run(main())
    reopened = SQLiteStorage(tmp_path / "kv.db")
    try:
        assert reopened.list("") == sorted(["after", *keys])
    finally:
        reopened.close()


def test_async_sqlite_open_errors_and_close(tmp_path: Path) -> None:
    async def main() -> None:
        missing = AsyncSQLiteStorage(tmp_path / "no" / "such" / "dir.db")
        try:
            with pytest.raises(InternalError, match="cannot open SQLite database"):
                await missing.open()
            with pytest.raises(InternalError, match="cannot open SQLite database"):
                await missing.read("k")
        finally:
            await missing.aclose()
        store = AsyncSQLiteStorage(tmp_path / "kv.db")
        await store.aclose()
        await store.aclose()  # twice: fine
        with pytest.raises(InternalError, match="closed"):
            await store.read("k")

    asyncio.run(main())
    with pytest.raises(ValueError, match="file path"):
        AsyncSQLiteStorage(":memory:")


# ------------------------------------------------------- process races


def _process_main(
    worker: str,
    index: int,
    kind: str,
    location: str,
    key: str,
    times: int,
    barrier: Any,
    results: Any,
) -> None:
    """A spawned process: open its own store, wait for the others, run ``worker``."""
    try:
        store = open_storage(kind, location)
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            if worker == "increment":
                _increment(store, key, times)
                result: object = None
            else:
                result = ops.create(store, key, {"winner": index})
        finally:
            close_storage(store)
    except BaseException as exc:
        barrier.abort()  # the others stop waiting for this one
        results.put((index, "error", f"{type(exc).__name__}: {exc}"))
        raise
    results.put((index, "ok", result))


def _run_processes(worker: str, kind: str, location: str, key: str, times: int = 0) -> list[Any]:
    """``PROCESSES`` spawned processes running ``worker`` together; their results by index."""
    outcomes = run_together(
        _process_main, [(worker, i, kind, location, key, times) for i in range(PROCESSES)]
    )
    errors = [outcome for outcome in outcomes if outcome[1] != "ok"]
    assert errors == []
    return [result for _, _, result in sorted(outcomes)]


def test_processes_incrementing_one_counter(shared: tuple[str, str, Storage]) -> None:
    kind, location, store = shared
    times = 25
    _run_processes("increment", kind, location, "counter", times)
    assert ops.get(store, "counter") == {"n": PROCESSES * times}


def test_processes_creating_one_key(
    shared_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # SQLite: the processes also race to create and migrate a file that does not exist yet.
    location = _location(shared_kind, request, tmp_path / "fresh")
    if shared_kind == "sqlite":
        (tmp_path / "fresh").mkdir()
    else:
        setup = open_storage(shared_kind, location)
        try:
            clear(setup)
        finally:
            close_storage(setup)
    won = _run_processes("create", shared_kind, location, "race")
    assert won.count(True) == 1
    store = open_storage(shared_kind, location)
    try:
        assert ops.get(store, "race") == {"winner": won.index(True)}
    finally:
        close_storage(store)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Delete("k", expect=ABSENT), "cannot expect the key to be absent"),
        (lambda: Put("k", {}, expect=-1), "must be None, ABSENT"),
        (lambda: Delete("k", expect=True), "must be None, ABSENT"),
    ],
)
def test_operations_with_impossible_conditions_are_refused(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()
