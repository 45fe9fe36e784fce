"""A client that disconnects mid-login: the async server cancels the login, so no token is
issued and the signed request's replay claim is released; other clients are served."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from aws_iam_backend import AsyncBackend, AsyncMemoryStorage, MemoryStorage
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from aws_iam_backend.server import AsyncVaultAPI
from aws_iam_backend.server.asgi import make_asgi_app
from tests.support.fakes import FakeIam, ok_response
from tests.support.moto_server import Keys
from tests.support.payloads import botocore_payload
from tests.support.threaded import ThreadServer

ROOT = "cancellation-root-token"
ARN = "arn:aws:iam::123456789012:user/alice"
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "secret")
BOUND = 10.0  # upper bound on any wait for the server (never a timing assertion)


@attrs.define
class GatedSTS:
    """STS that answers only once ``gate`` is set; ``started`` is set when a call arrives.
    ``finished`` counts calls that returned (a cancelled call never does)."""

    gate: threading.Event = attrs.field(factory=threading.Event)
    started: threading.Event = attrs.field(factory=threading.Event)
    finished: int = 0

    async def send(
        self, request: OutboundRequest, *, timeout: float, max_retries: int
    ) -> STSResponse:
        self.started.set()
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        self.finished += 1
        return ok_response(ARN, "AIDAALICE")


@attrs.frozen
class Served:
    server: ThreadServer
    store: MemoryStorage
    sts: GatedSTS


@pytest.fixture
def served() -> Iterator[Served]:
    store = MemoryStorage()
    sts = GatedSTS()

    def factory(**kwargs: Any) -> AsyncBackend:
        return AsyncBackend(transport=sts, iam=FakeIam(), **kwargs)

    api = AsyncVaultAPI(
        storage=AsyncMemoryStorage(store), root_token=ROOT, backend_factory=factory
    )

    async def setup() -> None:
        await api.mounts.ensure("aws/")
        backend = await api.mounts.backend("aws/")
        assert backend is not None
        await backend.write_client_config({"replay_protection": True})
        await backend.write_role(
            "alice", {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False}
        )

    asyncio.run(setup())
    server = ThreadServer(make_asgi_app(api))
    try:
        yield Served(server, store, sts)
    finally:
        server.stop()


def login_request(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        "POST /v1/auth/aws/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def wait_for(condition: Any) -> bool:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def status_of(sock: socket.socket) -> int:
    reply = b""
    while b"\r\n" not in reply:
        chunk = sock.recv(4096)
        assert chunk, "server closed the connection without answering"
        reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_disconnect_mid_login_issues_nothing_and_releases_the_claim(served: Served) -> None:
    payload = botocore_payload(KEYS, role="alice")
    client = served.server.connect(BOUND)
    client.sendall(login_request(payload))
    assert served.sts.started.wait(BOUND)
    assert served.store.list("replay/"), "the signed request is claimed while STS is asked"
    client.close()  # the client gives up while STS has not answered
    assert wait_for(lambda: not served.store.list("replay/")), "claim still held"
    served.sts.gate.set()  # STS would now answer: nothing is waiting for it any more
    with served.server.connect(BOUND) as other:
        other.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status_of(other) == 200
    assert served.sts.finished == 0
    assert served.store.list("sys/token/token/") == []
    # The same signed request, never used, is accepted once it is sent again.
    with served.server.connect(BOUND) as again:
        again.sendall(login_request(payload))
        assert status_of(again) == 200
    assert len(served.store.list("sys/token/token/")) == 1


def test_a_login_that_completes_is_not_cancelled(served: Served) -> None:
    served.sts.gate.set()
    with served.server.connect(BOUND) as client:
        client.sendall(login_request(botocore_payload(KEYS, role="alice")))
        assert status_of(client) == 200
    assert served.sts.finished == 1
    assert len(served.store.list("replay/")) == 1
