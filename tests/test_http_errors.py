"""Errors never escape the API or the audit trail: every request gets Vault's JSON answer and
one audit record, at every layer (``loads_strict``, ``VaultAPI.handle``, the ASGI adapter),
and HTTP that the server's parser refuses gets a JSON 400 (logged, not audited) from it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import re
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import pytest

from aws_iam_backend import BackendSettings, MemoryStorage
from aws_iam_backend.drivers.audit import MemoryAuditSink
from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.server._async import api as async_api_module
from aws_iam_backend.server._sync import api as sync_api_module
from aws_iam_backend.server.api import MAX_BODY
from aws_iam_backend.server.asgi import Message, make_asgi_app
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from aws_iam_backend.server.serve import MALFORMED_MESSAGE, json_httptools_protocol
from aws_iam_backend.server.wsgi import make_wsgi_app
from aws_iam_backend.vault.fields import loads_strict
from tests.support.drivers import (  # noqa: F401
    ASYNC_ONLY,
    Backend,
    VaultAPI,
    asgi_target,
    driver,
    raising_backend,
)
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.server import ROOT as DEV_ROOT
from tests.support.server import DevServer
from tests.support.threaded import ThreadServer

ROOT = "root-token"
ARN = "arn:aws:iam::123456789012:user/alice"
HUGE = "1" * 5000  # over Python's 4,300-digit int-string limit

# ------------------------------------------------------------------ helpers


def make_api(sink: MemoryAuditSink, **settings: Any) -> VaultAPI:
    factory = functools.partial(
        Backend,
        transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
        iam=FakeIam(),
    )
    api = VaultAPI(
        storage=MemoryStorage(),
        root_token=ROOT,
        backend_factory=factory,
        settings=BackendSettings(**settings),
        audit=sink,
    )
    api.mounts.ensure("aws")
    return api


def call(
    api: VaultAPI, method: str, path: str, body: bytes = b"", token: str | None = ROOT
) -> tuple[int, Any]:
    headers = {"x-vault-token": token} if token else {}
    response = api.handle(HTTPRequest(method, path, "", headers, body, remote_addr="10.1.2.3"))
    return response.status, _json_of(response)


def _json_of(response: HTTPResponse) -> Any:
    if not response.body:
        return None
    assert dict(response.headers)["Content-Type"] == "application/json"
    return json.loads(response.body)


@attrs.frozen
class RawReply:
    """One HTTP response read off a socket (header names lower-cased)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", self
        return json.loads(self.body)


def exchange(
    port: int, raw: bytes, *, timeout: float = 10.0, head: bool = False
) -> RawReply | None:
    """Send ``raw`` on a new loopback connection and read one response (1xx skipped);
    None if the server closes or stays silent for ``timeout`` seconds without one
    (``ConnectionResetError`` if it resets the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # the server may answer (413) and close while we are still sending
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        return read_reply(sock, head=head)


def read_reply(sock: socket.socket, *, head: bool = False) -> RawReply | None:
    buffer = b""

    def fill() -> bool:
        nonlocal buffer
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False
        buffer += chunk
        return bool(chunk)

    while True:
        while b"\r\n\r\n" not in buffer:
            if not fill():
                return None
        head_bytes, _, buffer = buffer.partition(b"\r\n\r\n")
        status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
        match = re.fullmatch(r"HTTP/1\.[01] (\d{3})(?: .*)?", status_line)
        assert match, status_line
        status = int(match[1])
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status >= 200:
            break
    if head and headers.get("connection") == "close":  # the parser's refusal of an unparsed HEAD
        while fill():  # has a body, since no HEAD was parsed: read up to the close
            pass
        return RawReply(status, headers, buffer)
    if head or status in (204, 304):
        return RawReply(status, headers, b"")
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(buffer) < length:
            if not fill():
                return None
        return RawReply(status, headers, buffer[:length])
    while fill():
        pass
    return RawReply(status, headers, buffer)


@pytest.fixture
def served() -> Iterator[tuple[ThreadServer, VaultAPI, MemoryAuditSink]]:
    sink = MemoryAuditSink()
    api = make_api(sink)
    server = ThreadServer(make_asgi_app(asgi_target(api)))
    try:
        yield server, api, sink
    finally:
        server.stop()


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"X-Vault-Token: {ROOT}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ------------------------------------------------------------------ loads_strict


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ('{"a": ' + HUGE + "}", "integer of 5000 digits is too large"),
        ('{"a": -' + HUGE + "}", "integer of 5000 digits is too large"),
        ('{"a": [1, {"b": ' + HUGE + "}]}", "integer of 5000 digits is too large"),
        ('{"a": 1e400}', "number 1e400 is out of range"),
        ('{"a": -1e400}', "number -1e400 is out of range"),
        ('{"a": ' + HUGE + "e1}", "is out of range"),
        ('{"a": Infinity}', "invalid number Infinity"),
        ('{"a": -Infinity}', "invalid number -Infinity"),
        ('{"a": NaN}', "invalid number NaN"),
        ('{"a": "\\ud800"}', "unpaired surrogate"),
        ('{"\\udc00": 1}', "unpaired surrogate"),
        ('{"a": [[["x\\uDBFFy"]]]}', "unpaired surrogate"),
        (b'{"a": "\xc3\x28"}', "invalid UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "invalid UTF-8"),  # a surrogate encoded as UTF-8
        ("[" * 50_000 + "]" * 50_000, "failed to parse JSON input"),
        ('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}", "failed to parse JSON input"),
        ('{"a": 1, "a": 1}', "duplicate key in request: a"),
        ('{"a": 01}', "failed to parse JSON input"),
        ("{} {}", "failed to parse JSON input"),
        ("\ufeff{}", "failed to parse JSON input"),
    ],
)
def test_loads_strict_refuses_what_it_cannot_turn_into_a_value(
    body: str | bytes, detail: str
) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(detail)) as caught:
        loads_strict(body)
    assert caught.value.status == 400
    assert caught.value.message.startswith(("failed to parse JSON input: ", "duplicate key"))


def test_loads_strict_keeps_ordinary_numbers_and_paired_surrogates() -> None:
    document = loads_strict('{"n": ' + "9" * 100 + ', "f": 1.5e300, "e": "\\ud83d\\ude00"}')
    assert document == {"n": int("9" * 100), "f": 1.5e300, "e": "\U0001f600"}
    assert loads_strict('{"s": "\\\\ud800"}') == {"s": "\\ud800"}  # an escaped backslash


# ------------------------------------------------------------------ VaultAPI.handle


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/v1/auth/aws/login", None),
        ("/v1/auth/aws/role/alice", ROOT),
        ("/v1/sys/auth/other", ROOT),
        ("/v1/sys/audit-hash", ROOT),
        ("/v1/auth/token/lookup", ROOT),
    ],
)
def test_huge_integer_body_is_a_json_400_with_one_audit_record(
    path: str, token: str | None
) -> None:
    sink = MemoryAuditSink()
    api = make_api(sink)
    body = ('{"role": "alice", "x": ' + HUGE + "}").encode()
    status, document = call(api, "POST", path, body, token=token)
    assert status == 400
    assert document == {
        "errors": ["failed to parse JSON input: integer of 5000 digits is too large"]
    }
    (record,) = sink.records
    assert record["path"] == path.removeprefix("/v1/")
    assert (record["status"], record["outcome"], record["operation"]) == (400, "error", "update")
    assert record["error"] == document["errors"][0]


ExplodingBackend = raising_backend(RuntimeError("boom"))
"""Backends whose handler raises a plain exception before any audit record."""


def test_backend_raising_a_plain_exception_is_a_json_500_audited_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = MemoryAuditSink()
    api = VaultAPI(
        storage=MemoryStorage(), root_token=ROOT, backend_factory=ExplodingBackend, audit=sink
    )
    api.mounts.ensure("aws")
    with caplog.at_level(logging.ERROR, logger="aws_iam_backend.server"):
        status, document = call(api, "GET", "/v1/auth/aws/config/client")
    assert (status, document) == (500, {"errors": ["internal error"]})
    (record,) = sink.records
    assert (record["path"], record["mount"], record["status"]) == (
        "auth/aws/config/client",
        "aws/",
        500,
    )
    assert record["error"] == "internal error"
    assert "RuntimeError: boom" in caplog.text


def test_backend_failing_inside_its_route_is_audited_once_by_the_backend() -> None:
    def boom(_request: Any) -> Any:
        raise RuntimeError("transport exploded")

    sink = MemoryAuditSink()
    factory = functools.partial(Backend, transport=RecordingTransport(boom), iam=FakeIam())
    api = VaultAPI(storage=MemoryStorage(), root_token=ROOT, backend_factory=factory, audit=sink)
    api.mounts.ensure("aws")
    role = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False}
    assert call(api, "POST", "/v1/auth/aws/role/alice", json.dumps(role).encode())[0] == 204
    from tests.support.moto_server import Keys
    from tests.support.payloads import botocore_payload

    payload = botocore_payload(Keys("AKIAIOSFODNN7EXAMPLE", "secret"), role="alice")
    status, document = call(api, "POST", "/v1/auth/aws/login", json.dumps(payload).encode())
    assert status >= 400
    assert isinstance(document["errors"], list)
    assert [r["path"] for r in sink.records] == ["auth/aws/role/alice", "auth/aws/login"]
    assert sink.records[1]["status"] == status


def test_exception_while_describing_the_request_still_answers_and_audits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = MemoryAuditSink()
    api = make_api(sink)

    def broken(*_args: Any) -> None:
        raise KeyError("describe")

    monkeypatch.setattr(sync_api_module, "describe_request", broken)
    monkeypatch.setattr(async_api_module, "describe_request", broken)
    status, _ = call(api, "POST", "/v1/sys/auth/second", b'{"type": "aws"}')
    assert status == 204  # the request itself was fine
    (record,) = sink.records
    assert (record["path"], record["status"], record["operation"]) == (
        "sys/auth/second",
        204,
        "update",
    )


def test_exception_in_serving_and_in_describing_is_a_json_500_audited_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = MemoryAuditSink()
    api = make_api(sink)

    def broken(_rest: str) -> None:
        raise RuntimeError("mount table unreadable")

    monkeypatch.setattr(api.mounts, "resolve", broken)  # used by _dispatch and by _audit_entry
    status, document = call(api, "GET", "/v1/auth/aws/role/alice")
    assert (status, document) == (500, {"errors": ["internal error"]})
    (record,) = sink.records
    assert (record["path"], record["status"], record["error"]) == (
        "auth/aws/role/alice",
        500,
        "internal error",
    )
    assert record["client_token"]  # hashed, from the fallback entry


@pytest.mark.parametrize("required", [True, False])
def test_exception_in_building_the_record_is_an_audit_failure(
    monkeypatch: pytest.MonkeyPatch, required: bool
) -> None:
    sink = MemoryAuditSink()
    api = make_api(sink, audit_required=required)
    auditor = api._auditor
    assert auditor is not None

    def broken(*_args: Any, **_kwargs: Any) -> dict[str, object]:
        raise TypeError("record")

    monkeypatch.setattr(auditor, "record", broken)
    status, document = call(api, "GET", "/v1/sys/auth")
    if required:
        assert (status, document) == (500, {"errors": ["audit logging failed"]})
    else:
        assert status == 200
    assert sink.records == []


def test_refuse_answers_the_error_envelope_and_audits_it() -> None:
    sink = MemoryAuditSink()
    api = make_api(sink)
    request = HTTPRequest(
        "PUT", "/v1/auth/aws/role/alice", "", {"x-vault-token": ROOT}, b"ignored", "10.9.8.7"
    )
    response = api.refuse(request, 413, "request body too large")
    assert response.status == 413
    assert _json_of(response) == {"errors": ["request body too large"]}
    (record,) = sink.records
    assert (record["path"], record["mount"], record["status"], record["remote_address"]) == (
        "auth/aws/role/alice",
        "aws/",
        413,
        "10.9.8.7",
    )
    assert record["error"] == "request body too large"
    assert "fields" not in record  # the refused body is never read
    assert api.refuse(HTTPRequest("GET", "/v1/sys/health"), 400, "x").status == 400
    assert len(sink.records) == 1  # sys/health is never audited


# ------------------------------------------------------------------ the ASGI adapter


def asgi_call(
    api: VaultAPI,
    method: str,
    path: str,
    chunks: Sequence[bytes] = (b"",),
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> tuple[int, dict[bytes, bytes], bytes]:
    app = make_asgi_app(asgi_target(api))
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if chunks:  # the whole body was sent: the client waits for its answer
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(b"x-vault-token", ROOT.encode()), *headers],
        "client": ("10.0.0.7", 5000),
    }
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


REFUSALS = [
    ([(b"content-length", str(MAX_BODY + 1).encode())], [b""], 413, "request body too large"),
    ([(b"content-length", b"9" * 5000)], [b""], 413, "request body too large"),
    ([], [b"x" * 40000, b"x" * 40000], 413, "request body too large"),
    ([(b"content-length", b"12x")], [b"{}"], 400, "invalid Content-Length header"),
    ([(b"content-length", "²".encode("latin-1"))], [b"{}"], 400, "invalid Content-Length header"),
    ([(b"content-length", b"-1")], [b"{}"], 400, "invalid Content-Length header"),
    ([(b"content-length", b"2, 3")], [b"{}"], 400, "invalid Content-Length header"),
    ([(b"content-length", b"10")], [b"{}"], 400, "request body does not match Content-Length"),
    ([(b"content-length", b"1")], [b"{}"], 400, "request body does not match Content-Length"),
    (
        [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")],
        [b"{}"],
        400,
        "request has both Content-Length and Transfer-Encoding",
    ),
    ([], [], 400, "client disconnected"),
]


@ASYNC_ONLY
@pytest.mark.parametrize(("headers", "chunks", "status", "message"), REFUSALS)
def test_asgi_refusals_are_json_and_audited_once(
    headers: list[tuple[bytes, bytes]], chunks: list[bytes], status: int, message: str
) -> None:
    sink = MemoryAuditSink()
    api = make_api(sink)
    got, response_headers, body = asgi_call(api, "POST", "/v1/auth/aws/login", chunks, headers)
    assert got == status
    assert response_headers[b"content-type"] == b"application/json"
    assert response_headers[b"connection"] == b"close"
    assert json.loads(body) == {"errors": [message]}
    (record,) = sink.records
    assert (record["path"], record["status"], record["error"]) == (
        "auth/aws/login",
        status,
        message,
    )
    assert record["remote_address"] == "10.0.0.7"


@ASYNC_ONLY
def test_asgi_well_framed_request_still_served() -> None:
    sink = MemoryAuditSink()
    api = make_api(sink)
    body = b'{"type": "aws"}'
    headers = [(b"content-length", b"0" + str(len(body)).encode())]  # leading zero: allowed
    status, _, _ = asgi_call(api, "POST", "/v1/sys/auth/more", [body[:5], body[5:]], headers)
    assert status == 204
    assert [r["status"] for r in sink.records] == [204]


@ASYNC_ONLY
def test_asgi_adapter_failure_is_a_json_500(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = MemoryAuditSink()
    target = asgi_target(make_api(sink))
    app = make_asgi_app(target)

    async def fail(_request: HTTPRequest) -> HTTPResponse:
        raise RuntimeError("the adapter's own failure")

    monkeypatch.setattr(target, "handle", fail)

    async def run() -> list[Message]:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/v1/sys/auth", "headers": []}
        await app(scope, receive, send)
        return sent

    start, body = asyncio.run(run())
    assert start["status"] == 500
    assert (b"content-type", b"application/json") in start["headers"]
    assert json.loads(body["body"]) == {"errors": ["internal error"]}


# ------------------------------------------------------------------ a real server on loopback

MALFORMED = [
    b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
    b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    b"Content-Length: 3\r\n\r\n{}",
    b"GET /v1/sys/auth HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /v1/sys/auth HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n",
    b"GET /v1/sys/auth HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n",
    b"GET /v1/sys/auth HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    b"GET /v1/sys/\xffauth HTTP/1.1\r\nHost: x\r\n\r\n",
    b"G(T /v1/sys/auth HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/sys/auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",  # a TLS ClientHello
    b"GET /v1/sys/auth HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"POST /v1/sys/auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    # both framings: refused by the parser (the adapter's own check is tested above)
    b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
]


@ASYNC_ONLY
@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_http_is_a_json_400_logged_at_debug(
    served: tuple[ThreadServer, VaultAPI, MemoryAuditSink],
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
) -> None:
    server, _api, sink = served
    caplog.set_level(logging.DEBUG, logger="aws_iam_backend.server")
    reply = exchange(server.port, raw)
    assert reply is not None
    assert reply.status == 400
    assert reply.headers["connection"] == "close"
    assert reply.json() == {"errors": [MALFORMED_MESSAGE]}
    assert "refused malformed HTTP from" in caplog.text
    assert sink.records == []  # never reached the app: not auditable


@ASYNC_ONLY
def test_broken_chunk_is_a_json_400_and_the_started_request_is_audited(
    served: tuple[ThreadServer, VaultAPI, MemoryAuditSink],
) -> None:
    """The parser refuses a bad chunk after the head went to the app: the client gets the JSON 400,
    and the app, which sees the connection go, audits the request once."""
    server, _api, sink = served
    raw = b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    reply = exchange(server.port, raw)
    assert reply is not None
    assert (reply.status, reply.json()) == (400, {"errors": [MALFORMED_MESSAGE]})
    deadline = time.monotonic() + 10
    while not sink.records and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    (record,) = sink.records
    assert (record["path"], record["status"], record["error"]) == (
        "auth/aws/login",
        400,
        "client disconnected",
    )


@ASYNC_ONLY
def test_headers_too_large_is_a_json_431(
    served: tuple[ThreadServer, VaultAPI, MemoryAuditSink],
) -> None:
    server, _api, _sink = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # incomplete headers just past the 16 KiB limit on a head, sent at once so that the
        # server has read everything when it closes (unread bytes would make it reset)
        sock.sendall(b"GET /v1/sys/auth HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 17000)
        reply = read_reply(sock)
    assert reply is not None
    assert reply.status == 431
    assert reply.json() == {"errors": [MALFORMED_MESSAGE]}


@ASYNC_ONLY
def test_refusals_by_the_adapter_over_a_real_socket(
    served: tuple[ThreadServer, VaultAPI, MemoryAuditSink],
) -> None:
    server, _api, sink = served
    cases = [
        (request_bytes("POST", "/v1/auth/aws/login", b"x" * (MAX_BODY + 1)), 413),
        (
            request_bytes(
                "POST", "/v1/auth/aws/login", b"{}", [("Content-Length", str(MAX_BODY + 1))]
            ),
            413,
        ),
        (
            request_bytes(
                "POST",
                "/v1/auth/aws/login",
                b"10000\r\n" + b"x" * 65536 + b"\r\n10000\r\n" + b"x" * 65536 + b"\r\n0\r\n\r\n",
                [("Transfer-Encoding", "chunked")],
            ),
            413,
        ),
        (request_bytes("POST", "/v1/auth/aws/login", b'{"a": ' + HUGE.encode() + b"}"), 400),
    ]
    for number, (raw, status) in enumerate(cases, start=1):
        reply = exchange(server.port, raw)
        assert reply is not None, number
        assert reply.status == status, (number, reply)
        assert isinstance(reply.json()["errors"][0], str)
        assert len(sink.records) == number
        assert sink.records[-1]["status"] == status
    health = exchange(server.port, request_bytes("GET", "/v1/sys/health"))
    assert health is not None
    assert health.status == 200


@ASYNC_ONLY
def test_body_after_an_early_413_does_not_break_the_server(
    served: tuple[ThreadServer, VaultAPI, MemoryAuditSink],
) -> None:
    """The 413 goes out before the body is read; the rest of the body, and then a broken
    chunk after the response, must neither crash the protocol nor answer twice."""
    server, _api, sink = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = request_bytes(
            "POST", "/v1/auth/aws/login", headers=[("Transfer-Encoding", "chunked")]
        )
        sock.sendall(head + b"20000\r\n" + b"x" * 0x20000 + b"\r\n")
        reply = read_reply(sock)
        assert reply is not None
        assert reply.status == 413
        with contextlib.suppress(OSError):
            sock.sendall(b"not a chunk\r\n\r\n")
    health = exchange(server.port, request_bytes("GET", "/v1/sys/health"))
    assert health is not None
    assert health.status == 200
    assert [r["status"] for r in sink.records] == [413]


def test_dev_server_answers_malformed_http_with_json(tmp_path: Any) -> None:
    """The CLI's server is wired to the JSON httptools protocol and audits adapter refusals."""
    audit = tmp_path / "audit.log"
    server = DevServer(None, "--audit-file", str(audit))
    try:
        bad = exchange(server.port, MALFORMED[0])
        big = exchange(
            server.port,
            request_bytes("POST", "/v1/auth/aws/role/x", headers=[("Content-Length", "99999999")]),
        )
    finally:
        _out, err = server.stop()
    assert bad is not None
    assert (bad.status, bad.json()) == (400, {"errors": [MALFORMED_MESSAGE]})
    assert big is not None
    assert (big.status, big.json()) == (413, {"errors": ["request body too large"]})
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["path"], r["status"]) for r in records] == [("auth/aws/role/x", 413)]
    assert "Traceback" not in err
    assert DEV_ROOT not in err


class FakeTransport:
    """Just enough of an asyncio transport for uvicorn's protocol."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, _name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_protocol_error_after_a_response_began_only_closes() -> None:
    """A bad chunk that arrives after the app started its answer: no second response."""
    import uvicorn
    from uvicorn.server import ServerState

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    protocol_class: Any = json_httptools_protocol()
    config = uvicorn.Config(app, http=protocol_class, lifespan="off", log_config=None)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol = protocol_class(config, ServerState(), {}, _loop=loop)
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(
            b"POST /v1/auth/aws/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        protocol.cycle.response_started = True  # as the app's early 413 would
        protocol.data_received(b"zz\r\n")  # not a chunk size
        assert transport.closed
        assert transport.written == b""  # nothing after the begun response
        for task in protocol.tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*protocol.tasks, return_exceptions=True))
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("length", "status"),
    [("²", 400), ("9" * 5000, 413), ("12x", 400), ("70000", 413)],
)
def test_wsgi_refusals_answer_json_and_are_audited(length: str, status: int) -> None:
    """The WSGI adapter makes the same framing checks as the ASGI one (one copy)."""
    sink = MemoryAuditSink()
    api = VaultAPI(storage=MemoryStorage(), root_token=ROOT, audit=sink)
    app = make_wsgi_app(api)
    seen: list[str] = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/auth/aws/login",
        "CONTENT_LENGTH": length,
        "wsgi.input": io.BytesIO(b"{}"),
        "REMOTE_ADDR": "192.0.2.7",
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)

    body = b"".join(app(environ, start_response))
    assert seen[0].startswith(f"{status} ")
    assert "errors" in json.loads(body)
    assert len(sink.records) == 1
