"""Secrets at rest: AesGcmSeal, load_seal and SealedStorage."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from aws_iam_backend.errors import ConflictError, InternalError
from aws_iam_backend.io.protocols import ABSENT, Delete, JSONDict, Put, Storage
from aws_iam_backend.io.seal import (
    KEY_BYTES,
    UNSEAL_FAILED,
    AesGcmSeal,
    Seal,
    generate_key,
    is_sealed,
    key_id,
    load_seal,
    sealed_key_id,
)
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage._sync.sealed import UNSEALED_DOCUMENT, SealedStorage
from aws_iam_backend.io.storage.memory import MemoryStorage

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
KEY_C = b"\xee" * 32

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEYsecret"
TOKEN = "hvs.CAESIPlaintextTokenThatMustNeverBeStored0123"
CLIENT_CONFIG: JSONDict = {"access_key": "AKIAEXAMPLE", "secret_key": SECRET_KEY, "max_retries": 3}
TOKEN_RECORD: JSONDict = {"token": TOKEN, "policies": ["default"], "ttl": 3600}


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def key_material(*keys: bytes) -> list[str]:
    """Strings that would betray a key if they appeared in a message or repr."""
    out: list[str] = []
    for key in keys:
        out += [b64(key), key.hex(), repr(key), b64(key)[:12], key.hex()[:16]]
    return out


def assert_no_secret(text: str, *keys: bytes) -> None:
    for needle in key_material(*keys):
        assert needle not in text
    for plain in (SECRET_KEY, TOKEN):
        assert plain not in text


def flip(data: str, index: int) -> str:
    raw = bytearray(base64.b64decode(data))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# --- AesGcmSeal -------------------------------------------------------------------------


def test_round_trip_and_envelope_shape() -> None:
    seal = AesGcmSeal([KEY_A])
    stored = seal.seal("config/client", CLIENT_CONFIG)
    assert set(stored) == {"sealed"}
    envelope = stored["sealed"]
    assert set(envelope) == {"v", "kid", "data"}
    assert envelope["v"] == 1
    assert envelope["kid"] == seal.active_key_id == key_id(KEY_A)
    assert len(base64.b64decode(envelope["data"])) >= 12 + 16
    assert_no_secret(json.dumps(stored), KEY_A)
    assert seal.unseal("config/client", stored) == CLIENT_CONFIG
    assert is_sealed(stored)
    assert seal.is_sealed(stored)
    assert sealed_key_id(stored) == seal.key_id_of(stored) == key_id(KEY_A)


def test_round_trip_of_awkward_values() -> None:
    seal = AesGcmSeal([KEY_A])
    for value in ({}, {"u": "žluťoučký 🐴", "n": None, "f": 1.5, "l": [1, {"x": []}]}):
        assert seal.unseal("k", seal.seal("k", value)) == value
    # Keys are bound whatever characters they hold.
    odd_key = "role/ž/\udcff"
    assert seal.unseal(odd_key, seal.seal(odd_key, {"a": 1})) == {"a": 1}


def test_non_json_value_is_refused_without_leaking() -> None:
    seal = AesGcmSeal([KEY_A])
    with pytest.raises(InternalError, match="JSON"):
        seal.seal("k", {"x": float("nan")})
    with pytest.raises(InternalError, match="JSON"):
        seal.seal("k", {"x": object()})


def test_nonce_is_random_per_value() -> None:
    seal = AesGcmSeal([KEY_A])
    datas = {seal.seal("k", CLIENT_CONFIG)["sealed"]["data"] for _ in range(50)}
    assert len(datas) == 50
    nonces = {base64.b64decode(d)[:12] for d in datas}
    assert len(nonces) == 50


def test_key_id_is_a_label_hash_not_the_key() -> None:
    kid = key_id(KEY_A)
    assert len(kid) == 16
    int(kid, 16)
    assert kid not in (KEY_A.hex(), KEY_A.hex()[:16])
    assert key_id(KEY_A) != key_id(KEY_B)


def test_repr_shows_no_key() -> None:
    seal = AesGcmSeal([KEY_A, KEY_B])
    text = repr(seal)
    assert key_id(KEY_A) in text
    assert_no_secret(text, KEY_A, KEY_B)
    assert_no_secret(repr(SealedStorage(MemoryStorage(), seal)), KEY_A, KEY_B)
    assert not any(isinstance(v, bytes) for v in vars(seal).values())


@pytest.mark.parametrize(
    ("keys", "error", "message"),
    [
        ([], ValueError, "at least one key"),
        ([b"short"], ValueError, "seal key 1 must be 32 bytes, not 5"),
        ([KEY_A, b"\x00" * 31], ValueError, "seal key 2 must be 32 bytes, not 31"),
        ([KEY_A, b"\x00" * 33], ValueError, "seal key 2 must be 32 bytes, not 33"),
        ([KEY_A, KEY_B, KEY_A], ValueError, "seal key 3 repeats an earlier key"),
        ([b64(KEY_A)], TypeError, "seal key 1 is not bytes"),
    ],
)
def test_bad_keys_are_refused(keys: list[bytes], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        AesGcmSeal(keys)
    assert_no_secret(str(info.value), KEY_A, KEY_B)


def test_one_key_instead_of_a_list_is_refused() -> None:
    with pytest.raises(TypeError, match="sequence of keys"):
        AesGcmSeal(KEY_A)  # type: ignore[arg-type]


def test_tampering_any_byte_is_refused() -> None:
    seal = AesGcmSeal([KEY_A])
    stored = seal.seal("config/client", CLIENT_CONFIG)
    data = stored["sealed"]["data"]
    length = len(base64.b64decode(data))
    for index in range(length):  # nonce, ciphertext and tag alike
        tampered = {"sealed": {**stored["sealed"], "data": flip(data, index)}}
        with pytest.raises(InternalError) as info:
            seal.unseal("config/client", tampered)
        assert info.value.message == UNSEAL_FAILED


@pytest.mark.parametrize(
    "change",
    [
        {"data": ""},
        {"data": "not base64!!"},
        {"data": base64.b64encode(b"x" * 20).decode()},  # shorter than nonce + tag
        {"v": 2},
        {"v": True},
        {"v": "1"},
        {"kid": "0123456789abcdef"},  # a key this seal does not hold
        {"kid": 7},
        {"data": None},
    ],
)
def test_malformed_envelopes_are_refused(change: JSONDict) -> None:
    seal = AesGcmSeal([KEY_A])
    stored = seal.seal("k", TOKEN_RECORD)
    broken = {"sealed": {**stored["sealed"], **change}}
    with pytest.raises(InternalError) as info:
        seal.unseal("k", broken)
    assert info.value.message == UNSEAL_FAILED


@pytest.mark.parametrize(
    "stored", [{}, {"sealed": "x"}, {"sealed": {}, "other": 1}, CLIENT_CONFIG]
)
def test_unseal_of_a_non_envelope_is_refused(stored: JSONDict) -> None:
    with pytest.raises(InternalError) as info:
        AesGcmSeal([KEY_A]).unseal("k", stored)
    assert info.value.message == UNSEAL_FAILED


def test_value_moved_to_another_key_is_refused() -> None:
    seal = AesGcmSeal([KEY_A])
    stored = seal.seal("token/aaaa", TOKEN_RECORD)
    for other in ("token/bbbb", "token/aaaa/", "token/aaa", "", "TOKEN/aaaa"):
        with pytest.raises(InternalError) as info:
            seal.unseal(other, stored)
        assert info.value.message == UNSEAL_FAILED


def test_wrong_key_is_refused() -> None:
    stored = AesGcmSeal([KEY_A]).seal("k", CLIENT_CONFIG)
    with pytest.raises(InternalError) as info:
        AesGcmSeal([KEY_B]).unseal("k", stored)
    assert info.value.message == UNSEAL_FAILED
    # Even a forged kid naming the other key does not open it.
    forged = {"sealed": {**stored["sealed"], "kid": key_id(KEY_B)}}
    with pytest.raises(InternalError) as info:
        AesGcmSeal([KEY_B]).unseal("k", forged)
    assert info.value.message == UNSEAL_FAILED


def test_rotation_old_keys_decrypt_first_key_encrypts() -> None:
    old = AesGcmSeal([KEY_A])
    stored = old.seal("k", CLIENT_CONFIG)
    rotated = AesGcmSeal([KEY_B, KEY_A])
    assert rotated.active_key_id == key_id(KEY_B)
    assert rotated.key_ids == (key_id(KEY_B), key_id(KEY_A))
    assert rotated.unseal("k", stored) == CLIENT_CONFIG
    fresh = rotated.seal("k", CLIENT_CONFIG)
    assert fresh["sealed"]["kid"] == key_id(KEY_B)
    with pytest.raises(InternalError):
        old.unseal("k", fresh)


def test_aes_gcm_seal_satisfies_the_protocol() -> None:
    seal: Seal = AesGcmSeal([KEY_A])
    assert seal.active_key_id == key_id(KEY_A)


def test_is_sealed_helpers() -> None:
    assert not is_sealed(CLIENT_CONFIG)
    assert not is_sealed({})
    assert not is_sealed({"sealed": True})
    assert not is_sealed({"sealed": {}, "extra": 1})
    assert is_sealed({"sealed": {}})
    assert sealed_key_id({"sealed": {}}) is None
    assert sealed_key_id(CLIENT_CONFIG) is None


# --- generate_key / load_seal -----------------------------------------------------------


def test_generate_key() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == KEY_BYTES
    AesGcmSeal([base64.b64decode(k) for k in keys])


def write_key_file(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_load_seal_from_file(tmp_path: Path) -> None:
    text = (
        "# seal keys, newest first\n"
        f"\n  {b64(KEY_B)}  \n"
        "# the previous key, kept until `storage reseal` has run\n"
        f"{b64(KEY_A)}\n\n"
    )
    seal = load_seal(write_key_file(tmp_path / "seal.key", text), None, {})
    assert seal.key_ids == (key_id(KEY_B), key_id(KEY_A))
    assert seal.unseal("k", AesGcmSeal([KEY_A]).seal("k", CLIENT_CONFIG)) == CLIENT_CONFIG


def test_load_seal_accepts_generated_and_openssl_style_keys(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "k", generate_key() + "\r\n")
    assert len(load_seal(path, None, {}).key_ids) == 1


def test_load_seal_from_environment() -> None:
    environ = {"AWS_AUTH_SEAL_KEYS": f"{b64(KEY_A)}\n{b64(KEY_C)}"}
    seal = load_seal(None, "AWS_AUTH_SEAL_KEYS", environ)
    assert seal.key_ids == (key_id(KEY_A), key_id(KEY_C))


BAD_KEY_TEXTS = [
    ("", "holds no seal key"),
    ("\n\n   \n", "holds no seal key"),
    ("# only a comment\n", "holds no seal key"),
    (f"{b64(KEY_A)}\nnot-base64-at-all!\n", "line 2: not a base64 seal key"),
    (f"# c\n{b64(KEY_A)[:-2]}\n", "line 2: not a base64 seal key"),
    (f"{b64(KEY_A)}\n{b64(KEY_B)} {b64(KEY_C)}\n", "line 2: not a base64 seal key"),
    (f"{b64(KEY_A[:16])}\n", "line 1: a seal key must be 32 bytes, not 16"),
    (f"{b64(KEY_A + KEY_B)}\n", "line 1: a seal key must be 32 bytes, not 64"),
    (f"{b64(KEY_A)}\n\n{b64(KEY_B)}\n{b64(KEY_A)}\n", "line 4: repeats the key on line 1"),
]
# Ids of their own: the test's tmp_path is named after the id, which would hold the key.
BAD_KEY_IDS = [f"bad{number}" for number in range(len(BAD_KEY_TEXTS))]


@pytest.mark.parametrize(("text", "message"), BAD_KEY_TEXTS, ids=BAD_KEY_IDS)
def test_bad_key_file(tmp_path: Path, text: str, message: str) -> None:
    path = write_key_file(tmp_path / "seal.key", text)
    with pytest.raises(ValueError, match=message) as info:
        load_seal(path, None, {})
    assert f"seal key file {path}" in str(info.value)
    assert_no_secret(str(info.value), KEY_A, KEY_B, KEY_C)
    assert "not-base64-at-all" not in str(info.value)


@pytest.mark.parametrize(("text", "message"), BAD_KEY_TEXTS, ids=BAD_KEY_IDS)
def test_bad_key_variable(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        load_seal(None, "SEAL_KEYS", {"SEAL_KEYS": text})
    assert "seal key variable SEAL_KEYS" in str(info.value)
    assert_no_secret(str(info.value), KEY_A, KEY_B, KEY_C)
    assert "not-base64-at-all" not in str(info.value)


def test_unset_key_variable() -> None:
    with pytest.raises(ValueError, match="seal key variable SEAL_KEYS is not set"):
        load_seal(None, "SEAL_KEYS", {"OTHER": b64(KEY_A)})


def test_exactly_one_key_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        load_seal(None, None, {})
    with pytest.raises(ValueError, match="exactly one"):
        load_seal("/nonexistent", "SEAL_KEYS", {"SEAL_KEYS": b64(KEY_A)})


def test_missing_key_file(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.key")
    with pytest.raises(ValueError, match=f"cannot read seal key file {path}: "):
        load_seal(path, None, {})


def test_key_file_that_is_a_directory(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    with pytest.raises(ValueError, match="seal key file"):
        load_seal(str(tmp_path), None, {})


def test_key_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "seal.key"
    path.write_bytes(b"\xff\xfe" + KEY_A)
    path.chmod(0o600)
    with pytest.raises(ValueError, match="is not text") as info:
        load_seal(str(path), None, {})
    assert_no_secret(str(info.value), KEY_A)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666, 0o620, 0o601, 0o610])
def test_key_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path / "seal.key", b64(KEY_A) + "\n", mode)
    with pytest.raises(ValueError, match=f"chmod 600 {path}") as info:
        load_seal(path, None, {})
    assert f"{mode:04o}" in str(info.value)
    assert "group or others" in str(info.value)
    assert_no_secret(str(info.value), KEY_A)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_key_file_is_accepted(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path / "seal.key", b64(KEY_A) + "\n", mode)
    assert load_seal(path, None, {}).active_key_id == key_id(KEY_A)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode"
)
def test_unreadable_key_file(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "seal.key", b64(KEY_A) + "\n", 0o000)
    with pytest.raises(ValueError, match=f"cannot read seal key file {path}: Permission denied"):
        load_seal(path, None, {})


def test_unreadable_key_file_whoever_runs_the_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aws_iam_backend.io.seal as seal_module

    path = write_key_file(tmp_path / "seal.key", b64(KEY_A) + "\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(seal_module, "open", refuse, raising=False)
    with pytest.raises(ValueError, match=f"cannot read seal key file {path}: Permission denied"):
        load_seal(path, None, {})


# --- SealedStorage ----------------------------------------------------------------------


def sealed_memory(*keys: bytes) -> tuple[MemoryStorage, SealedStorage]:
    raw = MemoryStorage()
    return raw, SealedStorage(raw, AesGcmSeal(list(keys) or [KEY_A]))


def test_sealed_storage_round_trip() -> None:
    raw, storage = sealed_memory()
    ops.put(storage, "config/client", CLIENT_CONFIG)
    assert ops.get(storage, "config/client") == CLIENT_CONFIG
    stored = raw.read("config/client")
    assert stored is not None
    assert is_sealed(stored.value)
    assert SECRET_KEY not in json.dumps(stored.value)
    assert storage.read("absent") is None


def test_versions_expiry_and_listing_pass_through() -> None:
    raw, storage = sealed_memory()
    (v1,) = storage.commit([Put("token/a", TOKEN_RECORD, expires_at=100.0)])
    outer, inner = storage.read("token/a"), raw.read("token/a")
    assert outer is not None
    assert inner is not None
    assert outer.version == inner.version == v1
    assert outer.expires_at == inner.expires_at == 100.0
    assert outer.key == "token/a"
    v2, v3 = storage.commit([Put("token/a", TOKEN_RECORD, expect=v1), Put("token/b", {"x": 1})])
    assert v2 > v1
    assert storage.list("token/") == raw.list("token/") == ["a", "b"]
    assert storage.list("") == ["token/a", "token/b"]
    (doc_b,) = [d for d in [storage.read("token/b")] if d is not None]
    assert doc_b.version == v3


def test_conditions_pass_through() -> None:
    _, storage = sealed_memory()
    (version,) = storage.commit([Put("k", {"n": 1}, expect=ABSENT)])
    with pytest.raises(ConflictError):
        storage.commit([Put("k", {"n": 2}, expect=ABSENT)])
    with pytest.raises(ConflictError):
        storage.commit([Put("other", {"n": 1}), Put("k", {"n": 2}, expect=version + 1000)])
    assert storage.read("other") is None  # all or nothing
    (new,) = storage.commit([Put("k", {"n": 2}, expect=version)])
    with pytest.raises(ConflictError):
        storage.commit([Delete("k", expect=version)])
    assert storage.commit([Delete("k", expect=new)]) == (0,)
    assert storage.read("k") is None
    assert ops.create(storage, "k", {"n": 3})
    assert not ops.create(storage, "k", {"n": 4})

    def bump(document: object) -> list[Put]:
        current = storage.read("k")
        assert current is not None
        return [Put("k", {"n": current.value["n"] + 1})]

    ops.update(storage, "k", bump)
    assert ops.get(storage, "k") == {"n": 4}


def test_expired_unseals() -> None:
    raw, storage = sealed_memory()
    storage.commit(
        [
            Put("token/a", {**TOKEN_RECORD, "n": 1}, expires_at=10.0),
            Put("token/b", {**TOKEN_RECORD, "n": 2}, expires_at=20.0),
            Put("token/c", {**TOKEN_RECORD, "n": 3}, expires_at=30.0),
            Put("other/d", {"n": 4}, expires_at=5.0),
        ]
    )
    due = storage.expired("token/", 25.0, 10)
    assert [(d.key, d.value["n"], d.expires_at) for d in due] == [
        ("token/a", 1, 10.0),
        ("token/b", 2, 20.0),
    ]
    assert [d.version for d in due] == [d.version for d in raw.expired("token/", 25.0, 10)]


def test_unsealed_document_is_refused() -> None:
    raw, storage = sealed_memory()
    ops.put(raw, "config/client", CLIENT_CONFIG, expires_at=1.0)
    with pytest.raises(InternalError) as info:
        storage.read("config/client")
    assert info.value.message == UNSEALED_DOCUMENT
    assert "aws-iam-backend storage reseal" in info.value.message
    assert "config/client" not in info.value.message
    assert_no_secret(info.value.message)
    with pytest.raises(InternalError, match="unsealed document"):
        storage.expired("", 2.0, 10)


def test_document_moved_in_storage_is_refused() -> None:
    raw, storage = sealed_memory()
    ops.put(storage, "token/aaaa", TOKEN_RECORD)
    stolen = raw.read("token/aaaa")
    assert stolen is not None
    ops.put(raw, "token/bbbb", stolen.value)
    with pytest.raises(InternalError) as info:
        storage.read("token/bbbb")
    assert info.value.message == UNSEAL_FAILED
    assert ops.get(storage, "token/aaaa") == TOKEN_RECORD


def test_tampered_document_in_storage_is_refused() -> None:
    raw, storage = sealed_memory()
    ops.put(storage, "config/client", CLIENT_CONFIG)
    stored = raw.read("config/client")
    assert stored is not None
    envelope = stored.value["sealed"]
    ops.put(raw, "config/client", {"sealed": {**envelope, "data": flip(envelope["data"], 20)}})
    with pytest.raises(InternalError) as info:
        storage.read("config/client")
    assert info.value.message == UNSEAL_FAILED


def test_wrong_key_storage_is_refused() -> None:
    raw, storage = sealed_memory(KEY_A)
    ops.put(storage, "config/client", CLIENT_CONFIG)
    with pytest.raises(InternalError) as info:
        SealedStorage(raw, AesGcmSeal([KEY_B])).read("config/client")
    assert info.value.message == UNSEAL_FAILED
    assert_no_secret(info.value.message, KEY_A, KEY_B)


def test_rotation_through_storage() -> None:
    raw, storage_a = sealed_memory(KEY_A)
    ops.put(storage_a, "config/client", CLIENT_CONFIG)
    ops.put(storage_a, "token/t", TOKEN_RECORD, expires_at=50.0)
    storage_ba = SealedStorage(raw, AesGcmSeal([KEY_B, KEY_A]))
    assert ops.get(storage_ba, "config/client") == CLIENT_CONFIG
    assert ops.get(storage_ba, "token/t") == TOKEN_RECORD
    ops.put(storage_ba, "config/new", {"n": 1})
    new = raw.read("config/new")
    assert new is not None
    assert sealed_key_id(new.value) == key_id(KEY_B)
    # Until resealed, documents under A need A; see tests/test_storage_migrate.py.
    storage_b = SealedStorage(raw, AesGcmSeal([KEY_B]))
    assert ops.get(storage_b, "config/new") == {"n": 1}
    with pytest.raises(InternalError, match="cannot unseal"):
        storage_b.read("config/client")


def test_sealed_storage_under_prefixed_views() -> None:
    from aws_iam_backend.io.storage._sync.prefixed import PrefixedStorage

    raw, storage = sealed_memory()
    view = PrefixedStorage(storage, "auth/aws/")
    ops.put(view, "config/client", CLIENT_CONFIG)
    assert ops.get(view, "config/client") == CLIENT_CONFIG
    # Bound to the full key, so a raw-level reseal agrees with it.
    stored = raw.read("auth/aws/config/client")
    assert stored is not None
    assert AesGcmSeal([KEY_A]).unseal("auth/aws/config/client", stored.value) == CLIENT_CONFIG


# --- nothing in the clear on disk -------------------------------------------------------


def raw_sqlite_bytes(path: Path) -> bytes:
    """The database file and whichever of its -wal, -shm and -journal exist."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = Path(str(path) + suffix)
        if part.exists():
            out += part.read_bytes()
    return out


def write_secrets(storage: Storage) -> None:
    ops.put(storage, "config/client", CLIENT_CONFIG)
    ops.put(storage, "token/t1", TOKEN_RECORD, expires_at=100.0)
    # Rewrites and deletes leave old page images in the WAL: they must be sealed too.
    ops.put(storage, "config/client", {**CLIENT_CONFIG, "max_retries": 4})
    ops.put(storage, "token/t2", TOKEN_RECORD)
    ops.delete(storage, "token/t2")


def test_sqlite_files_hold_no_plaintext(tmp_path: Path) -> None:
    from aws_iam_backend.io.storage.sqlite import SQLiteStorage

    path = tmp_path / "sealed.db"
    raw = SQLiteStorage(str(path))
    storage = SealedStorage(raw, AesGcmSeal([KEY_A]))
    write_secrets(storage)
    assert ops.get(storage, "config/client") == {**CLIENT_CONFIG, "max_retries": 4}
    assert Path(str(path) + "-wal").exists()
    data = raw_sqlite_bytes(path)
    assert b"config/client" in data  # the test reads the right bytes: keys are not sealed
    for secret in (SECRET_KEY, TOKEN):
        assert secret.encode() not in data
    raw.close()
    data = raw_sqlite_bytes(path)
    for secret in (SECRET_KEY, TOKEN):
        assert secret.encode() not in data
    for needle in key_material(KEY_A):
        assert needle.encode() not in data


def test_plain_sqlite_files_would_hold_plaintext(tmp_path: Path) -> None:
    """The control for the test above: without the seal the secrets are in the files."""
    from aws_iam_backend.io.storage.sqlite import SQLiteStorage

    path = tmp_path / "plain.db"
    raw = SQLiteStorage(str(path))
    write_secrets(raw)
    data = raw_sqlite_bytes(path)
    assert SECRET_KEY.encode() in data
    assert TOKEN.encode() in data
    raw.close()


def test_postgres_rows_hold_no_plaintext(postgres_url: str) -> None:
    import psycopg
    from psycopg import sql

    from aws_iam_backend.io.storage._sync.postgres import KV_TABLE, PostgresStorage

    raw = PostgresStorage(postgres_url, max_size=2)
    try:
        for key in raw.list(""):
            ops.delete(raw, key)
        write_secrets(SealedStorage(raw, AesGcmSeal([KEY_A])))
        ops.put(raw, "control/plain", {"note": "unsealed control row"})
        query = sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(KV_TABLE))
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
            rows = [str(row[0]) for row in conn.execute(query).fetchall()]
        assert len(rows) == 3  # config/client, token/t1, control/plain
        assert any("unsealed control row" in row for row in rows)  # reading the right table
        for row in rows:
            assert SECRET_KEY not in row
            assert TOKEN not in row
            assert_no_secret(row, KEY_A)
        assert ops.get(SealedStorage(raw, AesGcmSeal([KEY_A])), "token/t1") == TOKEN_RECORD
    finally:
        raw.close()
