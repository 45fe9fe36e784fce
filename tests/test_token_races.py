"""Token lifecycle races on every storage: a revoked token never comes back, and a
``num_uses=N`` token is honoured at most N times, across threads and processes.

Renew and use loops race revoke, revoke-accessor and mount revocation; a login races a
mount disable. No timing: threads meet at barriers and loops end by themselves.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

import attrs
import pytest

from aws_iam_backend import Backend
from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer
from aws_iam_backend.errors import InvalidRequestError, PermissionDeniedError
from aws_iam_backend.io.clock import SystemClock
from aws_iam_backend.io.protocols import Storage
from aws_iam_backend.io.storage import MemoryStorage, open_storage
from aws_iam_backend.io.storage._sync.prefixed import PrefixedStorage
from aws_iam_backend.server._sync.api import VaultAPI
from aws_iam_backend.server.messages import HTTPRequest
from aws_iam_backend.vault.tokens import ACCESSOR_PREFIX, TOKEN_PREFIX
from tests.support.fakes import FakeIam, RecordingTransport, ok_response, token_spec
from tests.support.moto_server import Keys
from tests.support.payloads import botocore_payload
from tests.support.processes import run_together

THREADS = 16
PROCESSES = 3
TRIALS = 4
ARN = "arn:aws:iam::123456789012:user/alice"


def issuer_for(storage: Storage) -> StoreTokenIssuer:
    return StoreTokenIssuer(storage, clock=SystemClock())


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    base: str = request.getfixturevalue("postgres_url")
    return base


@pytest.fixture
def storage(url: str) -> Iterator[Storage]:
    store = open_storage(url)
    yield store
    close = getattr(store, "close", None)
    if callable(close):
        close()


@pytest.fixture
def shared_url(url: str) -> str:
    if url == "memory://":
        pytest.skip("memory storage is not shared between processes")
    return url


def leftovers(storage: Storage, before: set[str], accessor: str) -> tuple[set[str], list[str]]:
    """Token keys not in ``before`` (other tests share a PostgreSQL database), and the
    accessor index entry for ``accessor`` if any."""
    accessors = [a for a in storage.list(ACCESSOR_PREFIX) if a == accessor]
    return set(storage.list(TOKEN_PREFIX)) - before, accessors


def race_renewals(issuer: StoreTokenIssuer, token: str, revoke: Callable[[], None]) -> None:
    """``THREADS`` threads renew ``token`` until it is refused; ``revoke`` runs once all
    have renewed at least once."""
    renewed = threading.Barrier(THREADS + 1)

    def renew_loop() -> None:
        first = True
        while True:
            try:
                issuer.extend(token, ttl=600, now=datetime.now(UTC))
            except PermissionDeniedError:
                if first:
                    renewed.wait()
                return
            if first:
                first = False
                renewed.wait()

    threads = [threading.Thread(target=renew_loop) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    renewed.wait()
    revoke()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("how", ["token", "accessor", "mount"])
def test_revocation_is_never_undone_by_concurrent_renewals(storage: Storage, how: str) -> None:
    issuer = issuer_for(storage)
    for _ in range(TRIALS):
        before = set(storage.list(TOKEN_PREFIX))
        mount = f"m-{uuid.uuid4()}/"
        record = issuer.issue(token_spec(mount=mount))
        token = record.client_token or ""

        def revoke() -> None:
            if how == "token":
                issuer.revoke(token)  # noqa: B023 (threads end within the iteration)
            elif how == "accessor":
                issuer.revoke_accessor(record.accessor)  # noqa: B023 (threads end within the iteration)
            else:
                assert issuer.revoke_mount(mount) == 1  # noqa: B023 (threads end within the iteration)

        race_renewals(issuer, token, revoke)
        assert issuer.lookup(token) is None
        assert issuer.lookup_accessor(record.accessor) is None
        assert leftovers(storage, before, record.accessor) == (set(), [])
        with pytest.raises(PermissionDeniedError):
            issuer.extend(token, ttl=600, now=datetime.now(UTC))


def test_revocation_is_never_undone_by_concurrent_uses(storage: Storage) -> None:
    issuer = issuer_for(storage)
    for _ in range(TRIALS):
        before = set(storage.list(TOKEN_PREFIX))
        record = issuer.issue(token_spec(num_uses=1_000_000))
        token = record.client_token or ""
        used = threading.Barrier(THREADS + 1)

        def use_loop() -> None:
            first = True
            while issuer.use(token) is not None:  # noqa: B023 (threads end within the iteration)
                if first:
                    first = False
                    used.wait()  # noqa: B023 (threads end within the iteration)
            if first:
                used.wait()  # noqa: B023 (threads end within the iteration)

        threads = [threading.Thread(target=use_loop) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        used.wait()
        issuer.revoke_accessor(record.accessor)
        for thread in threads:
            thread.join()
        assert issuer.lookup(token) is None
        assert leftovers(storage, before, record.accessor) == (set(), [])


@pytest.mark.parametrize("uses", [1, 5])
def test_limited_uses_are_honoured_at_most_n_times_across_threads(
    storage: Storage, uses: int
) -> None:
    issuer = issuer_for(storage)
    before = set(storage.list(TOKEN_PREFIX))
    record = issuer.issue(token_spec(num_uses=uses))
    token = record.client_token or ""
    start = threading.Barrier(THREADS)
    results: list[bool] = []
    lock = threading.Lock()

    def use_once() -> None:
        start.wait()
        outcome = issuer.use(token) is not None
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=use_once) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == uses
    assert issuer.lookup(token) is None
    assert leftovers(storage, before, record.accessor) == (set(), [])


def test_renewal_after_last_use_is_refused(storage: Storage) -> None:
    issuer = issuer_for(storage)
    token = issuer.issue(token_spec(num_uses=1)).client_token or ""
    assert issuer.use(token) is not None
    with pytest.raises(PermissionDeniedError):
        issuer.extend(token, ttl=600, now=datetime.now(UTC))


def test_batch_tokens_are_not_renewed_and_not_changed(storage: Storage) -> None:
    issuer = issuer_for(storage)
    existing = set(storage.list(TOKEN_PREFIX))
    token = issuer.issue(token_spec(token_type="batch")).client_token or ""
    (key,) = (TOKEN_PREFIX + k for k in set(storage.list(TOKEN_PREFIX)) - existing)
    before = storage.read(key)
    with pytest.raises(InvalidRequestError):
        issuer.extend(token, ttl=600, now=datetime.now(UTC))
    assert storage.read(key) == before


# ----------------------------------------------------------------- processes


def _use_in_process(url: str, token: str, barrier: ProcessBarrier, results: Any) -> None:
    storage = open_storage(url)
    issuer = issuer_for(storage)
    barrier.wait()
    results.put(issuer.use(token) is not None)


def _renew_in_process(url: str, token: str, barrier: ProcessBarrier, results: Any) -> None:
    storage = open_storage(url)
    issuer = issuer_for(storage)
    renewals = 0
    while True:
        try:
            issuer.extend(token, ttl=600, now=datetime.now(UTC))
        except PermissionDeniedError:
            break
        renewals += 1
        if renewals == 1:
            barrier.wait()
    if renewals == 0:
        barrier.wait()
    results.put(renewals)


def test_single_use_token_used_at_once_by_three_processes_succeeds_once(
    shared_url: str, storage: Storage
) -> None:
    issuer = issuer_for(storage)
    token = issuer.issue(token_spec(num_uses=1)).client_token or ""
    outcomes = run_together(_use_in_process, [(shared_url, token)] * PROCESSES)
    assert outcomes.count(True) == 1
    assert issuer.lookup(token) is None


def test_revocation_holds_against_renewals_from_other_processes(
    shared_url: str, storage: Storage
) -> None:
    issuer = issuer_for(storage)
    before = set(storage.list(TOKEN_PREFIX))
    record = issuer.issue(token_spec())
    token = record.client_token or ""
    counts = run_together(
        _renew_in_process,
        [(shared_url, token)] * PROCESSES,
        between=lambda: issuer.revoke_accessor(record.accessor),  # each has renewed once
    )
    assert all(count >= 1 for count in counts)
    assert issuer.lookup(token) is None
    assert leftovers(storage, before, record.accessor) == (set(), [])


# ------------------------------------------------------- login vs mount disable


@attrs.frozen
class Reply:
    status: int
    json: Any


def call(api: VaultAPI, method: str, path: str, body: Any = None, token: str = "") -> Reply:
    headers = {"x-vault-token": token} if token else {}
    data = b"" if body is None else json.dumps(body).encode()
    response = api.handle(HTTPRequest(method, path, "", headers, data, remote_addr="127.0.0.1"))
    return Reply(response.status, json.loads(response.body) if response.body else None)


def test_login_racing_mount_disable_leaves_no_token_of_the_mount() -> None:
    keys = Keys("AKIAIOSFODNN7EXAMPLE", "secret")
    storage = MemoryStorage()
    api = VaultAPI(
        storage=storage,
        root_token="root-token",
        backend_factory=lambda **kw: Backend(
            transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
            iam=FakeIam(),
            **kw,
        ),
    )
    for _ in range(TRIALS):
        enabled = call(api, "POST", "/v1/sys/auth/aws", {"type": "aws"}, token="root-token")
        assert enabled.status == 204
        role = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False}
        assert call(api, "POST", "/v1/auth/aws/role/alice", role, token="root-token").status == 204
        issued: list[str] = []
        lock = threading.Lock()
        first_login = threading.Barrier(THREADS + 1)

        def login_loop() -> None:
            first = True
            while True:
                payload = botocore_payload(keys, role="alice")
                reply = call(api, "POST", "/v1/auth/aws/login", payload)
                if reply.status == 200:
                    with lock:  # noqa: B023 (threads end within the iteration)
                        issued.append(reply.json["auth"]["client_token"])  # noqa: B023 (threads end within the iteration)
                if first:
                    first = False
                    first_login.wait()  # noqa: B023 (threads end within the iteration)
                if reply.status != 200:
                    return

        threads = [threading.Thread(target=login_loop) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        first_login.wait()
        assert call(api, "DELETE", "/v1/sys/auth/aws", token="root-token").status == 204
        for thread in threads:
            thread.join()
        assert issued
        assert all(api.issuer.lookup(token) is None for token in issued)
        tokens = PrefixedStorage(storage, "sys/token/")
        assert tokens.list(TOKEN_PREFIX) == []
