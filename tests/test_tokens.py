"""StoreTokenIssuer: issue, look up, renew, use and revoke tokens kept only as HMACs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer, TokenIssuer
from aws_iam_backend.errors import (
    ConflictError,
    InternalError,
    InvalidRequestError,
    PermissionDeniedError,
)
from aws_iam_backend.io.protocols import Document, Operation, Storage
from aws_iam_backend.io.storage import MemoryStorage, SQLiteStorage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.vault.tokens import HMAC_KEY_PATH, TokenRecord, TokenSpec, rfc3339

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


def make_spec(**changes: Any) -> TokenSpec:
    fields: dict[str, Any] = {
        "policies": ("default", "dev"),
        "token_policies": ("default", "dev"),
        "metadata": {"account_id": "123456789012", "auth_type": "iam", "role_id": "r-1"},
        "internal_data": {"role_name": "Dev", "canonical_arn": "arn:aws:iam::123456789012:user/x"},
        "display_name": "aws-x",
        "ttl": 3600,
        "max_ttl": 7200,
        "explicit_max_ttl": 0,
        "period": 0,
        "num_uses": 0,
        "bound_cidrs": (),
        "token_type": "service",
        "entity_id": "ent-1",
        "mount": "aws/",
        "role_name": "Dev",
        "issued_at": T0,
    }
    fields.update(changes)
    return TokenSpec(**fields)


def dump(storage: MemoryStorage) -> str:
    return json.dumps({key: ops.get(storage, key) for key in storage.list("")})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def issuer(storage: MemoryStorage, clock: FakeClock) -> StoreTokenIssuer:
    return StoreTokenIssuer(storage, clock=clock)


def test_satisfies_protocol(issuer: StoreTokenIssuer) -> None:
    as_protocol: TokenIssuer = issuer
    assert as_protocol is issuer


# --------------------------------------------------------------------- issue


def test_issue_and_lookup(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec())
    token = issued.client_token
    assert token is not None
    assert token.startswith("hvs.")
    assert len(token) >= 4 + 43  # 256 random bits, URL-safe base64
    assert issued.expire_time == T0 + timedelta(hours=1)
    assert issued.ttl == issued.creation_ttl == 3600
    assert issued.renewable

    found = issuer.lookup(token)
    assert found is not None
    assert found.client_token is None
    assert found == attrs.evolve(issued, client_token=None)
    assert found.internal_data["role_name"] == "Dev"
    assert "internal_data" not in repr(found)
    assert token not in repr(issued)


def test_tokens_and_accessors_are_unique(issuer: StoreTokenIssuer) -> None:
    records = [issuer.issue(make_spec()) for _ in range(50)]
    assert len({r.client_token for r in records}) == 50
    assert len({r.accessor for r in records}) == 50


def test_accessors_are_safe_on_a_command_line(issuer: StoreTokenIssuer) -> None:
    """``token lookup -accessor <a>``: an accessor starting with "-" would read as a flag
    (base64url gave one in 64)."""
    accessors = [issuer.issue(make_spec()).accessor for _ in range(200)]
    assert all(a.isalnum() and a.isascii() and len(a) == 32 for a in accessors)


def test_accessor_lookup(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec())
    found = issuer.lookup_accessor(issued.accessor)
    assert found is not None
    assert found.accessor == issued.accessor
    assert found.client_token is None
    assert issuer.lookup_accessor(issued.accessor[:-1] + "A") is None
    assert issuer.lookup_accessor("") is None


def test_token_never_stored_in_clear(storage: MemoryStorage, issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec())
    assert issued.client_token is not None
    secret = issued.client_token.removeprefix("hvs.")
    everything = dump(storage)
    assert secret not in everything
    token_keys = storage.list("token/")
    assert len(token_keys) == 1
    assert len(token_keys[0]) == 64  # SHA-256 hex
    assert storage.list("accessor/") == [issued.accessor]


def test_batch_tokens_are_stored_without_accessor_and_not_renewable(
    storage: MemoryStorage, issuer: StoreTokenIssuer
) -> None:
    issued = issuer.issue(make_spec(token_type="batch"))
    assert issued.client_token is not None
    assert issued.client_token.startswith("hvb.")
    assert issued.accessor == ""
    assert not issued.renewable
    assert storage.list("accessor/") == []
    assert issuer.lookup(issued.client_token) is not None
    with pytest.raises(InvalidRequestError, match="batch tokens cannot be renewed"):
        issuer.extend(issued.client_token, ttl=60, now=T0)
    issuer.revoke(issued.client_token)
    assert issuer.lookup(issued.client_token) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"ttl": 0},
        {"ttl": -1},
        {"max_ttl": -1},
        {"period": -5},
        {"num_uses": -1},
        {"token_type": "default"},
        {"issued_at": datetime(2024, 5, 1)},  # naive
    ],
)
def test_spec_validation(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        make_spec(**changes)


# -------------------------------------------------------------------- revoke


def test_revoke(issuer: StoreTokenIssuer, storage: MemoryStorage) -> None:
    issued = issuer.issue(make_spec())
    assert issued.client_token is not None
    issuer.revoke(issued.client_token)
    assert issuer.lookup(issued.client_token) is None
    assert issuer.lookup_accessor(issued.accessor) is None
    assert storage.list("token/") == storage.list("accessor/") == []
    issuer.revoke(issued.client_token)  # again: no error


def test_revoke_accessor(issuer: StoreTokenIssuer, storage: MemoryStorage) -> None:
    keep = issuer.issue(make_spec())
    gone = issuer.issue(make_spec())
    assert gone.client_token is not None
    assert keep.client_token is not None
    issuer.revoke_accessor(gone.accessor)
    assert issuer.lookup(gone.client_token) is None
    assert issuer.lookup_accessor(gone.accessor) is None
    assert issuer.lookup(keep.client_token) is not None
    assert storage.list("accessor/") == [keep.accessor]
    issuer.revoke_accessor(gone.accessor)  # again: no error
    issuer.revoke_accessor("not/an/accessor")


# -------------------------------------------------------------------- expiry


def test_expired_tokens_vanish(
    issuer: StoreTokenIssuer, clock: FakeClock, storage: MemoryStorage
) -> None:
    issued = issuer.issue(make_spec(ttl=60))
    assert issued.client_token is not None
    clock.advance(59)
    record = issuer.lookup(issued.client_token)
    assert record is not None
    assert record.remaining(clock.now()) == 1
    clock.advance(1)
    assert issuer.lookup(issued.client_token) is None
    assert storage.list("token/") == storage.list("accessor/") == []


def test_expired_token_via_accessor(issuer: StoreTokenIssuer, clock: FakeClock) -> None:
    issued = issuer.issue(make_spec(ttl=60))
    clock.advance(61)
    assert issuer.lookup_accessor(issued.accessor) is None


def test_tidy_removes_expired_tokens_and_their_accessors_by_batch(
    issuer: StoreTokenIssuer, clock: FakeClock, storage: MemoryStorage
) -> None:
    short = [issuer.issue(make_spec(ttl=60 + i)) for i in range(5)]
    short_batch = issuer.issue(make_spec(ttl=60, token_type="batch"))
    long = issuer.issue(make_spec(ttl=600))
    unrelated = {"v": 1}
    ops.put(storage, "other/doc", unrelated, expires_at=0.0)  # expired, but not a token
    clock.advance(120)
    assert issuer.tidy(batch=2) == 6  # four batches of at most two
    assert storage.list("accessor/") == [long.accessor]
    assert len(storage.list("token/")) == 1
    assert ops.get(storage, "other/doc") == unrelated
    assert long.client_token is not None
    assert issuer.lookup(long.client_token) is not None
    for gone in [*short, short_batch]:
        assert gone.client_token is not None
        assert issuer.lookup(gone.client_token) is None
    assert issuer.tidy() == 0


def test_tidy_leaves_live_tokens(
    issuer: StoreTokenIssuer, clock: FakeClock, storage: MemoryStorage
) -> None:
    """A token renewed past its first expiry is indexed by its new expiry: tidy keeps it."""
    renewed = issuer.issue(make_spec(ttl=60))
    live = issuer.issue(make_spec(ttl=3600))
    assert renewed.client_token is not None
    assert live.client_token is not None
    issuer.extend(renewed.client_token, ttl=600, now=clock.advance(30))
    clock.advance(60)  # past the first expiry, inside the renewal
    assert issuer.tidy() == 0
    assert issuer.lookup(renewed.client_token) is not None
    assert issuer.lookup(live.client_token) is not None
    assert sorted(storage.list("accessor/")) == sorted([renewed.accessor, live.accessor])
    # ``now`` overrides the clock
    assert issuer.tidy(now=T0 + timedelta(hours=2)) == 2
    assert storage.list("token/") == storage.list("accessor/") == []


def test_tidy_spares_a_token_renewed_after_the_scan(clock: FakeClock) -> None:
    """The delete is conditioned on the version the expiry scan found, so a renewal that
    lands between the scan and the delete wins."""

    class RenewDuringScan(MemoryStorage):
        hook: Callable[[], object] | None = None

        def expired(self, prefix: str, before: float, limit: int) -> list[Document]:
            found = super().expired(prefix, before, limit)
            if found and self.hook is not None:
                hook, self.hook = self.hook, None
                hook()
            return found

    storage = RenewDuringScan()
    issuer = StoreTokenIssuer(storage, clock=clock)
    issued = issuer.issue(make_spec(ttl=60))
    token = issued.client_token
    assert token is not None
    clock.advance(30)
    storage.hook = lambda: issuer.extend(token, ttl=600, now=clock.now())
    assert issuer.tidy(now=T0 + timedelta(seconds=120)) == 0  # found due, then renewed
    record = issuer.lookup(token)
    assert record is not None
    assert record.expire_time == T0 + timedelta(seconds=630)
    assert storage.list("accessor/") == [issued.accessor]


def test_revoke_mount_revokes_only_that_mounts_tokens(
    issuer: StoreTokenIssuer, storage: MemoryStorage
) -> None:
    mine = [issuer.issue(make_spec(mount="aws/")) for _ in range(3)]
    mine.append(issuer.issue(make_spec(mount="aws/", token_type="batch")))
    other = issuer.issue(make_spec(mount="aws-other/"))
    assert issuer.revoke_mount("aws/") == 4
    for gone in mine:
        assert gone.client_token is not None
        assert issuer.lookup(gone.client_token) is None
    assert other.client_token is not None
    assert issuer.lookup(other.client_token) is not None
    assert storage.list("accessor/") == [other.accessor]
    assert len(storage.list("token/")) == 1
    assert issuer.revoke_mount("aws/") == 0


# ------------------------------------------------------------------- renewal


def test_extend_resets_ttl_from_now(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec(ttl=600, max_ttl=7200))
    assert issued.client_token is not None
    now = T0 + timedelta(seconds=300)
    renewed = issuer.extend(issued.client_token, ttl=600, now=now)
    assert renewed.expire_time == now + timedelta(seconds=600)
    assert renewed.ttl == 600
    assert renewed.creation_ttl == 600
    assert renewed.last_renewal_time == now
    assert renewed.client_token is None
    assert issuer.lookup(issued.client_token) == renewed


def test_extend_caps_at_max_ttl(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec(ttl=3600, max_ttl=5000))
    assert issued.client_token is not None
    now = T0 + timedelta(seconds=3000)
    renewed = issuer.extend(issued.client_token, ttl=3600, now=now)
    assert renewed.expire_time == T0 + timedelta(seconds=5000)
    assert renewed.ttl == 2000


def test_extend_caps_at_explicit_max_ttl(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec(ttl=600, max_ttl=0, explicit_max_ttl=1000))
    assert issued.client_token is not None
    renewed = issuer.extend(issued.client_token, ttl=600, now=T0 + timedelta(seconds=500))
    assert renewed.expire_time == T0 + timedelta(seconds=1000)


def test_extend_with_current_role_max_ttl(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec(ttl=600, max_ttl=7200))
    assert issued.client_token is not None
    now = T0 + timedelta(seconds=500)
    renewed = issuer.extend(issued.client_token, ttl=600, now=now, max_ttl=800)
    assert renewed.expire_time == T0 + timedelta(seconds=800)
    assert renewed.max_ttl == 800
    with pytest.raises(InvalidRequestError, match="past the max TTL, cannot renew"):
        issuer.extend(issued.client_token, ttl=600, now=now, max_ttl=400)


def test_periodic_renewal(issuer: StoreTokenIssuer, clock: FakeClock) -> None:
    issued = issuer.issue(make_spec(ttl=300, max_ttl=400, period=300))
    assert issued.client_token is not None
    for _ in range(10):  # well beyond max_ttl: periodic tokens ignore it
        now = clock.advance(250)
        renewed = issuer.extend(issued.client_token, ttl=9999, now=now)
        assert renewed.expire_time == now + timedelta(seconds=300)
        assert renewed.ttl == 300
    assert issuer.lookup(issued.client_token) is not None


def test_periodic_renewal_capped_by_explicit_max(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec(ttl=300, period=300, explicit_max_ttl=500))
    assert issued.client_token is not None
    renewed = issuer.extend(issued.client_token, ttl=300, now=T0 + timedelta(seconds=250))
    assert renewed.expire_time == T0 + timedelta(seconds=500)


def test_extend_unknown_or_expired_is_permission_denied(
    issuer: StoreTokenIssuer, clock: FakeClock
) -> None:
    with pytest.raises(PermissionDeniedError):
        issuer.extend("hvs.nope", ttl=60, now=T0)
    issued = issuer.issue(make_spec(ttl=60))
    assert issued.client_token is not None
    clock.advance(60)
    with pytest.raises(PermissionDeniedError):
        issuer.extend(issued.client_token, ttl=60, now=clock.now())


# ------------------------------------------------------------------ num_uses


def test_num_uses_consumed_then_revoked(issuer: StoreTokenIssuer, storage: MemoryStorage) -> None:
    issued = issuer.issue(make_spec(num_uses=3))
    token = issued.client_token
    assert token is not None
    remaining = []
    for _ in range(3):
        record = issuer.use(token)
        assert record is not None
        remaining.append(record.num_uses)
    assert remaining == [2, 1, 0]
    assert issuer.use(token) is None
    assert issuer.lookup(token) is None
    assert storage.list("token/") == storage.list("accessor/") == []


def test_unlimited_uses(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec(num_uses=0))
    assert issued.client_token is not None
    for _ in range(5):
        record = issuer.use(issued.client_token)
        assert record is not None
        assert record.num_uses == 0


def test_lookup_does_not_consume_uses(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec(num_uses=1))
    assert issued.client_token is not None
    for _ in range(3):
        assert issuer.lookup(issued.client_token) is not None
    assert issuer.use(issued.client_token) is not None
    assert issuer.lookup(issued.client_token) is None


def test_uses_are_counted_exactly_under_threads(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(make_spec(num_uses=50))
    token = issued.client_token
    assert token is not None
    successes: list[int] = []

    def worker() -> None:
        for _ in range(10):
            if issuer.use(token) is not None:
                successes.append(1)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(successes) == 50
    assert issuer.lookup(token) is None


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_uses_are_counted_exactly_across_issuers_sharing_a_store(
    kind: str, tmp_path: Path, clock: FakeClock
) -> None:
    """The issuer holds no lock: separate instances (with SQLite, separate connections to
    one file, as separate processes have) agree through conditional writes alone."""
    stores: list[Storage]
    if kind == "memory":
        shared = MemoryStorage()
        stores = [shared, shared]
    else:
        stores = [SQLiteStorage(tmp_path / "uses.db") for _ in range(2)]
    try:
        issuers = [StoreTokenIssuer(store, clock=clock) for store in stores]
        issued = issuers[0].issue(make_spec(num_uses=30))
        token = issued.client_token
        assert token is not None
        successes: list[int] = []
        gate = threading.Barrier(6)

        def worker(issuer: StoreTokenIssuer) -> None:
            gate.wait()
            for _ in range(10):
                record = issuer.use(token)
                if record is not None:
                    successes.append(record.num_uses)

        threads = [threading.Thread(target=worker, args=(issuers[i % 2],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(successes) == list(range(30))  # each remaining count handed out once
        assert issuers[1].lookup(token) is None
        assert stores[0].list("token/") == stores[1].list("accessor/") == []
    finally:
        for store in stores:
            if isinstance(store, SQLiteStorage):
                store.close()


# ---------------------------------------------------------------- lookup_data


def test_lookup_data_shape(issuer: StoreTokenIssuer) -> None:
    issued = issuer.issue(
        make_spec(
            issued_at=T0 + timedelta(microseconds=500000),
            period=0,
            bound_cidrs=("10.0.0.0/8",),
            num_uses=2,
        )
    )
    now = T0 + timedelta(seconds=100)
    data = issued.lookup_data(now)
    assert data == {
        "accessor": issued.accessor,
        "creation_time": int(T0.timestamp()),
        "creation_ttl": 3600,
        "display_name": "aws-x",
        "entity_id": "ent-1",
        "expire_time": "2024-05-01T13:00:00.5Z",
        "explicit_max_ttl": 0,
        "id": issued.client_token,
        "issue_time": "2024-05-01T12:00:00.5Z",
        "meta": {"account_id": "123456789012", "auth_type": "iam", "role_id": "r-1"},
        "num_uses": 2,
        "orphan": True,
        "path": "auth/aws/login",
        "policies": ["default", "dev"],
        "renewable": True,
        "ttl": 3500,
        "type": "service",
        "bound_cidrs": ["10.0.0.0/8"],
    }
    assert issued.client_token is not None
    stored = issuer.lookup(issued.client_token)
    assert stored is not None
    assert "id" not in stored.lookup_data(now)
    renewed = issuer.extend(issued.client_token, ttl=60, now=now)
    data = renewed.lookup_data(now)
    assert data["last_renewal"] == "2024-05-01T12:01:40Z"
    assert data["last_renewal_time"] == int(now.timestamp())
    assert data["ttl"] == 60
    assert "internal_data" not in json.dumps(data)


def test_lookup_data_periodic_and_expired() -> None:
    record = TokenRecord(
        accessor="a",
        policies=("default",),
        token_policies=("default",),
        metadata={},
        internal_data={},
        display_name="aws-x",
        issue_time=T0,
        expire_time=T0 + timedelta(seconds=10),
        creation_ttl=10,
        ttl=10,
        max_ttl=0,
        explicit_max_ttl=0,
        period=10,
        num_uses=0,
        bound_cidrs=(),
        token_type="service",
        entity_id="",
        mount="aws/",
        role_name="r",
    )
    data = record.lookup_data(T0 + timedelta(seconds=99))
    assert data["period"] == 10
    assert data["ttl"] == 0
    assert data["meta"] is None


def test_rfc3339_converts_to_utc() -> None:
    from datetime import timezone

    value = datetime(2024, 5, 1, 14, 0, 0, 120, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(value) == "2024-05-01T12:00:00.00012Z"


# -------------------------------------------------------------- HMAC key


def test_hmac_key_persisted_across_instances_on_sqlite(tmp_path: Path, clock: FakeClock) -> None:
    path = str(tmp_path / "tokens.db")
    first_store = SQLiteStorage(path)
    issued = StoreTokenIssuer(first_store, clock=clock).issue(make_spec())
    first_store.close()

    second_store = SQLiteStorage(path)
    try:
        again = StoreTokenIssuer(second_store, clock=clock)
        assert issued.client_token is not None
        found = again.lookup(issued.client_token)
        assert found is not None
        assert found.accessor == issued.accessor
        assert again.lookup_accessor(issued.accessor) is not None
        key_doc = ops.get(second_store, HMAC_KEY_PATH)
        assert key_doc is not None
        assert set(key_doc) == {"key"}
    finally:
        second_store.close()


def test_explicit_key_is_not_stored(storage: MemoryStorage, clock: FakeClock) -> None:
    issuer = StoreTokenIssuer(storage, key=b"k" * 32, clock=clock)
    issued = issuer.issue(make_spec())
    assert ops.get(storage, HMAC_KEY_PATH) is None
    other = StoreTokenIssuer(storage, key=b"j" * 32, clock=clock)
    assert issued.client_token is not None
    assert other.lookup(issued.client_token) is None
    assert StoreTokenIssuer(storage, key=b"k" * 32, clock=clock).lookup(issued.client_token)


def test_short_key_rejected(storage: MemoryStorage, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        StoreTokenIssuer(storage, key=b"short", clock=clock)


def test_corrupt_stored_key_is_internal_error(storage: MemoryStorage, clock: FakeClock) -> None:
    ops.put(storage, HMAC_KEY_PATH, {"key": "!!not base64!!"})
    issuer = StoreTokenIssuer(storage, clock=clock)  # the key is read on first use
    with pytest.raises(InternalError, match="invalid key at sys/token-hmac-key"):
        issuer.issue(make_spec())
    assert storage.list("token/") == []


def test_corrupt_token_record_is_internal_error(
    storage: MemoryStorage, issuer: StoreTokenIssuer
) -> None:
    issued = issuer.issue(make_spec())
    (name,) = storage.list("token/")
    ops.put(storage, "token/" + name, {"accessor": issued.accessor})
    assert issued.client_token is not None
    with pytest.raises(InternalError, match="corrupt token record"):
        issuer.lookup(issued.client_token)


# ---------------------------------------------------------- storage failure


class FailingStorage(MemoryStorage):
    """Fails the ``fail_on``-th commit after it is armed (1-based), changing nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_on: int | None = None
        self.commits = 0
        self.failed: list[list[str]] = []

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        if self.fail_on is not None:
            self.commits += 1
            if self.commits == self.fail_on:
                self.failed.append([op.key.split("/")[0] for op in operations])
                raise InternalError("storage error: SQLITE_IOERR")
        return super().commit(operations)


@pytest.mark.parametrize("fail_on", [1])  # the record and its accessor index: one write
def test_failed_issue_leaves_no_record(clock: FakeClock, fail_on: int) -> None:
    storage = FailingStorage()
    issuer = StoreTokenIssuer(storage, clock=clock)
    assert issuer.lookup("hvs.unknown") is None  # reads (and creates) the HMAC key
    before = storage.list("")
    storage.fail_on = fail_on
    with pytest.raises(InternalError, match="SQLITE_IOERR"):
        issuer.issue(make_spec())
    assert storage.failed == [["token", "accessor"]]  # the record and its index: one commit
    assert storage.list("") == before == ["sys/token-hmac-key"]


# ------------------------------------------------------------------ hypothesis


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_strings_never_authenticate(candidate: str) -> None:
    storage = MemoryStorage()
    issuer = StoreTokenIssuer(storage, key=b"x" * 32, clock=FakeClock())
    issuer.issue(make_spec())
    assert issuer.lookup(candidate) is None
    assert issuer.use(candidate) is None
    assert issuer.lookup_accessor(candidate) is None
    issuer.revoke(candidate)
    issuer.revoke_accessor(candidate)
    assert len(storage.list("token/")) == 1


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=64).map(lambda b: b.decode("utf-8", "surrogateescape")))
def test_lone_surrogates_never_raise(candidate: str) -> None:
    issuer = StoreTokenIssuer(MemoryStorage(), key=b"x" * 32, clock=FakeClock())
    assert issuer.lookup(candidate) is None
    assert issuer.lookup_accessor(candidate) is None


def test_endless_conflicts_on_one_token_end_in_a_clean_error(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token whose every write-back loses a race gives up with a 500 and changes nothing."""
    storage = MemoryStorage()
    issuer = StoreTokenIssuer(storage, clock=clock, attempts=3)
    record = issuer.issue(make_spec(num_uses=5))
    token = record.client_token or ""
    before = {key: storage.read(key) for key in storage.list("")}

    def conflict(_operations: object) -> tuple[int, ...]:
        raise ConflictError("token/x")

    monkeypatch.setattr(storage, "commit", conflict)
    with pytest.raises(InternalError, match="too many concurrent updates of one token"):
        issuer.extend(token, ttl=60, now=clock.now())
    with pytest.raises(InternalError, match="too many concurrent updates of one token"):
        issuer.use(token)
    assert {key: storage.read(key) for key in storage.list("")} == before
