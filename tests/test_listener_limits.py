"""The listener's timeouts and connection cap (``[listener]`` header_read_timeout,
request_timeout, idle_timeout, max_connections), against a real uvicorn on loopback with
the server's httptools protocol class and small timeouts. Timings are only bounded from above."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aws_iam_backend import cli
from aws_iam_backend.drivers.audit import MemoryAuditSink
from aws_iam_backend.server.asgi import make_asgi_app
from aws_iam_backend.server.config import ConfigError, config_from_document
from aws_iam_backend.server.serve import (
    HEADER_TIMEOUT_MESSAGE,
    TOO_MANY_CONNECTIONS_MESSAGE,
    json_httptools_protocol,
    uvicorn_config,
)
from tests.support.drivers import ASYNC_ONLY, asgi_target, driver  # noqa: F401
from tests.support.threaded import ThreadServer
from tests.test_http_errors import RawReply, make_api, read_reply, request_bytes

pytestmark = ASYNC_ONLY  # the ASGI app serves the async driver only
BOUND = 8.0  # generous upper bound on any close or answer we wait for
HEALTH = b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PARTIAL_HEAD = b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class LimitedServer(ThreadServer):
    """The server's uvicorn configuration with small limits, and its audit sink."""

    def __init__(
        self,
        *,
        header_read_timeout: float = 0.5,
        request_timeout: float = 1.0,
        idle_timeout: float = 1.0,
        max_connections: int = 0,
    ) -> None:
        self.sink = MemoryAuditSink()
        app = make_asgi_app(asgi_target(make_api(self.sink)), request_timeout=request_timeout)
        super().__init__(
            app,
            header_read_timeout=header_read_timeout,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
        )

    def connect(self, timeout: float = BOUND) -> socket.socket:
        return super().connect(timeout)


@pytest.fixture
def start() -> Iterator[Callable[..., LimitedServer]]:
    servers: list[LimitedServer] = []

    def make(**limits: Any) -> LimitedServer:
        servers.append(LimitedServer(**limits))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def read_to_close(sock: socket.socket, bound: float = BOUND) -> bytes:
    """Everything the server sends until it closes; fails if it is still open after ``bound``."""
    deadline = time.monotonic() + bound
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"connection still open after {bound}s (got {data!r})"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def served(sock: socket.socket) -> RawReply:
    sock.sendall(HEALTH)
    reply = read_reply(sock)
    assert reply is not None
    assert reply.status == 200, reply
    return reply


def parse(raw: bytes) -> RawReply:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawReply(int(status_line.split()[1]), headers, body)


def assert_json_error(raw: bytes, status: int, message: str) -> None:
    reply = parse(raw)
    assert reply.status == status, raw
    assert reply.headers["connection"] == "close"
    assert reply.json() == {"errors": [message]}


# ------------------------------------------------------------------ header read


def test_partial_header_block_is_answered_408_and_closed_while_others_are_served(
    start: Callable[..., LimitedServer],
) -> None:
    server = start(header_read_timeout=0.5, idle_timeout=30)
    with server.connect() as slow, server.connect() as other:
        slow.sendall(PARTIAL_HEAD)
        served(other)  # the event loop is not held by the slow client
        assert_json_error(read_to_close(slow), 408, HEADER_TIMEOUT_MESSAGE)
        served(other)  # still open: it is idle, not reading a head
    assert all(r.get("status") != 408 for r in server.sink.records)  # logged, not audited


def test_header_trickled_a_byte_at_a_time_is_closed(start: Callable[..., LimitedServer]) -> None:
    server = start(header_read_timeout=0.5, idle_timeout=30)
    with server.connect() as sock:
        deadline = time.monotonic() + BOUND
        for byte in PARTIAL_HEAD:  # every byte arrives well within the deadline
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 0.1)[0]:
                break
            assert time.monotonic() < deadline
        assert_json_error(read_to_close(sock), 408, HEADER_TIMEOUT_MESSAGE)


def test_fresh_connection_that_sends_nothing_is_closed_silently(
    start: Callable[..., LimitedServer],
) -> None:
    server = start(header_read_timeout=0.5, idle_timeout=30)
    with server.connect() as sock:
        assert read_to_close(sock) == b""


# ------------------------------------------------------------------ idle keep-alive


def test_idle_keep_alive_connection_is_closed_after_idle_timeout(
    start: Callable[..., LimitedServer],
) -> None:
    server = start(header_read_timeout=30, idle_timeout=1.0)
    with server.connect() as sock:
        served(sock)
        assert read_to_close(sock) == b""


def test_kept_alive_connection_waits_idle_until_first_byte_then_header_read(
    start: Callable[..., LimitedServer],
) -> None:
    server = start(header_read_timeout=0.5, idle_timeout=30)
    with server.connect() as sock:
        served(sock)
        time.sleep(1.5)  # past the header timeout: only the idle clock runs between requests
        served(sock)
        sock.sendall(PARTIAL_HEAD)  # the first byte starts the header clock
        assert_json_error(read_to_close(sock), 408, HEADER_TIMEOUT_MESSAGE)


def test_pipelined_requests_are_both_served(start: Callable[..., LimitedServer]) -> None:
    server = start(header_read_timeout=0.5, idle_timeout=30)
    with server.connect() as sock:
        sock.sendall(HEALTH + HEALTH)
        received = b""  # both answers may arrive in one segment: count them in the stream
        deadline = time.monotonic() + BOUND
        while received.count(b"HTTP/1.1 200 ") < 2 and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        assert received.count(b"HTTP/1.1 200 ") == 2


# ------------------------------------------------------------------ body deadline


def test_trickled_body_is_refused_408_audited_and_closed(
    start: Callable[..., LimitedServer],
) -> None:
    server = start(header_read_timeout=0.5, request_timeout=1.0, idle_timeout=30)
    body = b'{"role": "some-role-name", "iam_http_request_method": "POST"}'
    raw = request_bytes("POST", "/v1/auth/aws/login", body)
    head = raw[: -len(body)]
    with server.connect() as sock:
        sock.sendall(head)
        deadline = time.monotonic() + BOUND
        for byte in body:  # 1 byte per 0.2 s: 12 s for the whole body, far past 1 s
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 0.2)[0]:
                break
            assert time.monotonic() < deadline, "no answer to the trickled body"
        assert_json_error(read_to_close(sock), 408, "request body read timed out")
    records = server.sink.records
    assert [r["status"] for r in records] == [408]
    assert json.loads(json.dumps(records[0]))["status"] == 408


def test_prompt_body_is_served(start: Callable[..., LimitedServer]) -> None:
    server = start(request_timeout=1.0, idle_timeout=30)
    raw = request_bytes("POST", "/v1/auth/aws/login", b"{}")
    with server.connect() as sock:
        sock.sendall(raw)
        reply = read_reply(sock)
    assert reply is not None
    assert reply.status == 400
    assert reply.json()["errors"] != ["request body read timed out"]


# ------------------------------------------------------------------ connection cap


def test_connection_cap_refuses_new_ones_and_frees_a_slot_on_close(
    start: Callable[..., LimitedServer],
) -> None:
    server = start(header_read_timeout=30, idle_timeout=30, max_connections=3)
    held = [server.connect() for _ in range(3)]
    try:
        for sock in held:
            served(sock)  # accepted and counted: now idle keep-alive connections
        with server.connect() as extra:
            raw = read_to_close(extra)
        if raw:
            assert_json_error(raw, 503, TOO_MANY_CONNECTIONS_MESSAGE)
        served(held[0])  # the open ones are not starved
        held.pop().close()
        deadline = time.monotonic() + BOUND
        while True:  # the close reaches the server asynchronously
            with server.connect() as fresh:
                fresh.sendall(HEALTH)
                reply = read_reply(fresh)
                if reply is not None and reply.status == 200:
                    break
            assert time.monotonic() < deadline, "no slot freed after a close"
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()


def test_uvicorn_config_wires_the_listener_settings() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise NotImplementedError

    config = uvicorn_config(app, header_read_timeout=3, idle_timeout=7, max_connections=5)
    assert config.timeout_keep_alive == 7
    assert config.limit_concurrency is None  # its plain-text 503 is not used
    assert config.http is json_httptools_protocol(3, 5)


# ------------------------------------------------------------------ configuration

BASE: dict[str, Any] = {"listener": {"tls_disable": True}, "root_token": {"env": "ROOT_TOKEN"}}
ENV = {"ROOT_TOKEN": "s3cret-Zq7vK2mXw9LpR4tN8bYc"}


def listener(**keys: Any) -> dict[str, Any]:
    return {**BASE, "listener": {"tls_disable": True, **keys}}


def test_listener_limits_defaults() -> None:
    config = config_from_document(BASE, ENV)
    assert (config.header_read_timeout, config.request_timeout, config.idle_timeout) == (
        10,
        30,
        300,
    )
    assert config.max_connections == 4096


def test_listener_limits_accept_durations_and_seconds() -> None:
    config = config_from_document(
        listener(
            header_read_timeout="15s",
            request_timeout=45,
            idle_timeout="2m",
            max_connections=0,
        ),
        ENV,
    )
    assert (config.header_read_timeout, config.request_timeout, config.idle_timeout) == (
        15,
        45,
        120,
    )
    assert config.max_connections == 0


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"header_read_timeout": 0}, "listener.header_read_timeout: must be positive"),
        ({"request_timeout": "0s"}, "listener.request_timeout: must be positive"),
        ({"idle_timeout": "soon"}, "listener.idle_timeout: "),
        ({"idle_timeout": -5}, "listener.idle_timeout: "),
        ({"header_read_timeout": 1.5}, "listener.header_read_timeout: "),
        ({"max_connections": -1}, "listener.max_connections: expected an integer"),
        ({"max_connections": True}, "listener.max_connections: expected an integer"),
        ({"max_connections": "many"}, "listener.max_connections: expected an integer"),
        ({"max_connections": 10**7}, "listener.max_connections: expected an integer"),
        ({"read_timeout": "5s"}, "[listener]: unknown key 'read_timeout'"),
    ],
)
def test_listener_limits_refusals(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_document(listener(**keys), ENV)
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_cli_passes_the_listener_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        """
[listener]
tls_disable = true
address = "127.0.0.1:18299"
header_read_timeout = "4s"
request_timeout = "9s"
idle_timeout = "1m"
max_connections = 77
[root_token]
env = "ROOT_TOKEN"
""",
        encoding="utf-8",
    )
    seen: dict[str, Any] = {}
    real_make_app = make_asgi_app

    def make_app(api: Any, **kwargs: Any) -> Any:
        seen["app"] = kwargs
        return real_make_app(api, **kwargs)

    def fake_serve(app: Any, sock: socket.socket, **kwargs: Any) -> None:
        seen["serve"] = kwargs

    monkeypatch.setenv("ROOT_TOKEN", ENV["ROOT_TOKEN"])
    monkeypatch.setattr(cli, "make_asgi_app", make_app)
    monkeypatch.setattr(cli, "serve", fake_serve)
    monkeypatch.setattr(cli, "bind", lambda _host, _port: socket.socket())
    assert cli.main(["server", "--config", str(path)]) == 0
    assert seen["app"]["request_timeout"] == 9
    assert {k: seen["serve"][k] for k in ("header_read_timeout", "idle_timeout")} == {
        "header_read_timeout": 4,
        "idle_timeout": 60,
    }
    assert seen["serve"]["max_connections"] == 77
