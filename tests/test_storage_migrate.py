"""copy_documents and reseal, over memory, SQLite and PostgreSQL storages."""

from __future__ import annotations

import base64
import builtins
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from aws_iam_backend.errors import InternalError
from aws_iam_backend.io.protocols import Delete, Document, JSONDict, Operation, Put, Storage
from aws_iam_backend.io.seal import AesGcmSeal, is_sealed, key_id, sealed_key_id
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage._sync.sealed import SealedStorage
from aws_iam_backend.io.storage.memory import MemoryStorage
from aws_iam_backend.io.storage.migrate import copy_documents, reseal
from aws_iam_backend.io.storage.sqlite import SQLiteStorage

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
KEY_C = b"\xee" * 32

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEYsecret"
TOKEN = "hvs.CAESIPlaintextTokenThatMustNeverBeStored0123"


def sample(count: int = 23) -> dict[str, tuple[JSONDict, float | None]]:
    """Documents of every kind the server keeps, some with an expiry."""
    docs: dict[str, tuple[JSONDict, float | None]] = {
        "config/client": ({"access_key": "AKIAEXAMPLE", "secret_key": SECRET_KEY}, None),
        "keys/hmac": ({"key": base64.b64encode(b"k" * 32).decode()}, None),
        f"token/{'ab' * 8}": ({"token": TOKEN, "policies": ["default"]}, 1_900_000_000.5),
        "role/ž-unicode": ({"name": "žluťoučký", "n": None, "l": [1, 2.5, {"x": []}]}, 12.0),
    }
    for number in range(count - len(docs)):
        docs[f"nonce/{number:04d}"] = ({"n": number}, 1000.0 + number if number % 2 else None)
    return docs


def fill(storage: Storage, docs: dict[str, tuple[JSONDict, float | None]]) -> None:
    storage.commit([Put(key, value, expires_at=exp) for key, (value, exp) in docs.items()])


def contents(storage: Storage) -> dict[str, tuple[JSONDict, float | None]]:
    out: dict[str, tuple[JSONDict, float | None]] = {}
    for key in storage.list(""):
        document = storage.read(key)
        assert document is not None
        out[key] = (document.value, document.expires_at)
    return out


class CountingStorage:
    """Passes through to ``inner``, recording the size of every commit."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.commits: list[int] = []

    def read(self, key: str) -> Document | None:
        return self.inner.read(key)

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        self.commits.append(len(operations))
        return self.inner.commit(operations)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        return self.inner.expired(prefix, before, limit)


# --- copy_documents ---------------------------------------------------------------------


def test_copy_plain_to_sealed_in_batches() -> None:
    docs = sample(23)
    source = MemoryStorage()
    fill(source, docs)
    raw_target = MemoryStorage()
    target = CountingStorage(SealedStorage(raw_target, AesGcmSeal([KEY_A])))
    assert copy_documents(source, target, batch=5) == 23
    assert target.commits == [5, 5, 5, 5, 3]
    assert contents(target) == docs
    assert all(is_sealed(v) for v, _ in contents(raw_target).values())
    assert raw_target.list("") == source.list("")


def test_copy_sealed_to_plain_and_between_keys() -> None:
    docs = sample(7)
    raw_a = MemoryStorage()
    fill(SealedStorage(raw_a, AesGcmSeal([KEY_A])), docs)
    plain = MemoryStorage()
    assert copy_documents(SealedStorage(raw_a, AesGcmSeal([KEY_A])), plain) == 7
    assert contents(plain) == docs
    raw_b = MemoryStorage()
    assert (
        copy_documents(
            SealedStorage(raw_a, AesGcmSeal([KEY_A])), SealedStorage(raw_b, AesGcmSeal([KEY_B]))
        )
        == 7
    )
    assert {sealed_key_id(v) for v, _ in contents(raw_b).values()} == {key_id(KEY_B)}
    assert contents(SealedStorage(raw_b, AesGcmSeal([KEY_B]))) == docs


def test_copy_of_an_empty_storage() -> None:
    target = CountingStorage(MemoryStorage())
    assert copy_documents(MemoryStorage(), target) == 0
    assert target.commits == []


def test_copy_refuses_a_non_empty_target() -> None:
    source, target = MemoryStorage(), MemoryStorage()
    fill(source, sample(5))
    ops.put(target, "zzz/already-here", {"x": 1})
    with pytest.raises(ValueError, match="target storage is not empty"):
        copy_documents(source, target)
    assert target.list("") == ["zzz/already-here"]
    with pytest.raises(ValueError, match="not empty"):
        copy_documents(source, source)


def test_copy_refuses_a_target_written_during_the_copy() -> None:
    source, raw_target = MemoryStorage(), MemoryStorage()
    fill(source, sample(10))

    class Intruder(CountingStorage):
        def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
            if not self.commits:
                ops.put(self.inner, "nonce/0005", {"intruder": True})
            return super().commit(operations)

    with pytest.raises(ValueError, match="written to during the copy"):
        copy_documents(source, Intruder(raw_target), batch=100)
    assert raw_target.list("") == ["nonce/0005"]  # the batch went in whole or not at all


def test_copy_skips_documents_deleted_meanwhile() -> None:
    source = MemoryStorage()
    fill(source, sample(6))

    class Vanishing(CountingStorage):
        def read(self, key: str) -> Document | None:
            return None if key == "keys/hmac" else self.inner.read(key)

    target = MemoryStorage()
    assert copy_documents(Vanishing(source), target) == 5
    assert "keys/hmac" not in target.list("")


@pytest.mark.parametrize("batch", [0, -1, True])
def test_copy_and_reseal_need_a_positive_batch(batch: int) -> None:
    with pytest.raises(ValueError, match="batch"):
        copy_documents(MemoryStorage(), MemoryStorage(), batch=batch)
    with pytest.raises(ValueError, match="batch"):
        reseal(MemoryStorage(), AesGcmSeal([KEY_A]), batch=batch)


# --- reseal -----------------------------------------------------------------------------


def test_reseal_seals_plain_documents() -> None:
    docs = sample(12)
    raw = CountingStorage(MemoryStorage())
    fill(raw, docs)
    raw.commits.clear()
    seal = AesGcmSeal([KEY_A])
    assert reseal(raw, seal, batch=5) == 12
    assert raw.commits == [5, 5, 2]
    assert {sealed_key_id(v) for v, _ in contents(raw).values()} == {key_id(KEY_A)}
    assert contents(SealedStorage(raw, seal)) == docs
    assert reseal(raw, seal) == 0  # nothing left to do
    assert raw.commits == [5, 5, 2]


def test_rotation_and_reseal() -> None:
    docs = sample(15)
    raw = MemoryStorage()
    fill(SealedStorage(raw, AesGcmSeal([KEY_A])), docs)
    # Reopened with [B, A]: old documents read, new writes use B.
    rotated = AesGcmSeal([KEY_B, KEY_A])
    storage = SealedStorage(raw, rotated)
    assert contents(storage) == docs
    ops.put(storage, "config/new", {"written": "with B"})
    docs["config/new"] = ({"written": "with B"}, None)
    new = raw.read("config/new")
    assert new is not None
    assert sealed_key_id(new.value) == key_id(KEY_B)
    # A plain document left over from before the seal was configured.
    ops.put(raw, "legacy/plain", {"p": 1}, expires_at=77.0)
    docs["legacy/plain"] = ({"p": 1}, 77.0)
    before = {key: raw.read(key) for key in raw.list("")}
    assert reseal(raw, rotated, batch=4) == 15 + 1  # all of A's, the plain one; not config/new
    after = {key: raw.read(key) for key in raw.list("")}
    assert {sealed_key_id(d.value) for d in after.values() if d} == {key_id(KEY_B)}
    for key, document in after.items():
        old = before[key]
        assert document is not None
        assert old is not None
        assert document.expires_at == old.expires_at
        assert (document.version == old.version) == (key == "config/new")
    # B alone now reads everything; A alone reads nothing.
    assert contents(SealedStorage(raw, AesGcmSeal([KEY_B]))) == docs
    with pytest.raises(InternalError, match="cannot unseal"):
        SealedStorage(raw, AesGcmSeal([KEY_A])).read("config/client")


def test_reseal_refuses_documents_under_an_unknown_key() -> None:
    raw = MemoryStorage()
    fill(SealedStorage(raw, AesGcmSeal([KEY_C])), sample(3))
    with pytest.raises(InternalError, match="cannot unseal") as info:
        reseal(raw, AesGcmSeal([KEY_B, KEY_A]))
    assert TOKEN not in info.value.message
    assert SECRET_KEY not in info.value.message
    assert {sealed_key_id(v) for v, _ in contents(raw).values()} == {key_id(KEY_C)}


def test_reseal_retries_documents_changed_meanwhile() -> None:
    docs = sample(10)
    raw = MemoryStorage()
    fill(SealedStorage(raw, AesGcmSeal([KEY_A])), docs)
    rotated = AesGcmSeal([KEY_B, KEY_A])

    class Racing(CountingStorage):
        """Before the first commit, a server (still on key A) rewrites one document and
        deletes another; a server already on [B, A] rewrites a third."""

        def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
            if not self.commits:
                ops.put(SealedStorage(self.inner, AesGcmSeal([KEY_A])), "nonce/0001", {"n": -1})
                ops.delete(self.inner, "nonce/0002")
                ops.put(SealedStorage(self.inner, rotated), "nonce/0003", {"n": -3})
            return super().commit(operations)

    racing = Racing(raw)
    # Ten A documents: nonce/0002 is gone, nonce/0003 already under B.
    assert reseal(racing, rotated, batch=100) == 8
    assert racing.commits[0] == 10  # the failed batch, then one by one
    assert len(racing.commits) == 1 + 8
    docs["nonce/0001"] = ({"n": -1}, None)
    docs["nonce/0003"] = ({"n": -3}, None)
    del docs["nonce/0002"]
    assert contents(SealedStorage(raw, AesGcmSeal([KEY_B]))) == docs


# --- across real storages ---------------------------------------------------------------


def test_memory_to_sealed_sqlite_and_back(tmp_path: Path) -> None:
    docs = sample(1203)
    memory = MemoryStorage()
    fill(memory, docs)
    raw = SQLiteStorage(str(tmp_path / "sealed.db"))
    try:
        sealed = SealedStorage(raw, AesGcmSeal([KEY_A]))
        assert copy_documents(memory, sealed) == 1203
        assert contents(sealed) == docs
        assert all(is_sealed(v) for v, _ in contents(raw).values())
        # Expiry survives: the expiry index of the copy answers like the source's.
        assert [(d.key, d.expires_at) for d in sealed.expired("", 1100.0, 1000)] == [
            (d.key, d.expires_at) for d in memory.expired("", 1100.0, 1000)
        ]
        with pytest.raises(ValueError, match="not empty"):
            copy_documents(memory, sealed)
        back = MemoryStorage()
        assert copy_documents(sealed, back, batch=1000) == 1203
        assert contents(back) == docs
    finally:
        raw.close()


def test_reseal_a_plain_sqlite_file_in_place(tmp_path: Path) -> None:
    docs = sample(40)
    raw = SQLiteStorage(str(tmp_path / "plain.db"))
    try:
        fill(raw, docs)
        assert reseal(raw, AesGcmSeal([KEY_A]), batch=16) == 40
        rotated = AesGcmSeal([KEY_B, KEY_A])
        assert reseal(raw, rotated, batch=16) == 40
        assert reseal(raw, rotated) == 0
        assert contents(SealedStorage(raw, AesGcmSeal([KEY_B]))) == docs
    finally:
        raw.close()


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Storage]:
    """The module's PostgreSQL database as a storage, emptied before and after the test."""
    from aws_iam_backend.io.storage._sync.postgres import PostgresStorage

    storage = PostgresStorage(postgres_url, max_size=2)

    def clear() -> None:
        keys = storage.list("")
        for start in range(0, len(keys), 500):
            storage.commit([Delete(key) for key in keys[start : start + 500]])

    try:
        clear()
        yield storage
        clear()
    finally:
        storage.close()


def test_sqlite_to_postgresql_and_back(tmp_path: Path, postgres: Storage) -> None:
    docs = sample(1234)
    sqlite = SQLiteStorage(str(tmp_path / "plain.db"))
    back = SQLiteStorage(str(tmp_path / "back.db"))
    try:
        # An unsealed SQLite file moves into a sealed PostgreSQL: only the target is wrapped.
        fill(sqlite, docs)
        sealed_pg = SealedStorage(postgres, AesGcmSeal([KEY_A]))
        assert copy_documents(sqlite, sealed_pg) == 1234
        assert contents(sealed_pg) == docs
        assert all(is_sealed(v) for v, _ in contents(postgres).values())
        assert [(d.key, d.expires_at) for d in sealed_pg.expired("", 1100.0, 2000)] == [
            (d.key, d.expires_at) for d in sqlite.expired("", 1100.0, 2000)
        ]
        with pytest.raises(ValueError, match="not empty"):
            copy_documents(sqlite, sealed_pg)
        # And back, sealed on both sides under different keys.
        sealed_back = SealedStorage(back, AesGcmSeal([KEY_B]))
        assert copy_documents(sealed_pg, sealed_back, batch=100) == 1234
        assert contents(sealed_back) == docs
        with pytest.raises(ValueError, match="not empty"):
            copy_documents(sealed_pg, sealed_back)
    finally:
        sqlite.close()
        back.close()


def test_reseal_postgresql_in_place(postgres: Storage) -> None:
    docs = sample(30)
    fill(SealedStorage(postgres, AesGcmSeal([KEY_A])), docs)
    rotated = AesGcmSeal([KEY_B, KEY_A])
    assert reseal(postgres, rotated, batch=7) == 30
    assert {sealed_key_id(v) for v, _ in contents(postgres).values()} == {key_id(KEY_B)}
    assert contents(SealedStorage(postgres, AesGcmSeal([KEY_B]))) == docs
