"""An in-process :class:`VaultAPI` of the test's driver, with STS and IAM faked so that
every login is the IAM user ``alice`` (:data:`ARN`), the HTTP-shaped calls tests make of
it, and the dev server for hvac's own calls.

- :func:`make_api`: the API on a storage (default a fresh :class:`MemoryStorage`), its
  ``aws`` mount enabled; :func:`call` sends one request (as root unless told otherwise)
  and gives a :class:`Reply`.
- :func:`add_role`, :func:`login`, :func:`lease`, :func:`login_token`: the role ``alice``
  on a mount, and logins to it.
- :func:`run_threads`: targets on threads at once, each in a copy of the caller's context
  (which says which driver a mount's backend is built for).

The fixtures ``storage`` and ``api`` (per test) and ``server`` (per module: the dev server
on a SQLite file of the module's own) are used by importing their functions
(``storage_fixture``, ``api_fixture``, ``server_fixture``) into a test module
(``# noqa: F401``).
"""

from __future__ import annotations

import contextvars
import functools
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aws_iam_backend import MemoryStorage
from aws_iam_backend.io.protocols import Storage
from aws_iam_backend.server.messages import HTTPRequest
from tests.support.drivers import Backend, VaultAPI
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.moto_server import Keys
from tests.support.payloads import botocore_payload
from tests.support.server import DevServer

ROOT = "root-token"
"""The API's root token."""
ARN = "arn:aws:iam::123456789012:user/alice"
"""The caller every login is (STS faked)."""
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "secret")
"""The keys logins are signed with."""
SYSTEM_TTL = 768 * 3600
"""The system's default and max lease TTL."""


class Reply:
    """A response's status and its JSON body (None when empty)."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.json: Any = json.loads(body) if body else None

    @property
    def errors(self) -> list[str]:
        errors: list[str] = self.json["errors"]
        return errors


def make_api(storage: Storage | None = None, coherence_interval: float = 0.25) -> VaultAPI:
    """The API on ``storage`` (default a fresh memory store), its ``aws`` mount enabled."""
    api = VaultAPI(
        storage=storage or MemoryStorage(),
        root_token=ROOT,
        backend_factory=functools.partial(
            Backend,
            transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
            iam=FakeIam(),
        ),
        coherence_interval=coherence_interval,
    )
    api.mounts.ensure("aws")
    return api


def call(api: Any, method: str, path: str, body: Any = None, *, token: str | None = ROOT) -> Reply:
    """One request to ``api`` (any driver's, or the sync one), sent with ``token`` (None:
    no token at all)."""
    headers = {} if token is None else {"x-vault-token": token}
    data = b"" if body is None else json.dumps(body).encode()
    response = api.handle(HTTPRequest(method, path, "", headers, data, remote_addr="127.0.0.1"))
    return Reply(response.status, response.body)


def add_role(api: Any, mount: str = "aws", **fields: Any) -> None:
    """The role ``alice`` on ``mount``, bound to :data:`ARN` (with ``fields``)."""
    body = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False, **fields}
    assert call(api, "POST", f"/v1/auth/{mount}/role/alice", body).status == 204


def login(api: Any, mount: str = "aws") -> Reply:
    """A login to the role ``alice`` on ``mount``, without a token."""
    payload = botocore_payload(KEYS, role="alice")
    return call(api, "POST", f"/v1/auth/{mount}/login", payload, token=None)


def lease(api: Any, mount: str = "aws") -> tuple[str, int]:
    """A successful :func:`login`: its client token and lease duration."""
    reply = login(api, mount)
    assert reply.status == 200, reply.json
    return reply.json["auth"]["client_token"], reply.json["auth"]["lease_duration"]


def login_token(api: Any) -> str:
    """The client token of a login to the role ``alice`` (written first) on ``aws``."""
    add_role(api)
    return lease(api)[0]


def run_threads(*targets: Callable[[], object]) -> None:
    """Run ``targets`` on threads at once, each in a copy of this context (which says
    which driver a mount's backend is built for)."""
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(target,))
        for target in targets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture(name="storage")
def storage_fixture() -> MemoryStorage:
    """``storage``: the test's memory store, under :func:`api`."""
    return MemoryStorage()


@pytest.fixture(name="api")
def api_fixture(storage: MemoryStorage) -> VaultAPI:
    """``api``: :func:`make_api` on ``storage``."""
    return make_api(storage)


@pytest.fixture(scope="module", name="server")
def server_fixture(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    """``server``: the module's dev server, on a SQLite file of its own."""
    name = request.module.__name__.rpartition(".")[2]
    dev = DevServer(f"sqlite:///{tmp_path_factory.mktemp(name) / 's.db'}")
    try:
        yield dev
    finally:
        dev.stop()


__all__ = [
    "ARN",
    "KEYS",
    "ROOT",
    "SYSTEM_TTL",
    "Reply",
    "add_role",
    "api_fixture",
    "call",
    "lease",
    "login",
    "login_token",
    "make_api",
    "run_threads",
    "server_fixture",
    "storage_fixture",
]
