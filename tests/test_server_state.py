"""The server's shared state: coherence of several VaultAPIs over one storage, health when
storage or cache fails, tidy, the ``[cache]``/``[seal]`` configuration, open_state over
sealed stores, and the ``storage migrate|reseal`` and ``seal generate`` commands."""

from __future__ import annotations

import base64
import builtins
import functools
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aws_iam_backend import Backend, MemoryStorage, cli
from aws_iam_backend.cli import main
from aws_iam_backend.drivers.ratelimit import LoginRateLimiter, RateLimiter, RateLimits
from aws_iam_backend.drivers.replay import REPLAY_PREFIX, MemoryReplayCache, ReplayCache
from aws_iam_backend.errors import InvalidRequestError, StorageUnavailableError
from aws_iam_backend.io.protocols import Document, JSONDict, Operation, Storage
from aws_iam_backend.io.seal import AesGcmSeal, is_sealed
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage._sync.sealed import SealedStorage
from aws_iam_backend.io.storage.sqlite import SQLiteStorage
from aws_iam_backend.server._sync.api import VaultAPI
from aws_iam_backend.server.config import ConfigError, ServerConfig, config_from_document
from aws_iam_backend.server.messages import HTTPRequest
from aws_iam_backend.server.state import StateError, open_state
from aws_iam_backend.vault.tokens import TokenSpec
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.moto_server import Keys
from tests.support.payloads import botocore_payload

ROOT = "root-token-Zq7vK2mXw9LpR4tN8bYc"
ARN = "arn:aws:iam::123456789012:user/alice"
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "secret")
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEYsecret"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


# ------------------------------------------------------------------------ helpers


class FakeClock:
    """A wall clock that moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class SwitchableStorage:
    """``inner``, or StorageUnavailableError on every call while ``failing``."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.failing = False

    def _check(self) -> None:
        if self.failing:
            raise StorageUnavailableError("storage error: the database is unavailable")

    def read(self, key: str) -> Document | None:
        self._check()
        return self.inner.read(key)

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        self._check()
        return self.inner.commit(operations)

    def list(self, prefix: str) -> list[str]:
        self._check()
        return self.inner.list(prefix)

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        self._check()
        return self.inner.expired(prefix, before, limit)


class FakeSharedCache:
    """An in-process SharedCache whose ping can be made to fail."""

    def __init__(self) -> None:
        self.failing = False
        self._replay = MemoryReplayCache()

    def replay_cache(self) -> ReplayCache:
        return self._replay

    def rate_limiter(self, limits: RateLimits, scope: str) -> RateLimiter:
        return LoginRateLimiter(limits)

    def ping(self) -> None:
        if self.failing:
            raise StorageUnavailableError("cache error: Redis at 127.0.0.1:6379 is unavailable")


def make_api(
    storage: Storage | None = None,
    *,
    coherence_interval: float = 0.25,
    clock: FakeClock | None = None,
    cache: FakeSharedCache | None = None,
) -> VaultAPI:
    factory = functools.partial(
        Backend,
        transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
        iam=FakeIam(),
    )
    api = VaultAPI(
        storage=storage if storage is not None else MemoryStorage(),
        root_token=ROOT,
        backend_factory=factory,
        coherence_interval=coherence_interval,
        clock=clock,
        cache=cache,
    )
    api.mounts.ensure("aws")
    return api


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.json: Any = json.loads(body) if body else None


def call(
    api: VaultAPI, method: str, path: str, body: Any = None, *, token: str | None = None
) -> Reply:
    headers = {} if token is None else {"x-vault-token": token}
    data = b"" if body is None else json.dumps(body).encode()
    response = api.handle(HTTPRequest(method, path, "", headers, data, remote_addr="127.0.0.1"))
    return Reply(response.status, dict(response.headers), response.body)


def write_role(api: VaultAPI, **fields: Any) -> None:
    body = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False, **fields}
    assert call(api, "POST", "/v1/auth/aws/role/alice", body, token=ROOT).status == 204


def login(api: VaultAPI) -> Reply:
    return call(api, "POST", "/v1/auth/aws/login", botocore_payload(KEYS, role="alice"))


# ------------------------------------------------------- coherence between APIs


def test_a_role_written_on_one_api_is_used_by_the_other_after_the_interval() -> None:
    shared = MemoryStorage()
    first = make_api(shared, coherence_interval=0.05)
    second = make_api(shared, coherence_interval=0.05)
    assert login(second).status == 400  # no such role yet (and that answer is cached)
    write_role(first, token_ttl="10m")
    time.sleep(0.06)
    reply = login(second)
    assert reply.status == 200, reply.json
    assert reply.json["auth"]["lease_duration"] == 600
    # The token works on either API: tokens are never cached.
    token = reply.json["auth"]["client_token"]
    assert call(first, "GET", "/v1/auth/token/lookup-self", token=token).status == 200
    # A change is picked up the same way.
    write_role(first, token_ttl="20m")
    time.sleep(0.06)
    assert login(second).json["auth"]["lease_duration"] == 1200


def test_the_other_api_keeps_its_cached_role_until_the_interval_passes() -> None:
    shared = MemoryStorage()
    first = make_api(shared, coherence_interval=3600)
    second = make_api(shared, coherence_interval=3600)
    assert login(second).status == 400
    write_role(first)
    assert login(first).status == 200  # the writer sees its change at once
    assert login(second).status == 400  # the other process within its interval
    read = call(second, "GET", "/v1/auth/aws/role/alice", token=ROOT)
    assert read.status == 404


def test_a_disabled_mount_stops_logins_on_the_other_api_at_once() -> None:
    """The mount table is cached, but a login on a mount disabled elsewhere is refused:
    the issuer rechecks the mount past the cache, and the token is not left behind."""
    shared = MemoryStorage()
    first = make_api(shared, coherence_interval=3600)
    second = make_api(shared, coherence_interval=3600)
    write_role(first)
    assert login(second).status == 200
    assert call(first, "DELETE", "/v1/sys/auth/aws", token=ROOT).status == 204
    refused = login(second)
    assert refused.status != 200
    assert shared.list("sys/token/token/") == []


# ------------------------------------------------------------------------ health


def test_health_is_503_while_storage_is_unavailable() -> None:
    storage = SwitchableStorage(MemoryStorage())
    # A long interval: health must read storage itself, not the cache.
    api = make_api(storage, coherence_interval=3600)
    assert call(api, "GET", "/v1/sys/health").status == 200
    storage.failing = True
    reply = call(api, "GET", "/v1/sys/health")
    assert reply.status == 503
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json == {"errors": ["storage error: the database is unavailable"]}
    head = call(api, "HEAD", "/v1/sys/health")
    assert (head.status, head.body) == (503, b"")
    storage.failing = False
    healthy = call(api, "GET", "/v1/sys/health")
    assert healthy.status == 200
    assert healthy.json["initialized"] is True
    assert call(api, "HEAD", "/v1/sys/health").status == 200


def test_other_requests_are_503_while_storage_is_unavailable() -> None:
    storage = SwitchableStorage(MemoryStorage())
    api = make_api(storage, coherence_interval=0)
    write_role(api)
    storage.failing = True
    reply = login(api)
    assert reply.status == 503
    assert reply.json == {"errors": ["storage error: the database is unavailable"]}
    storage.failing = False
    assert login(api).status == 200


def test_health_is_503_while_the_cache_is_unavailable() -> None:
    cache = FakeSharedCache()
    api = make_api(cache=cache)
    assert call(api, "GET", "/v1/sys/health").status == 200
    cache.failing = True
    reply = call(api, "GET", "/v1/sys/health")
    assert reply.status == 503
    assert reply.json == {"errors": ["cache error: Redis at 127.0.0.1:6379 is unavailable"]}
    cache.failing = False
    assert call(api, "GET", "/v1/sys/health").status == 200


# -------------------------------------------------------------------------- tidy


def spec(issued_at: datetime, ttl: int) -> TokenSpec:
    return TokenSpec(
        policies=("default",),
        token_policies=("default",),
        metadata={},
        internal_data={},
        display_name="aws-alice",
        ttl=ttl,
        max_ttl=0,
        explicit_max_ttl=0,
        period=0,
        num_uses=0,
        bound_cidrs=(),
        token_type="service",
        entity_id="",
        mount="aws/",
        role_name="alice",
        issued_at=issued_at,
    )


def test_tidy_removes_expired_tokens_and_claims_and_keeps_live_ones() -> None:
    storage = MemoryStorage()
    clock = FakeClock()
    api = make_api(storage, clock=clock)
    now = clock.now()
    dead = api.issuer.issue(spec(now - timedelta(hours=2), 3600))
    live = api.issuer.issue(spec(now, 3600))
    replay = api.mounts.replay_cache
    assert replay.claim("sig:old", now - timedelta(minutes=1))
    assert replay.claim("sig:fresh", now + timedelta(minutes=15))
    assert len(storage.list("sys/token/token/")) == 2
    assert len(storage.list(REPLAY_PREFIX)) == 2

    assert api.tidy() == 2  # one token, one claim
    assert len(storage.list("sys/token/token/")) == 1
    assert len(storage.list("sys/token/accessor/")) == 1  # the dead one's accessor went too
    assert len(storage.list(REPLAY_PREFIX)) == 1
    assert api.issuer.lookup(live.client_token or "") is not None
    assert api.issuer.lookup(dead.client_token or "") is None
    assert not replay.claim("sig:fresh", now + timedelta(minutes=15))  # still claimed
    assert api.tidy() == 0

    # Two hours on (by the API's clock) the live token has expired as well.
    clock.advance(7200)
    assert api.tidy() >= 1
    assert storage.list("sys/token/token/") == []
    assert storage.list("sys/token/accessor/") == []
    assert api.issuer.lookup(live.client_token or "") is None


def test_tidy_judges_replay_claims_by_the_api_clock() -> None:
    storage = MemoryStorage()
    clock = FakeClock()
    api = make_api(storage, clock=clock)
    assert api.mounts.replay_cache.claim("sig:x", clock.now() + timedelta(minutes=15))
    clock.advance(3600)
    assert api.tidy() == 1
    assert storage.list(REPLAY_PREFIX) == []


def test_tidy_fails_cleanly_while_storage_is_unavailable() -> None:
    storage = SwitchableStorage(MemoryStorage())
    api = make_api(storage)
    storage.failing = True
    with pytest.raises(StorageUnavailableError):
        api.tidy()
    storage.failing = False
    assert api.tidy() == 0


# ------------------------------------------------------------------ configuration

BASE: dict[str, Any] = {"listener": {"tls_disable": True}, "root_token": {"env": "ROOT_TOKEN"}}
ENV = {"ROOT_TOKEN": "s3cret-Zq7vK2mXw9LpR4tN8bYc"}
PG_URL = "postgresql://aws@127.0.0.1:1/vault"


def doc(**sections: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(BASE)), **sections}


def test_config_accepts_cache_and_seal_sections() -> None:
    config = config_from_document(
        doc(
            storage={"url": "sqlite:///s.db"},
            cache={"url": "redis://127.0.0.1:6379/0"},
            seal={"key_file": "/etc/seal.key"},
        ),
        ENV,
    )
    assert config.cache_url == "redis://127.0.0.1:6379/0"
    assert (config.seal_key_file, config.seal_key_env) == ("/etc/seal.key", None)
    assert "redis://" not in repr(config)  # the cache URL may hold a password
    by_env = config_from_document(doc(storage={"url": PG_URL}, seal={"key_env": "SEAL_KEYS"}), ENV)
    assert (by_env.storage_url, by_env.seal_key_file, by_env.seal_key_env) == (
        PG_URL,
        None,
        "SEAL_KEYS",
    )
    plain = config_from_document(doc(), ENV)
    assert (plain.cache_url, plain.seal_key_file, plain.seal_key_env) == (None, None, None)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"seal": {"key_file": "/k", "key_env": "K"}},
            "[seal]: set exactly one of 'key_file' or 'key_env'",
        ),
        ({"seal": {"key": "abc"}}, "[seal]: unknown key 'key'"),
        ({"seal": {"key_file": ""}}, "seal.key_file: expected a non-empty string"),
        ({"seal": "/k"}, "[seal] must be a table"),
        ({"cache": {"url": "redis://x", "password": "p"}}, "[cache]: unknown key 'password'"),
        ({"cache": {"url": ""}}, "cache.url: expected a non-empty string"),
        ({"cache": "redis://x"}, "[cache] must be a table"),
        (
            {"storage": {"url": PG_URL}},
            "[seal]: required with postgresql storage",
        ),
        (
            {"storage": {"url": "postgres://aws@127.0.0.1/vault"}},
            "[seal]: required with postgresql storage",
        ),
        (
            {"storage": {"url": PG_URL}, "seal": {}},
            "[seal]",
        ),
    ],
)
def test_config_refuses_bad_cache_and_seal_sections(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_document(doc(**sections), ENV)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_config_refuses_an_empty_seal_section() -> None:
    with pytest.raises(ConfigError, match=r"\[seal\]: set exactly one"):
        config_from_document(doc(storage={"url": "sqlite:///s.db"}, seal={}), ENV)


# ------------------------------------------------------------------- open_state


def key_file(path: Path, *keys: bytes) -> str:
    path.write_text("".join(b64(k) + "\n" for k in keys))
    path.chmod(0o600)
    return str(path)


def sealed_sqlite(path: Path, key: bytes, docs: dict[str, JSONDict]) -> None:
    raw = SQLiteStorage(str(path))
    try:
        storage = SealedStorage(raw, AesGcmSeal([key]))
        for name, value in docs.items():
            ops.put(storage, name, value)
    finally:
        raw.close()


def server_config(path: Path, **fields: Any) -> ServerConfig:
    return ServerConfig(
        host="127.0.0.1", port=8200, root_token=ROOT, storage_url=f"sqlite:///{path}", **fields
    )


DOCS: dict[str, JSONDict] = {
    "sys/cluster": {"id": "c-1"},
    "auth/m/config/client": {"access_key": "AKIAEXAMPLE", "secret_key": SECRET},
}


def test_open_state_refuses_a_sealed_store_without_a_seal(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    sealed_sqlite(db, KEY_A, DOCS)
    with pytest.raises(StateError) as error:
        open_state(server_config(db), {})
    message = str(error.value)
    assert "sealed" in message
    assert "\n" not in message
    assert message == f"storage: the stored data in {db} is sealed; configure [seal]"


def test_open_state_refuses_a_wrong_seal_key(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    sealed_sqlite(db, KEY_A, DOCS)
    config = server_config(db, seal_key_env="SEAL")
    with pytest.raises(StateError) as error:
        open_state(config, {"SEAL": b64(KEY_B)})
    message = str(error.value)
    assert "unseal" in message
    assert "\n" not in message
    for secret in (b64(KEY_A), b64(KEY_B), SECRET, "c-1"):
        assert secret not in message


def test_open_state_with_the_right_seal_key(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    sealed_sqlite(db, KEY_A, DOCS)
    config = server_config(db, seal_key_file=key_file(tmp_path / "seal.key", KEY_A))
    state = open_state(config, {})
    try:
        assert state.seal is not None
        assert ops.get(state.storage, "auth/m/config/client") == DOCS["auth/m/config/client"]
        raw = state.raw.read("sys/cluster")
        assert raw is not None
        assert is_sealed(raw.value)
        # A server on it finds its cluster ID through the seal.
        api = VaultAPI(storage=state.storage, root_token=ROOT)
        assert call(api, "GET", "/v1/sys/health").json["cluster_id"] == "c-1"
    finally:
        state.close()


def test_open_state_refuses_a_plain_store_with_a_seal(tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    raw = SQLiteStorage(str(db))
    ops.put(raw, "sys/cluster", {"id": "c-1"})
    raw.close()
    config = server_config(db, seal_key_env="SEAL")
    with pytest.raises(StateError) as error:
        open_state(config, {"SEAL": b64(KEY_A)})
    assert "reseal" in str(error.value)
    assert "\n" not in str(error.value)


def test_open_state_seal_errors_name_the_source_not_the_key(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with pytest.raises(StateError, match=r"^seal: seal key variable SEAL is not set$"):
        open_state(server_config(db, seal_key_env="SEAL"), {})
    with pytest.raises(StateError) as error:
        open_state(server_config(db, seal_key_env="SEAL"), {"SEAL": "bm90IGEga2V5"})
    assert str(error.value).startswith("seal: ")
    assert "bm90IGEga2V5" not in str(error.value)


def test_open_state_with_a_redis_cache(tmp_path: Path, redis_url: str) -> None:
    state = open_state(server_config(tmp_path / "s.db", cache_url=redis_url), {})
    try:
        assert state.cache is not None
        api = VaultAPI(storage=state.storage, root_token=ROOT, cache=state.cache)
        assert call(api, "GET", "/v1/sys/health").status == 200
    finally:
        state.close()


def test_open_state_refuses_an_unreachable_cache(tmp_path: Path) -> None:
    config = server_config(tmp_path / "s.db", cache_url="redis://127.0.0.1:1/0")
    with pytest.raises(StateError) as error:
        open_state(config, {})
    assert "cache" in str(error.value)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------- CLI


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def migrate(
    capsys: pytest.CaptureFixture[str], source: str, target: str, *flags: str
) -> tuple[int, str, str]:
    return run(capsys, "storage", "migrate", "--from", source, "--to", target, *flags)


def one_line_error(err: str) -> str:
    assert err.startswith("error: ")
    assert err.endswith("\n")
    assert err.count("\n") == 1
    return err[len("error: ") : -1]


def raw_sqlite_bytes(path: Path) -> bytes:
    return b"".join(
        Path(str(path) + suffix).read_bytes()
        for suffix in ("", "-wal", "-shm", "-journal")
        if Path(str(path) + suffix).exists()
    )


def test_seal_generate_prints_a_new_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "seal", "generate")
    assert (code, err) == (0, "")
    assert out.endswith("\n")
    assert out.count("\n") == 1
    line = out.strip()
    assert len(line) == 44
    assert len(base64.b64decode(line, validate=True)) == 32
    assert run(capsys, "seal", "generate")[1].strip() != line
    AesGcmSeal([base64.b64decode(line)])  # usable as a key


def test_migrate_memory_to_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "target.db"
    code, out, err = migrate(capsys, "memory://", f"sqlite:///{db}")
    assert (code, out, err) == (0, "copied 0 documents\n", "")
    assert db.exists()


def seed_plain(path: Path) -> None:
    raw = SQLiteStorage(str(path))
    try:
        for name, value in DOCS.items():
            ops.put(raw, name, value)
        ops.put(raw, "sys/token/token/t1", {"n": 1}, expires_at=123.0)
    finally:
        raw.close()


def test_migrate_sqlite_to_sealed_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "plain.db", tmp_path / "sealed.db"
    seed_plain(source)
    assert SECRET.encode() in raw_sqlite_bytes(source)  # the control
    keys = key_file(tmp_path / "seal.key", KEY_A)
    code, out, err = migrate(
        capsys, f"sqlite:///{source}", f"sqlite:///{target}", "--seal-key-file", keys
    )
    assert (code, out, err) == (0, "copied 3 documents\n", "")
    data = raw_sqlite_bytes(target)
    assert b"auth/m/config/client" in data  # reading the right bytes: keys are not sealed
    assert SECRET.encode() not in data
    assert b"AKIAEXAMPLE" not in data
    raw = SQLiteStorage(str(target))
    try:
        assert all(is_sealed(d.value) for k in raw.list("") if (d := raw.read(k)) is not None)
        sealed = SealedStorage(raw, AesGcmSeal([KEY_A]))
        assert ops.get(sealed, "auth/m/config/client") == DOCS["auth/m/config/client"]
        token = sealed.read("sys/token/token/t1")
        assert token is not None
        assert token.expires_at == 123.0
    finally:
        raw.close()
    # The copy opens as server state with that seal, and is refused without it.
    state = open_state(server_config(target, seal_key_file=keys), {})
    state.close()
    with pytest.raises(StateError, match="sealed"):
        open_state(server_config(target), {})
    # Sealed to sealed under the same key.
    again = tmp_path / "again.db"
    code, out, err = migrate(
        capsys, f"sqlite:///{target}", f"sqlite:///{again}", "--seal-key-file", keys
    )
    assert (code, out, err) == (0, "copied 3 documents\n", "")
    state = open_state(server_config(again, seal_key_file=keys), {})
    try:
        assert ops.get(state.storage, "sys/cluster") == {"id": "c-1"}
    finally:
        state.close()


def test_migrate_with_a_seal_key_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "plain.db", tmp_path / "sealed.db"
    seed_plain(source)
    monkeypatch.setenv("TEST_SEAL_KEYS", b64(KEY_B))
    code, out, _ = migrate(
        capsys, f"sqlite:///{source}", f"sqlite:///{target}", "--seal-key-env", "TEST_SEAL_KEYS"
    )
    assert (code, out) == (0, "copied 3 documents\n")
    assert SECRET.encode() not in raw_sqlite_bytes(target)
    config = server_config(target, seal_key_env="TEST_SEAL_KEYS")
    state = open_state(config, {"TEST_SEAL_KEYS": b64(KEY_B)})
    state.close()


def test_migrate_refuses_a_sealed_source_without_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "sealed.db"
    sealed_sqlite(source, KEY_A, DOCS)
    code, out, err = migrate(capsys, f"sqlite:///{source}", f"sqlite:///{tmp_path / 't.db'}")
    assert (code, out) == (1, "")
    assert one_line_error(err) == "migrate: the source is sealed: pass its seal key"


def test_migrate_refuses_a_non_empty_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "plain.db", tmp_path / "full.db"
    seed_plain(source)
    raw = SQLiteStorage(str(target))
    ops.put(raw, "something", {"already": "here"})
    raw.close()
    code, out, err = migrate(capsys, f"sqlite:///{source}", f"sqlite:///{target}")
    assert (code, out) == (1, "")
    assert one_line_error(err) == (
        "migrate: the target storage is not empty: copy only into an empty storage"
    )
    raw = SQLiteStorage(str(target))
    try:
        assert raw.list("") == ["something"]  # untouched
    finally:
        raw.close()


def test_migrate_refuses_a_postgresql_target_without_a_seal_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "plain.db"
    seed_plain(source)
    for url in (PG_URL, "postgres://aws:hunter2@127.0.0.1:1/vault"):
        code, out, err = migrate(capsys, f"sqlite:///{source}", url)
        assert (code, out) == (1, "")
        message = one_line_error(err)
        assert message == "migrate: a postgresql target must be sealed: pass a seal key"
        assert "hunter2" not in err


def test_migrate_flag_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "storage",
                "migrate",
                "--from",
                "memory://",
                "--to",
                "memory://",
                "--seal-key-file",
                "k",
                "--seal-key-env",
                "K",
            ]
        )
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_migrate_bad_seal_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loose = tmp_path / "seal.key"
    loose.write_text(b64(KEY_A) + "\n")
    loose.chmod(0o644)
    code, _, err = migrate(
        capsys, "memory://", f"sqlite:///{tmp_path / 't.db'}", "--seal-key-file", str(loose)
    )
    assert code == 1
    message = one_line_error(err)
    assert message.startswith("seal: ")
    assert "chmod 600" in message
    assert b64(KEY_A) not in err


def test_migrate_sqlite_to_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_url: str
) -> None:
    source = tmp_path / "plain.db"
    seed_plain(source)
    keys = key_file(tmp_path / "seal.key", KEY_A)
    code, out, err = migrate(capsys, f"sqlite:///{source}", postgres_url, "--seal-key-file", keys)
    assert (code, out, err) == (0, "copied 3 documents\n", "")
    config = ServerConfig(
        host="127.0.0.1",
        port=8200,
        root_token=ROOT,
        storage_url=postgres_url,
        seal_key_file=keys,
    )
    state = open_state(config, {})
    try:
        assert ops.get(state.storage, "auth/m/config/client") == DOCS["auth/m/config/client"]
        stored = state.raw.read("auth/m/config/client")
        assert stored is not None
        assert is_sealed(stored.value)
        assert SECRET not in json.dumps(stored.value)
    finally:
        state.close()
    # Now the target is not empty: a second copy is refused.
    code, _, err = migrate(capsys, f"sqlite:///{source}", postgres_url, "--seal-key-file", keys)
    assert code == 1
    assert "not empty" in one_line_error(err)


def write_config(path: Path, storage_url: str, *, seal_key_file: str | None = None) -> str:
    token = path.parent / "root-token"
    token.write_text(ROOT + "\n")
    seal = f'\n[seal]\nkey_file = "{seal_key_file}"\n' if seal_key_file else ""
    path.write_text(
        '[listener]\ntls_disable = true\naddress = "127.0.0.1:1"\n'
        f'[storage]\nurl = "{storage_url}"\n'
        f'[root_token]\nfile = "{token}"\n' + seal
    )
    return str(path)


def test_reseal_after_rotating_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    sealed_sqlite(db, KEY_A, DOCS)
    keys = tmp_path / "seal.key"
    key_file(keys, KEY_B, KEY_A)  # B active, A still accepted
    config = write_config(tmp_path / "server.toml", f"sqlite:///{db}", seal_key_file=str(keys))
    code, out, err = run(capsys, "storage", "reseal", "--config", config)
    assert (code, out, err) == (0, "resealed 2 documents\n", "")
    assert run(capsys, "storage", "reseal", "--config", config)[1] == "resealed 0 documents\n"
    key_file(keys, KEY_B)  # A dropped
    state = open_state(server_config(db, seal_key_file=str(keys)), {})
    try:
        for name, value in DOCS.items():
            assert ops.get(state.storage, name) == value
    finally:
        state.close()
    # And A alone no longer opens it.
    key_file(keys, KEY_A)
    with pytest.raises(StateError, match="unseal"):
        open_state(server_config(db, seal_key_file=str(keys)), {})


def test_reseal_without_the_old_key_fails_and_changes_nothing_it_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    sealed_sqlite(db, KEY_A, DOCS)
    keys = key_file(tmp_path / "seal.key", KEY_B)
    config = write_config(tmp_path / "server.toml", f"sqlite:///{db}", seal_key_file=keys)
    code, out, err = run(capsys, "storage", "reseal", "--config", config)
    assert (code, out) == (1, "")
    assert "unseal" in one_line_error(err)
    state = open_state(server_config(db, seal_key_file=key_file(tmp_path / "a.key", KEY_A)), {})
    try:
        assert ops.get(state.storage, "sys/cluster") == {"id": "c-1"}
    finally:
        state.close()


def test_reseal_needs_a_seal_in_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "server.toml", f"sqlite:///{tmp_path / 's.db'}")
    code, _, err = run(capsys, "storage", "reseal", "--config", config)
    assert code == 1
    assert one_line_error(err) == "reseal: the configuration has no [seal]"


def test_reseal_seals_a_plain_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "plain.db"
    seed_plain(db)
    keys = key_file(tmp_path / "seal.key", KEY_A)
    config = write_config(tmp_path / "server.toml", f"sqlite:///{db}", seal_key_file=keys)
    assert run(capsys, "storage", "reseal", "--config", config)[:2] == (
        0,
        "resealed 3 documents\n",
    )
    state = open_state(server_config(db, seal_key_file=keys), {})
    state.close()


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server command that gets as far as binding its port fails the test at once."""

    def refuse(host: str, port: int) -> object:
        raise AssertionError(f"the server got as far as binding {host}:{port}")

    monkeypatch.setattr(cli, "bind", refuse)


@pytest.mark.usefixtures("no_serving")
def test_server_config_refuses_postgresql_without_a_seal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "server.toml", PG_URL)
    code, out, err = run(capsys, "server", "--config", config)
    assert (code, out) == (1, "")
    assert one_line_error(err) == (
        f"{config}: [seal]: required with postgresql storage (see docs/seal.md)"
    )


@pytest.mark.usefixtures("no_serving")
def test_server_names_a_sqlite_file_it_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        tmp_path / "missing-dir" / "s.db": "SQLITE_CANTOPEN",
        tmp_path / "not-a-db.txt": "SQLITE_NOTADB",
    }
    (tmp_path / "not-a-db.txt").write_text("this is not a database file, not even close\n" * 20)
    for db, code_name in cases.items():
        config = write_config(tmp_path / "server.toml", f"sqlite:///{db}")
        code, out, err = run(capsys, "server", "--config", config)
        assert (code, out) == (1, "")
        assert one_line_error(err) == (
            f"storage error: cannot open SQLite database {db}: {code_name}"
        )


@pytest.mark.usefixtures("no_serving")
def test_server_refuses_a_sealed_store_without_a_seal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    sealed_sqlite(db, KEY_A, DOCS)
    config = write_config(tmp_path / "server.toml", f"sqlite:///{db}")
    code, out, err = run(capsys, "server", "--config", config)
    assert (code, out) == (1, "")
    assert one_line_error(err) == f"storage: the stored data in {db} is sealed; configure [seal]"


@pytest.mark.usefixtures("no_serving")
def test_server_refuses_a_wrong_seal_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    sealed_sqlite(db, KEY_A, DOCS)
    keys = key_file(tmp_path / "seal.key", KEY_B)
    config = write_config(tmp_path / "server.toml", f"sqlite:///{db}", seal_key_file=keys)
    code, out, err = run(capsys, "server", "--config", config)
    assert (code, out) == (1, "")
    assert "unseal" in one_line_error(err)
    assert b64(KEY_B) not in err


def test_ensure_refuses_a_path_taken_by_a_nested_mount() -> None:
    """The dev server's ``ensure("aws/")`` is an error, not a silent no-op, when ``aws/x/``
    holds the path."""
    api = VaultAPI(storage=MemoryStorage(), root_token=ROOT)
    api.mounts.enable("aws/x", {"type": "aws"})
    with pytest.raises(InvalidRequestError, match="cannot mount aws/: path is in use"):
        api.mounts.ensure("aws/")
