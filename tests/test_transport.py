"""BotocoreTransport against real loopback HTTP servers (attacks 18, 60, 85-88).

The body-read tests run twice (``body_read``): with urllib3's ``read1`` (2.2+) and with
``read`` alone, as on every urllib3 before 2.2 that botocore allows. CI also runs this
file against the lowest allowed urllib3 (``.ci/lowest``), where ``read1`` does not exist.
"""

from __future__ import annotations

import gzip
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import attrs
import pytest
import urllib3.response

from aws_iam_backend import errors
from aws_iam_backend.io.transport import MAX_BODY, BotocoreTransport
from aws_iam_backend.login.messages import OutboundRequest, SigV4Info, STSResponse
from aws_iam_backend.login.parse import parse_sts_response
from tests.support.moto_server import free_port

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
GOLDEN = (
    f'<GetCallerIdentityResponse xmlns="{NS}"><GetCallerIdentityResult>'
    "<Arn>arn:aws:iam::123456789012:user/alice</Arn><UserId>AIDAEXAMPLE</UserId>"
    "<Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"
).encode()
BODY = b"Action=GetCallerIdentity&Version=2011-06-15"

Behaviour = Callable[[socket.socket, threading.Event], None]


class Recorded:
    """One request as the server saw it."""

    def __init__(self, head: bytes, body: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        self.body = body


class LoopbackServer:
    """A raw TCP server on 127.0.0.1 answering each request with ``behaviour``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.requests: list[Recorded] = []
        self.stop = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(10)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    head, _, rest = data.partition(b"\r\n\r\n")
                    recorded = Recorded(head, b"")
                    length = int(recorded.headers.get("content-length", "0"))
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    recorded.body = rest
                    outer.requests.append(recorded)
                    behaviour(conn, outer.stop)
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(behaviour: Behaviour) -> LoopbackServer:
        server = LoopbackServer(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def reply(
    status: int = 200,
    body: bytes = GOLDEN,
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/xml"),),
) -> Behaviour:
    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers)
        conn.sendall(head.encode() + b"\r\n" + body)

    return behaviour


def outbound(port: int, query: str = "") -> OutboundRequest:
    sigv4 = SigV4Info(
        access_key_id="AKIDEXAMPLE",
        scope_date="20260101",
        region="us-east-1",
        signed_headers=("host", "x-amz-date"),
        signature="0" * 64,
        request_time=datetime(2026, 1, 1, tzinfo=UTC),
        presigned=False,
    )
    return OutboundRequest(
        method="POST",
        url=f"http://127.0.0.1:{port}/{query}",
        host="sts.amazonaws.com",
        headers=(
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("X-Amz-Date", "20260101T000000Z"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/..."),
        ),
        body=BODY,
        sigv4=sigv4,
    )


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def transport(sleeps: list[float]) -> Iterator[BotocoreTransport]:
    instance = BotocoreTransport(sleep=sleeps.append, random=lambda: 0.5)
    yield instance
    instance.close()


def send(
    transport: BotocoreTransport,
    port: int,
    *,
    timeout: float = 5.0,
    retries: int = 2,
    query: str = "",
) -> STSResponse:
    return transport.send(outbound(port, query), timeout=timeout, max_retries=retries)


def test_success_sends_signed_host_and_identity_encoding(
    serve: Callable[[Behaviour], LoopbackServer], transport: BotocoreTransport
) -> None:
    server = serve(reply())
    response = send(transport, server.port)
    assert response.status == 200
    assert response.header("Content-Type") == "text/xml"
    assert parse_sts_response(response).arn == "arn:aws:iam::123456789012:user/alice"
    (seen,) = server.requests
    assert seen.request_line == "POST / HTTP/1.1"
    assert seen.headers["host"] == "sts.amazonaws.com"
    assert seen.headers["accept-encoding"] == "identity"
    assert seen.headers["x-amz-date"] == "20260101T000000Z"
    assert seen.body == BODY


def test_redirect_not_followed(
    serve: Callable[[Behaviour], LoopbackServer], transport: BotocoreTransport
) -> None:
    target = serve(reply())
    server = serve(reply(302, b"", (("Location", f"http://127.0.0.1:{target.port}/"),)))
    response = send(transport, server.port)
    assert response.status == 302
    assert len(server.requests) == 1
    assert target.requests == []
    with pytest.raises(errors.UpstreamError) as info:
        parse_sts_response(response)
    assert type(info.value) is errors.UpstreamError


def stream_forever(chunked: bool, declared: int | None = None) -> Behaviour:
    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
        if chunked:
            head += "Transfer-Encoding: chunked\r\n"
        if declared is not None:
            head += f"Content-Length: {declared}\r\n"
        conn.sendall(head.encode() + b"\r\n")
        block = b"<a>" * 10_000
        frame = f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
        sent = 0
        while not stop.is_set() and sent < 100 * 1024 * 1024:
            conn.sendall(frame)
            sent += len(block)

    return behaviour


@attrs.define
class Reads:
    """What the transport asked of the patched read method, and got, call by call."""

    asked: list[int] = attrs.field(factory=list)
    got: list[int] = attrs.field(factory=list)


@pytest.fixture(params=["read1", "read"])
def body_read(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Make the transport read bodies with urllib3's ``read1`` (2.2+) or, as on urllib3
    before 2.2, ``read`` alone (``read1`` taken off the real response classes for the
    test). Checks each call asks for a bounded amount, undecoded, never more than the cap
    plus one byte over the response."""
    response_class = urllib3.response.HTTPResponse
    owners = [cls for cls in response_class.__mro__ if "read1" in vars(cls)]
    if request.param == "read1" and not owners:
        pytest.skip(f"urllib3 {version('urllib3')} has no read1 (added in 2.2)")
    if request.param == "read":
        for cls in owners:
            monkeypatch.delattr(cls, "read1")
    reads = Reads()
    original: Callable[..., Any] = getattr(response_class, request.param)

    def spy(self: Any, amt: int | None = None, *args: Any, **kwargs: Any) -> Any:
        so_far: int = getattr(self, "_test_bytes_read", 0)
        assert amt is not None
        assert so_far + amt <= MAX_BODY + 1
        assert kwargs.get("decode_content") is False
        reads.asked.append(amt)
        data = original(self, amt, *args, **kwargs)
        self._test_bytes_read = so_far + len(data or b"")
        reads.got.append(len(data or b""))
        return data

    monkeypatch.setattr(response_class, request.param, spy)
    return reads


def raw_reply(head: str, body: bytes, *, chunked: bool = False) -> Behaviour:
    """Send ``head`` (status line and headers, no blank line) and ``body`` (framed as one
    chunk and the last chunk when ``chunked``), then close: with neither
    ``Content-Length`` nor chunked framing the body runs until the close."""

    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        payload = body
        if chunked:
            payload = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b""
        conn.sendall(head.encode() + b"\r\n" + payload)

    return behaviour


def test_body_read_returns_raw_body(
    serve: Callable[[Behaviour], LoopbackServer],
    transport: BotocoreTransport,
    body_read: Reads,
) -> None:
    assert send(transport, serve(reply()).port).body == GOLDEN
    compressed = gzip.compress(GOLDEN)
    gzipped = serve(reply(200, compressed, (("Content-Encoding", "gzip"),)))
    assert send(transport, gzipped.port).body == compressed  # never decompressed
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n"
    assert send(transport, serve(raw_reply(head, GOLDEN, chunked=True)).port).body == GOLDEN
    assert sum(body_read.got) == len(GOLDEN) + len(compressed) + len(GOLDEN)


@pytest.mark.parametrize("framing", ["until-close", "content-length", "chunked"])
def test_body_at_the_cap_accepted_one_byte_more_refused(
    serve: Callable[[Behaviour], LoopbackServer],
    transport: BotocoreTransport,
    body_read: Reads,
    framing: str,
) -> None:
    for size in (MAX_BODY, MAX_BODY + 1):
        body_read.got.clear()
        body = b"x" * size
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
        if framing == "content-length":
            head += f"Content-Length: {size}\r\n"
        if framing == "chunked":
            head += "Transfer-Encoding: chunked\r\n"
        server = serve(raw_reply(head, body, chunked=framing == "chunked"))
        if size == MAX_BODY:
            assert send(transport, server.port).body == body
        else:
            with pytest.raises(errors.UpstreamError) as info:
                send(transport, server.port)
            assert info.value.message == "error making upstream request: STS response too large"
            assert len(server.requests) == 1
        # Read the cap plus one byte at most (a declared oversize is refused unread).
        refused_unread = framing == "content-length" and size > MAX_BODY
        assert sum(body_read.got) == (0 if refused_unread else size)


@pytest.mark.parametrize(
    ("chunked", "declared"),
    [(False, 100 * 1024 * 1024), (False, None), (True, None)],
    ids=["100MB-declared", "100MB-until-close", "endless-chunked"],
)
def test_large_body_capped(
    serve: Callable[[Behaviour], LoopbackServer],
    transport: BotocoreTransport,
    body_read: Reads,
    chunked: bool,
    declared: int | None,
) -> None:
    server = serve(stream_forever(chunked, declared))
    with pytest.raises(errors.UpstreamError) as info:
        send(transport, server.port)
    assert info.value.message == "error making upstream request: STS response too large"
    assert len(server.requests) == 1
    assert sum(body_read.got) <= MAX_BODY + 1
    if declared is not None:
        assert body_read.asked == []  # refused on its Content-Length, before reading


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_cut_short_is_a_connection_failure(
    serve: Callable[[Behaviour], LoopbackServer],
    transport: BotocoreTransport,
    sleeps: list[float],
    body_read: Reads,
    chunked: bool,
) -> None:
    # urllib3 1.x does not check Content-Length unless asked: a cut body must not pass.
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
        cut = f"{len(GOLDEN):x}\r\n".encode() + GOLDEN[:40]
    else:
        head += f"Content-Length: {len(GOLDEN)}\r\n"
        cut = GOLDEN[:40]
    server = serve(raw_reply(head, cut))  # sent as is, then the connection closes
    with pytest.raises(errors.UpstreamError) as info:
        send(transport, server.port, retries=1)
    assert info.value.message == (
        "error making upstream request: error making request: "
        "connection closed before a complete response"
    )
    assert len(server.requests) == 2  # retried like any broken connection
    assert body_read.asked


def trickle(headers_first: bool) -> Behaviour:
    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        if headers_first:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 9999\r\n\r\n"
            )
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not stop.wait(0.25):
            conn.sendall(b"a")

    return behaviour


@pytest.mark.parametrize("headers_first", [True, False], ids=["slow-body", "slow-headers"])
def test_trickling_peer_hits_deadline(
    serve: Callable[[Behaviour], LoopbackServer],
    transport: BotocoreTransport,
    body_read: Reads,
    headers_first: bool,
) -> None:
    server = serve(trickle(headers_first))
    with pytest.raises(errors.UpstreamTimeoutError) as info:
        send(transport, server.port, timeout=1.5)
    assert info.value.status == 504
    assert info.value.message.startswith("error making upstream request: deadline exceeded")


def test_never_answering_server(
    serve: Callable[[Behaviour], LoopbackServer], transport: BotocoreTransport
) -> None:
    def silent(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(30)

    server = serve(silent)
    with pytest.raises(errors.UpstreamTimeoutError):
        send(transport, server.port, timeout=1.5)


def test_connection_refused_retried_then_reported(
    transport: BotocoreTransport, sleeps: list[float]
) -> None:
    port = free_port()
    with pytest.raises(errors.UpstreamError) as info:
        send(transport, port, retries=2, query="?X-Amz-Signature=supersecret")
    assert type(info.value) is errors.UpstreamError
    assert info.value.message.startswith(
        "error making upstream request: error making request: connection failed"
    )
    assert "refused" in info.value.message
    assert "supersecret" not in info.value.message
    assert "127.0.0.1" not in info.value.message
    assert sleeps == [0.05, 0.1]  # full jitter with random() = 0.5: base 0.1 * 2**n / 2


@pytest.mark.parametrize(("retries", "attempts"), [(2, 3), (0, 1), (-1, 4)])
def test_503_retried_then_returned(
    serve: Callable[[Behaviour], LoopbackServer],
    transport: BotocoreTransport,
    sleeps: list[float],
    retries: int,
    attempts: int,
) -> None:
    server = serve(
        reply(503, b"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>")
    )
    response = send(transport, server.port, retries=retries)
    assert response.status == 503
    assert len(server.requests) == attempts
    assert len(sleeps) == attempts - 1
    with pytest.raises(errors.UpstreamThrottledError) as info:  # a distinct 503 error
        parse_sts_response(response)
    assert info.value.message == "error making upstream request: STS is throttling requests"


def test_501_and_4xx_not_retried(
    serve: Callable[[Behaviour], LoopbackServer], transport: BotocoreTransport
) -> None:
    for status in (501, 403, 400):
        server = serve(reply(status, b""))
        assert send(transport, server.port).status == status
        assert len(server.requests) == 1


def test_retry_after_honoured_only_when_short(
    serve: Callable[[Behaviour], LoopbackServer],
    transport: BotocoreTransport,
    sleeps: list[float],
) -> None:
    short = serve(reply(429, b"", (("Retry-After", "1"),)))
    assert send(transport, short.port, retries=1).status == 429
    assert len(short.requests) == 2
    assert sleeps == [1.0]
    long = serve(reply(429, b"", (("Retry-After", "3600"),)))
    assert send(transport, long.port, retries=3).status == 429
    assert len(long.requests) == 1


def test_backoff_never_sleeps_past_deadline(
    serve: Callable[[Behaviour], LoopbackServer], sleeps: list[float]
) -> None:
    transport = BotocoreTransport(sleep=sleeps.append, random=lambda: 1.0)
    server = serve(reply(503, b""))
    response = transport.send(outbound(server.port), timeout=0.5, max_retries=10)
    assert response.status == 503
    assert all(delay < 0.5 for delay in sleeps)
    assert len(server.requests) == len(sleeps) + 1 < 11


def test_gzip_not_decompressed(
    serve: Callable[[Behaviour], LoopbackServer], transport: BotocoreTransport
) -> None:
    compressed = gzip.compress(GOLDEN)
    server = serve(
        reply(200, compressed, (("Content-Type", "text/xml"), ("Content-Encoding", "gzip")))
    )
    response = send(transport, server.port)
    assert response.body == compressed
    with pytest.raises(errors.UpstreamError):
        parse_sts_response(response)


def test_proxy_environment_ignored(
    serve: Callable[[Behaviour], LoopbackServer],
    transport: BotocoreTransport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = serve(reply())
    assert send(transport, server.port).status == 200


def test_configured_proxy_used(serve: Callable[[Behaviour], LoopbackServer]) -> None:
    proxy = serve(reply())
    transport = BotocoreTransport(proxies={"http": f"http://127.0.0.1:{proxy.port}"})
    assert transport.send(outbound(free_port()), timeout=5, max_retries=0).status == 200
    (seen,) = proxy.requests
    assert seen.request_line.startswith("POST http://127.0.0.1:")


def test_concurrent_sends(
    serve: Callable[[Behaviour], LoopbackServer], transport: BotocoreTransport
) -> None:
    server = serve(reply())
    statuses: list[int] = []

    def worker() -> None:
        for _ in range(5):
            statuses.append(send(transport, server.port).status)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 50
    assert len(server.requests) == 50


def test_unsupported_scheme(transport: BotocoreTransport) -> None:
    request = outbound(1)
    bad = OutboundRequest(
        method=request.method,
        url="ftp://127.0.0.1/",
        host=request.host,
        headers=request.headers,
        body=request.body,
        sigv4=request.sigv4,
    )
    with pytest.raises(errors.UpstreamError):
        transport.send(bad, timeout=1, max_retries=0)


def test_name_resolution_failure_named(
    transport: BotocoreTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # urllib3 2.x raises NameResolutionError, 1.x a NewConnectionError over the gaierror.
    def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    request = attrs.evolve(outbound(1), url="http://sts.example.invalid/?X-Amz-Signature=s3cret")
    with pytest.raises(errors.UpstreamError) as info:
        transport.send(request, timeout=5, max_retries=0)
    assert info.value.message == (
        "error making upstream request: error making request: name resolution failed"
    )
