"""Replay protection (attacks.md #61, #89): a signed login request is accepted once.

Unit tests of both :class:`ReplayCache` implementations, the login path through
:class:`Backend` (memory and storage caches, Vault-compatible default off), concurrency,
and two server processes sharing one SQLite file.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aws_iam_backend import BackendSettings, InvalidRequestError
from aws_iam_backend.client import build_login_payload
from aws_iam_backend.drivers._sync.claims import StorageReplayCache
from aws_iam_backend.drivers.replay import MemoryReplayCache, ReplayCache
from aws_iam_backend.io.protocols import Document
from aws_iam_backend.io.storage import MemoryStorage, SQLiteStorage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from tests.support.drivers import Backend, VaultAPI, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.moto_server import MotoServer
from tests.support.payloads import botocore_payload, presigned_get_payload, signing_time
from tests.support.server import ROOT, DevServer
from tests.test_backend_attacks import KEYS, NOW, USER_ARN, USER_ID, FixedClock, valid

REPLAY = "login request rejected: this signed request was already used (replay)"


def ok(_request: OutboundRequest) -> STSResponse:
    return ok_response(USER_ARN, USER_ID)


def backend(
    transport: RecordingTransport,
    *,
    replay_cache: ReplayCache | None = None,
    protection: bool = True,
    storage: MemoryStorage | None = None,
    clock: FixedClock | None = None,
) -> Any:
    result = Backend(
        storage=storage or MemoryStorage(),
        transport=transport,
        iam=FakeIam(unique_ids={USER_ARN: USER_ID}),
        clock=clock or FixedClock(),
        replay_cache=replay_cache,
    )
    result.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
    result.write_client_config({"replay_protection": protection})
    return result


# ----------------------------------------------------------------- caches


def test_memory_cache_claims_once_until_expiry() -> None:
    clock = FixedClock()
    cache = MemoryReplayCache(clock=clock)
    assert cache.claim("sig:a", NOW + timedelta(minutes=15))
    assert not cache.claim("sig:a", NOW + timedelta(minutes=15))
    assert cache.claim("sig:b", NOW + timedelta(minutes=15))
    clock.current = NOW + timedelta(minutes=16)
    assert cache.claim("sig:a", NOW + timedelta(minutes=31))
    cache.release("sig:a")
    assert cache.claim("sig:a", NOW + timedelta(minutes=31))


def test_attack_89_memory_cache_is_bounded() -> None:
    cache = MemoryReplayCache(maxsize=100, clock=FixedClock())
    for i in range(10_000):
        assert cache.claim(f"sig:{i}", NOW + timedelta(minutes=15))
    assert len(cache) <= 100
    assert not cache.claim("sig:9999", NOW + timedelta(minutes=15))  # recent ones kept


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_storage_cache_claims_once_and_retries_expired(kind: str, tmp_path: Path) -> None:
    storage = MemoryStorage() if kind == "memory" else SQLiteStorage(str(tmp_path / "r.db"))
    clock = FixedClock()
    cache = StorageReplayCache(storage, clock=clock)
    assert cache.claim("sig:a", NOW + timedelta(minutes=15))
    assert not cache.claim("sig:a", NOW + timedelta(minutes=15))
    keys = storage.list("replay/")
    assert len(keys) == 1
    assert "sig" not in keys[0]  # hashed, never the signature itself
    clock.current = NOW + timedelta(minutes=20)
    assert cache.claim("sig:a", NOW + timedelta(minutes=35))  # expired entry replaced
    assert cache.claim("sig:b", NOW + timedelta(minutes=21))
    clock.current = NOW + timedelta(minutes=30)
    assert cache.tidy() == 1  # sig:b expired, sig:a still live
    assert len(storage.list("replay/")) == 1


def test_storage_cache_shared_between_instances_on_one_sqlite_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    first = StorageReplayCache(SQLiteStorage(path), clock=FixedClock())
    second = StorageReplayCache(SQLiteStorage(path), clock=FixedClock())
    assert first.claim("sig:x", NOW + timedelta(minutes=15))
    assert not second.claim("sig:x", NOW + timedelta(minutes=15))


def test_storage_cache_claims_never_tidy_on_the_login_path() -> None:
    """Expired claims stay in storage until :meth:`StorageReplayCache.tidy` runs."""
    storage = MemoryStorage()
    clock = FixedClock()
    cache = StorageReplayCache(storage, clock=clock)
    for i in range(20):
        assert cache.claim(f"k{i}", NOW + timedelta(seconds=1))
    clock.current = NOW + timedelta(seconds=2)
    assert cache.claim("k-last", NOW + timedelta(minutes=1))
    assert len(storage.list("replay/")) == 21


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_storage_cache_tidy_removes_only_expired_claims_by_batch(kind: str, tmp_path: Path) -> None:
    storage = MemoryStorage() if kind == "memory" else SQLiteStorage(str(tmp_path / "t.db"))
    clock = FixedClock()
    cache = StorageReplayCache(storage, clock=clock)
    for i in range(9):
        assert cache.claim(f"old{i}", NOW + timedelta(seconds=10 + i))
    for i in range(3):
        assert cache.claim(f"live{i}", NOW + timedelta(minutes=15))
    unrelated = {"v": 1}
    ops.put(storage, "other/doc", unrelated, expires_at=0.0)  # expired, but not a claim
    clock.current = NOW + timedelta(minutes=1)
    assert cache.tidy(batch=2) == 9  # five batches of at most two
    assert len(storage.list("replay/")) == 3
    assert ops.get(storage, "other/doc") == unrelated
    for i in range(3):
        assert not cache.claim(f"live{i}", NOW + timedelta(minutes=15))  # still refused
    assert cache.claim("old0", NOW + timedelta(minutes=16))  # an expired key is free again
    assert cache.tidy() == 0
    # ``now`` overrides the clock: everything has expired by then
    assert cache.tidy(NOW + timedelta(hours=1)) == 4
    assert storage.list("replay/") == []
    if isinstance(storage, SQLiteStorage):
        storage.close()


def test_storage_cache_tidy_spares_a_claim_renewed_meanwhile() -> None:
    """A claim re-made between tidy's expiry scan and its delete is left alone (the delete
    is conditioned on the version it found)."""

    class ReclaimDuringScan(MemoryStorage):
        def __init__(self) -> None:
            super().__init__()
            self.cache: StorageReplayCache | None = None

        def expired(self, prefix: str, before: float, limit: int) -> list[Document]:
            found = super().expired(prefix, before, limit)
            if found and self.cache is not None:
                cache, self.cache = self.cache, None
                assert cache.claim("sig:a", NOW + timedelta(minutes=30))  # the expired one
            return found

    storage = ReclaimDuringScan()
    clock = FixedClock()
    cache = StorageReplayCache(storage, clock=clock)
    assert cache.claim("sig:a", NOW + timedelta(seconds=1))
    assert cache.claim("sig:b", NOW + timedelta(seconds=1))
    clock.current = NOW + timedelta(minutes=1)
    storage.cache = cache
    assert cache.tidy() == 1  # sig:b only
    assert len(storage.list("replay/")) == 1
    assert not cache.claim("sig:a", NOW + timedelta(minutes=30))


# ----------------------------------------------------------------- login


@pytest.mark.parametrize("cache", ["storage-default", "memory"])
def test_attack_61_same_payload_twice_rejected(cache: str) -> None:
    transport = RecordingTransport(ok)
    replay_cache = MemoryReplayCache(clock=FixedClock()) if cache == "memory" else None
    b = backend(transport, replay_cache=replay_cache)
    payload = valid()
    assert b.login(payload).auth
    with pytest.raises(InvalidRequestError) as info:
        b.login(payload)
    assert info.value.message == REPLAY
    assert info.value.status == 400
    assert len(transport.requests) == 1  # no STS call for the replay


def test_replay_protection_off_by_default_for_vault_compatibility() -> None:
    transport = RecordingTransport(ok)
    b = backend(transport, protection=False)
    assert b.read_client_config()["replay_protection"] is False
    payload = valid()
    assert b.login(payload).auth
    assert b.login(payload).auth
    assert len(transport.requests) == 2


def test_config_field_round_trip_and_validation() -> None:
    b = backend(RecordingTransport(ok))
    assert b.read_client_config()["replay_protection"] is True
    assert ops.get(b.storage, "config/client")["replay_protection"] is True  # type: ignore[index]
    with pytest.raises(InvalidRequestError):
        b.write_client_config({"replay_protection": "maybe"})


def test_distinct_signatures_both_accepted() -> None:
    transport = RecordingTransport(ok)
    b = backend(transport)
    assert b.login(valid()).auth
    later = botocore_payload(KEYS, region="us-east-1", role="dev", when=NOW + timedelta(seconds=1))
    assert b.login(later).auth


def test_claim_expires_with_the_request_window() -> None:
    transport = RecordingTransport(ok)
    cache = MemoryReplayCache(clock=FixedClock())
    b = backend(transport, replay_cache=cache)
    b.login(valid())
    # The claim lives until X-Amz-Date + max_age (15 min), then the request is stale anyway.
    assert not cache.claim(_sig_key(transport), NOW + timedelta(minutes=15))
    presigned_cache = MemoryReplayCache(clock=FixedClock())
    presigned = backend(RecordingTransport(ok), replay_cache=presigned_cache)
    with signing_time(NOW):
        payload = presigned_get_payload(KEYS, region="us-east-1", role="dev", expires=60)
    presigned.login(payload)
    assert len(presigned_cache) == 1


def _sig_key(transport: RecordingTransport) -> str:
    return f"sig:{transport.requests[0].sigv4.signature}"


def test_sts_rejection_releases_the_claim() -> None:
    """A signature STS refused was never used: the same payload may be tried again."""
    answers = [STSResponse(403, (("content-type", "text/xml"),), b"<ErrorResponse/>")]

    def responder(_request: OutboundRequest) -> STSResponse:
        return answers.pop(0) if answers else ok(_request)

    transport = RecordingTransport(responder)
    b = backend(transport)
    payload = valid()
    with pytest.raises(InvalidRequestError, match="received error code 403"):
        b.login(payload)
    assert b.login(payload).auth
    with pytest.raises(InvalidRequestError, match="replay"):
        b.login(payload)
    assert len(transport.requests) == 2


def test_concurrent_replays_race_safely() -> None:
    gate = threading.Barrier(8)

    def responder(request: OutboundRequest) -> STSResponse:
        return ok(request)

    transport = RecordingTransport(responder)
    b = backend(transport)
    payload = valid()
    results: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        gate.wait()
        try:
            b.login(payload)
            outcome = "ok"
        except InvalidRequestError as exc:
            outcome = exc.message
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [REPLAY] * 7 + ["ok"]
    assert len(transport.requests) == 1


def test_client_payloads_signed_in_one_second_differ() -> None:
    """``build_login_payload`` signs a random Amz-Sdk-Invocation-Id, so two payloads made
    in the same second never share a signature."""
    from botocore.credentials import Credentials

    creds = Credentials(KEYS.access_key, KEYS.secret_key)
    with signing_time(NOW):
        first = build_login_payload(creds, "dev", region="us-east-1")
        second = build_login_payload(creds, "dev", region="us-east-1")
    transport = RecordingTransport(ok)
    b = backend(transport)
    assert b.login(first).auth
    assert b.login(second).auth
    signatures = {r.sigv4.signature for r in transport.requests}
    assert len(signatures) == 2
    assert "amz-sdk-invocation-id" in transport.requests[0].sigv4.signed_headers


def test_replay_default_cache_is_on_backend_storage() -> None:
    storage = MemoryStorage()
    b = backend(RecordingTransport(ok), storage=storage)
    cache = getattr(b.replay_cache, "_target", b.replay_cache)  # behind the async view
    assert type(cache).__name__.endswith("StorageReplayCache")  # either driver's
    b.login(valid())
    assert len(storage.list("replay/")) == 1
    assert Backend(settings=BackendSettings()).replay_cache is not None


# ----------------------------------------------------------------- two processes


def _put(address: str, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Vault-Token"] = token
    request = urllib.request.Request(
        f"{address}/v1/{path}", data=json.dumps(body).encode(), method="PUT", headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else None


def _wait_until_seen(address: str, path: str, field: str, value: object) -> None:
    """Poll ``address`` until its (cached, coherent within 250 ms) read of ``path`` shows
    ``field == value``: the other server has adopted a write made through the first."""
    deadline = time.monotonic() + 10
    while True:
        request = urllib.request.Request(
            f"{address}/v1/{path}", headers={"X-Vault-Token": ROOT}, method="GET"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if json.loads(response.read())["data"].get(field) == value:
                return
        assert time.monotonic() < deadline, f"{address} never saw {field}={value!r}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, DevServer]]:
    db = tmp_path_factory.mktemp("replay") / "s.db"
    first = DevServer(f"sqlite:///{db}")
    try:
        second = DevServer(f"sqlite:///{db}")
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.mark.moto
@pytest.mark.parametrize("protection", [True, False])
def test_two_processes_on_one_sqlite_file(
    two_servers: tuple[DevServer, DevServer],
    moto: MotoServer,
    protection: bool,
    driver: str,  # noqa: F811 - the fixture, for a user name per driver
) -> None:
    a, b = two_servers
    _put(a.address, "auth/aws/config/client", {
        "access_key": moto.admin.access_key, "secret_key": moto.admin.secret_key,
        "sts_endpoint": moto.endpoint, "iam_endpoint": moto.endpoint,
        "replay_protection": protection,
    }, ROOT)  # fmt: skip
    _wait_until_seen(b.address, "auth/aws/config/client", "replay_protection", protection)
    user, keys = moto.create_user(f"replay{'on' if protection else 'off'}-{driver}")
    role = f"replay-{protection}".lower()
    _put(a.address, f"auth/aws/role/{role}", {"bound_iam_principal_arn": [user["Arn"]]}, ROOT)
    from botocore.credentials import Credentials

    payload = build_login_payload(
        Credentials(keys.access_key, keys.secret_key), role, region="us-east-1"
    )
    assert _put(a.address, "auth/aws/login", payload)["auth"]["client_token"]
    if not protection:
        assert _put(b.address, "auth/aws/login", payload)["auth"]["client_token"]
        return
    with pytest.raises(urllib.error.HTTPError) as info:
        _put(b.address, "auth/aws/login", payload)
    assert info.value.code == 400
    assert json.loads(info.value.read()) == {"errors": [REPLAY]}


def test_a_request_used_at_one_mount_is_refused_at_every_other() -> None:
    """Security review finding 2: claims are server-wide, not per mount."""
    from aws_iam_backend.server.messages import HTTPRequest

    api = VaultAPI(
        storage=MemoryStorage(),
        root_token="r" * 32,
        clock=FixedClock(NOW),  # the claims' clock: the payloads are signed at NOW
        backend_factory=lambda **kw: Backend(
            transport=RecordingTransport(ok), iam=FakeIam(), clock=FixedClock(NOW), **kw
        ),
    )

    def call(method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        headers = {"x-vault-token": "r" * 32}
        request = HTTPRequest(method, path, "", headers, json.dumps(body).encode(), "127.0.0.1")
        response = api.handle(request)
        return response.status, json.loads(response.body) if response.body else None

    role = {"bound_iam_principal_arn": USER_ARN, "resolve_aws_unique_ids": False}
    for mount in ("a", "b"):
        assert call("POST", f"/v1/sys/auth/{mount}", {"type": "aws"})[0] == 204
        assert call("POST", f"/v1/auth/{mount}/config/client", {"replay_protection": True})[0] in (
            200,
            204,
        )
        assert call("POST", f"/v1/auth/{mount}/role/alice", role)[0] == 204
    payload = valid(role="alice")
    status, body = call("POST", "/v1/auth/a/login", payload)
    assert status == 200, body
    status, body = call("POST", "/v1/auth/b/login", payload)
    assert (status, body["errors"]) == (400, [REPLAY])
