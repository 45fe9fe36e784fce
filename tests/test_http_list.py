"""Vault's ``LIST`` method through the server's httptools protocol, which llhttp does not
know: translated at a message boundary, on a real uvicorn on loopback."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from aws_iam_backend.drivers.audit import MemoryAuditSink
from aws_iam_backend.server.asgi import make_asgi_app
from aws_iam_backend.server.serve import MALFORMED_MESSAGE
from tests.support.drivers import ASYNC_ONLY, asgi_target, driver  # noqa: F401
from tests.support.threaded import ThreadServer
from tests.test_http_errors import RawReply, make_api, read_reply, request_bytes
from tests.test_listener_limits import parse, read_to_close

pytestmark = ASYNC_ONLY  # the ASGI app serves the async driver only
ROLE = json.dumps(
    {"bound_iam_principal_arn": "arn:aws:iam::123456789012:role/r", "resolve_aws_unique_ids": False}
).encode()


@pytest.fixture
def server() -> Iterator[tuple[ThreadServer, MemoryAuditSink]]:
    sink = MemoryAuditSink()
    running = ThreadServer(make_asgi_app(asgi_target(make_api(sink))))
    try:
        yield running, sink
    finally:
        running.stop()


def ask(sock: socket.socket, raw: bytes) -> RawReply:
    sock.sendall(raw)
    reply = read_reply(sock)
    assert reply is not None
    return reply


def test_get_list_post_list_on_one_kept_alive_connection(
    server: tuple[ThreadServer, MemoryAuditSink],
) -> None:
    running, sink = server
    with running.connect(10) as sock:
        assert ask(sock, request_bytes("GET", "/v1/sys/health")).status == 200
        empty = ask(sock, request_bytes("LIST", "/v1/auth/aws/roles"))
        assert (empty.status, empty.json()) == (404, {"errors": []})  # Vault's empty LIST
        assert ask(sock, request_bytes("POST", "/v1/auth/aws/role/r1", ROLE)).status == 204
        listed = ask(sock, request_bytes("LIST", "/v1/auth/aws/roles"))
        assert listed.status == 200
        assert listed.json()["data"]["keys"] == ["r1"]
        assert listed.headers.get("connection") != "close"
        assert ask(sock, request_bytes("GET", "/v1/sys/health")).status == 200
    audited = [(r["operation"], r["path"], r["status"]) for r in sink.records]
    assert audited == [  # sys/health is not audited
        ("list", "auth/aws/roles", 404),
        ("update", "auth/aws/role/r1", 204),
        ("list", "auth/aws/roles", 200),
    ]


def test_list_whose_method_arrives_in_pieces(
    server: tuple[ThreadServer, MemoryAuditSink],
) -> None:
    running, _sink = server
    raw = request_bytes("LIST", "/v1/auth/aws/roles")
    with running.connect(10) as sock:
        assert ask(sock, request_bytes("POST", "/v1/auth/aws/role/r1", ROLE)).status == 204
        for piece in (raw[:1], raw[1:3], raw[3:7]):
            sock.sendall(piece)
            time.sleep(0.05)  # separate reads, most likely; correct either way
        listed = ask(sock, raw[7:])
    assert (listed.status, listed.json()["data"]["keys"]) == (200, ["r1"])


def test_list_pipelined_in_the_same_read_is_refused_after_the_first_answer(
    server: tuple[ThreadServer, MemoryAuditSink],
) -> None:
    """The documented limit: LIST is translated only at the start of a read."""
    running, _sink = server
    with running.connect(10) as sock:
        sock.sendall(request_bytes("GET", "/v1/sys/health") + request_bytes("LIST", "/v1/x"))
        received = read_to_close(sock)
    first, _, second = received.partition(b"HTTP/1.1 400 ")
    assert first.startswith(b"HTTP/1.1 200 ")
    refusal = parse(b"HTTP/1.1 400 " + second)
    assert refusal.headers["connection"] == "close"
    assert refusal.json() == {"errors": [MALFORMED_MESSAGE]}


def test_malformed_request_pipelined_behind_one_is_answered_after_it(
    server: tuple[ThreadServer, MemoryAuditSink],
) -> None:
    running, _sink = server
    with running.connect(10) as sock:
        sock.sendall(request_bytes("GET", "/v1/sys/health") + b"G(T / HTTP/1.1\r\n\r\n")
        received = read_to_close(sock)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.count(b"HTTP/1.1 ") == 2
    refusal = parse(received[received.index(b"HTTP/1.1 400 ") :])
    assert refusal.json() == {"errors": [MALFORMED_MESSAGE]}
