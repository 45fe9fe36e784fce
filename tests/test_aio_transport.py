"""AsyncHttpTransport against real loopback servers: the rules of the sync transport
(tests/test_transport.py, whose servers and behaviours are reused, and the hostile STS
servers of tests/test_faults.py), TLS verification, cancellation and the pool cap."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest

from aws_iam_backend import errors
from aws_iam_backend.io.aio_transport import AsyncHttpTransport
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from aws_iam_backend.login.parse import parse_sts_response
from tests import test_transport
from tests.support.moto_server import free_port
from tests.test_cli import self_signed
from tests.test_faults import garbage, never_answers, reset_before_response, reset_mid_response
from tests.test_transport import (
    BODY,
    GOLDEN,
    Behaviour,
    LoopbackServer,
    outbound,
    reply,
    stream_forever,
    trickle,
)

Serve = Callable[[Behaviour], LoopbackServer]
serve = test_transport.serve  # the fixture: loopback servers, closed after each test
T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(main)


class Sleeps(list[float]):
    """An injectable ``sleep`` that records the delays instead of waiting."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


def send(
    port: int,
    *,
    timeout: float = 5.0,
    retries: int = 2,
    query: str = "",
    sleeps: Sleeps | None = None,
    random: float = 0.5,
    **options: Any,
) -> STSResponse:
    """One ``send`` through a fresh transport (closed afterwards)."""

    async def main() -> STSResponse:
        async with AsyncHttpTransport(
            sleep=sleeps if sleeps is not None else Sleeps(), random=lambda: random, **options
        ) as transport:
            request = outbound(port, query)
            return await transport.send(request, timeout=timeout, max_retries=retries)

    return run(main())


# ------------------------------------------------------------ the sync transport's rules


def test_success_sends_signed_host_and_identity_encoding(serve: Serve) -> None:
    server = serve(reply())
    response = send(server.port)
    assert response.status == 200
    assert response.header("Content-Type") == "text/xml"
    assert ("content-type", "text/xml") in response.headers  # names lower-cased
    assert parse_sts_response(response).arn == "arn:aws:iam::123456789012:user/alice"
    (seen,) = server.requests
    assert seen.request_line == "POST / HTTP/1.1"
    assert seen.headers["host"] == "sts.amazonaws.com"
    assert seen.headers["accept-encoding"] == "identity"
    assert seen.headers["x-amz-date"] == "20260101T000000Z"
    assert "cookie" not in seen.headers
    assert seen.body == BODY


def test_raw_query_sent_byte_for_byte(serve: Serve) -> None:
    server = serve(reply())
    query = "?Action=GetCallerIdentity&X-Amz-Credential=AKID%2F20260101%2Fus-east-1&s=%7e+"
    assert send(server.port, query=query).status == 200
    assert server.requests[0].request_line == f"POST /{query} HTTP/1.1"


def test_redirect_not_followed(serve: Serve) -> None:
    target = serve(reply())
    server = serve(reply(302, b"", (("Location", f"http://127.0.0.1:{target.port}/"),)))
    response = send(server.port)
    assert response.status == 302
    assert len(server.requests) == 1
    assert target.requests == []
    with pytest.raises(errors.UpstreamError) as info:
        parse_sts_response(response)
    assert type(info.value) is errors.UpstreamError


@pytest.mark.parametrize(
    ("chunked", "declared"),
    [(False, 100 * 1024 * 1024), (False, None), (True, None)],
    ids=["100MB-declared", "100MB-until-close", "endless-chunked"],
)
def test_large_body_capped(serve: Serve, chunked: bool, declared: int | None) -> None:
    server = serve(stream_forever(chunked, declared))
    with pytest.raises(errors.UpstreamError) as info:
        send(server.port)
    assert info.value.message == "error making upstream request: STS response too large"
    assert len(server.requests) == 1


@pytest.mark.parametrize("headers_first", [True, False], ids=["slow-body", "slow-headers"])
def test_trickling_peer_hits_deadline(serve: Serve, headers_first: bool) -> None:
    server = serve(trickle(headers_first))
    with pytest.raises(errors.UpstreamTimeoutError) as info:
        send(server.port, timeout=1.5)
    assert info.value.status == 504
    assert info.value.message == (
        "error making upstream request: deadline exceeded after 1 attempt(s)"
    )


def test_never_answering_server(serve: Serve) -> None:
    server = serve(never_answers)
    with pytest.raises(errors.UpstreamTimeoutError):
        send(server.port, timeout=1.5)


def test_connection_refused_retried_then_reported() -> None:
    sleeps = Sleeps()
    with pytest.raises(errors.UpstreamError) as info:
        send(free_port(), retries=2, query="?X-Amz-Signature=supersecret", sleeps=sleeps)
    assert type(info.value) is errors.UpstreamError
    assert info.value.message.startswith(
        "error making upstream request: error making request: connection failed"
    )
    assert "refused" in info.value.message
    assert "supersecret" not in info.value.message
    assert "127.0.0.1" not in info.value.message
    assert sleeps == [0.05, 0.1]  # full jitter with random() = 0.5: base 0.1 * 2**n / 2


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (reset_mid_response, "connection closed before a complete response"),
        (reset_before_response, "connection closed before a complete response"),
        (garbage, "connection closed before a complete response"),
    ],
    ids=["reset-mid-response", "reset-before-response", "garbage"],
)
def test_broken_peer_is_clean_upstream_error(
    serve: Serve, behaviour: Behaviour, reason: str
) -> None:
    server = serve(behaviour)
    with pytest.raises(errors.UpstreamError) as info:
        send(server.port, retries=1, query="?X-Amz-Signature=supersecret")
    assert type(info.value) is errors.UpstreamError
    assert info.value.message == f"error making upstream request: error making request: {reason}"
    assert len(server.requests) == 2  # a connection error is retried


@pytest.mark.parametrize(("retries", "attempts"), [(2, 3), (0, 1), (-1, 4)])
def test_503_retried_then_returned(serve: Serve, retries: int, attempts: int) -> None:
    server = serve(
        reply(503, b"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>")
    )
    sleeps = Sleeps()
    response = send(server.port, retries=retries, sleeps=sleeps)
    assert response.status == 503
    assert len(server.requests) == attempts
    assert len(sleeps) == attempts - 1
    with pytest.raises(errors.UpstreamThrottledError):
        parse_sts_response(response)


def test_429_retried(serve: Serve) -> None:
    server = serve(reply(429, b""))
    assert send(server.port, retries=2).status == 429
    assert len(server.requests) == 3


def test_501_and_4xx_not_retried(serve: Serve) -> None:
    for status in (501, 403, 400):
        server = serve(reply(status, b""))
        assert send(server.port).status == status
        assert len(server.requests) == 1


def test_retry_after_honoured_only_when_short(serve: Serve) -> None:
    sleeps = Sleeps()
    short = serve(reply(429, b"", (("Retry-After", "1"),)))
    assert send(short.port, retries=1, sleeps=sleeps).status == 429
    assert len(short.requests) == 2
    assert sleeps == [1.0]
    long = serve(reply(429, b"", (("Retry-After", "3600"),)))
    assert send(long.port, retries=3).status == 429
    assert len(long.requests) == 1


def test_backoff_never_sleeps_past_deadline(serve: Serve) -> None:
    server = serve(reply(503, b""))
    sleeps = Sleeps()
    response = send(server.port, timeout=0.5, retries=10, sleeps=sleeps, random=1.0)
    assert response.status == 503
    assert all(delay < 0.5 for delay in sleeps)
    assert len(server.requests) == len(sleeps) + 1 < 11


def test_real_backoff_stays_inside_the_deadline(serve: Serve) -> None:
    server = serve(reply(503, b""))

    async def main() -> STSResponse:
        async with AsyncHttpTransport() as transport:  # real asyncio.sleep and jitter
            return await transport.send(outbound(server.port), timeout=0.3, max_retries=50)

    assert run(main()).status == 503
    assert 1 <= len(server.requests) < 51


def test_gzip_not_decompressed(serve: Serve) -> None:
    compressed = gzip.compress(GOLDEN)
    server = serve(
        reply(200, compressed, (("Content-Type", "text/xml"), ("Content-Encoding", "gzip")))
    )
    response = send(server.port)
    assert response.body == compressed
    with pytest.raises(errors.UpstreamError):
        parse_sts_response(response)


def test_proxy_environment_ignored(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = serve(reply())
    assert send(server.port).status == 200


def test_configured_proxy_used(serve: Serve) -> None:
    proxy = serve(reply())
    proxies = {"http": f"http://user:pa55@127.0.0.1:{proxy.port}"}
    assert send(free_port(), retries=0, proxies=proxies).status == 200
    (seen,) = proxy.requests
    assert seen.request_line.startswith("POST http://127.0.0.1:")
    assert seen.headers["proxy-authorization"] == "Basic dXNlcjpwYTU1"


def test_concurrent_sends(serve: Serve) -> None:
    server = serve(reply())

    async def main() -> list[int]:
        async with AsyncHttpTransport(max_pool_connections=4) as transport:
            request = outbound(server.port)
            sends = (transport.send(request, timeout=10, max_retries=2) for _ in range(50))
            return [response.status for response in await asyncio.gather(*sends)]

    assert run(main()) == [200] * 50
    assert len(server.requests) == 50


def test_unsupported_scheme() -> None:
    request = outbound(1)
    bad = OutboundRequest(
        method=request.method,
        url="ftp://127.0.0.1/",
        host=request.host,
        headers=request.headers,
        body=request.body,
        sigv4=request.sigv4,
    )

    async def main() -> STSResponse:
        async with AsyncHttpTransport() as transport:
            return await transport.send(bad, timeout=1, max_retries=0)

    with pytest.raises(errors.UpstreamError):
        run(main())


# -------------------------------------------------------------------------------- TLS


@contextlib.asynccontextmanager
async def tls_server(cert: str, key: str) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 (in the running loop) answering ``GOLDEN``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {len(GOLDEN)}\r\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"{head}Connection: close\r\n\r\n".encode() + GOLDEN)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


def https_outbound(port: int) -> OutboundRequest:
    """:func:`outbound` over TLS, with a secret in its query (never to be echoed)."""
    return attrs.evolve(
        outbound(port), url=f"https://127.0.0.1:{port}/?X-Amz-Signature=supersecret"
    )


def send_tls(tmp_path: Path, verify: Callable[[str], bool | str]) -> STSResponse:
    cert, key = self_signed(tmp_path)

    async def main() -> STSResponse:
        async with (
            tls_server(cert, key) as port,
            AsyncHttpTransport(verify=verify(cert), sleep=Sleeps()) as transport,
        ):
            https = https_outbound(port)
            return await transport.send(https, timeout=10, max_retries=1)

    return run(main())


def test_tls_untrusted_self_signed_certificate_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.UpstreamError) as info:
        send_tls(tmp_path, lambda cert: True)  # botocore's CA bundle
    assert type(info.value) is errors.UpstreamError
    assert info.value.message.startswith("error making upstream request: error making request")
    assert info.value.message.endswith(": TLS error: CERTIFICATE_VERIFY_FAILED")
    assert "supersecret" not in info.value.message


def test_tls_trusted_with_the_given_ca_bundle(tmp_path: Path) -> None:
    response = send_tls(tmp_path, lambda cert: cert)
    assert response.status == 200
    assert response.body == GOLDEN


# --------------------------------------------------------- cancellation and the pool


class HangUntilClosed:
    """The first request hangs (after ``partial`` bytes of response) until the client
    closes its connection; later requests are answered."""

    def __init__(self, partial: bytes) -> None:
        self.partial = partial
        self.entered = threading.Event()
        self.closed = threading.Event()
        self._first = threading.Lock()
        self.good = reply()

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        if not self._first.acquire(blocking=False):
            self.good(conn, stop)
            return
        conn.sendall(self.partial)
        self.entered.set()
        conn.settimeout(0.05)
        while not stop.is_set():
            try:
                if conn.recv(1) == b"":
                    self.closed.set()
                    return
            except TimeoutError:
                continue


@pytest.mark.parametrize(
    "partial",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<GetCaller"],
    ids=["awaiting-headers", "mid-body"],
)
def test_cancelled_send_frees_its_connection(serve: Serve, partial: bytes) -> None:
    hang = HangUntilClosed(partial)
    server = serve(hang)

    async def main() -> STSResponse:
        async with AsyncHttpTransport(max_pool_connections=1) as transport:
            request = outbound(server.port)
            task = asyncio.create_task(transport.send(request, timeout=60, max_retries=0))
            assert await asyncio.to_thread(hang.entered.wait, 20), "never reached the server"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The only slot for this host is free again, or this would time out.
            return await transport.send(request, timeout=20, max_retries=0)

    assert run(main()).status == 200
    assert hang.closed.wait(20), "the abandoned connection was left open"
    assert len(server.requests) == 2


def test_cancelled_while_waiting_for_the_pool(serve: Serve) -> None:
    hang = HangUntilClosed(b"")
    server = serve(hang)

    async def main() -> tuple[int, int]:
        async with AsyncHttpTransport(max_pool_connections=1) as transport:
            request = outbound(server.port)
            holder = asyncio.create_task(transport.send(request, timeout=60, max_retries=0))
            assert await asyncio.to_thread(hang.entered.wait, 20)
            waiter = asyncio.create_task(transport.send(request, timeout=60, max_retries=0))
            await asyncio.sleep(0.1)  # let it queue for the slot
            waiter.cancel()
            holder.cancel()
            outcomes = await asyncio.gather(holder, waiter, return_exceptions=True)
            assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
            response = await transport.send(request, timeout=20, max_retries=0)
            return response.status, len(server.requests)

    assert run(main()) == (200, 2)  # the cancelled waiter never sent anything


class CountInFlight:
    """Answers each request after holding it until ``hold`` requests are in flight (or a
    short wait passes); records the most ever in flight at once."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.cond = threading.Condition()
        self.in_flight = 0
        self.most = 0
        self.good = reply()

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        with self.cond:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.in_flight >= self.hold, timeout=5)
            # Give an uncapped client the chance to send more before this one is answered.
            self.cond.wait_for(lambda: self.in_flight > self.hold, timeout=0.2)
            self.in_flight -= 1  # before answering: the client cannot send more until then
        self.good(conn, stop)


def test_pool_cap_per_host_respected(serve: Serve) -> None:
    counter = CountInFlight(hold=2)
    server = serve(counter)

    async def main() -> list[int]:
        async with AsyncHttpTransport(max_pool_connections=2) as transport:
            request = outbound(server.port)
            sends = (transport.send(request, timeout=30, max_retries=0) for _ in range(6))
            return [response.status for response in await asyncio.gather(*sends)]

    assert run(main()) == [200] * 6
    assert len(server.requests) == 6
    assert counter.most == 2


# ------------------------------------------------ the HTTP/1.1 client: framing and reuse


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
KEEP = OK_HEAD + f"Content-Length: {len(GOLDEN)}\r\n\r\n".encode() + GOLDEN


class Scripted:
    """An HTTP/1.1 server (in the running loop) that answers its n-th request (counted
    from 0 over all connections) with ``answers(n)``: the bytes to write, and whether to
    close the connection afterwards. Records the requests of each connection."""

    def __init__(self, answers: Callable[[int], tuple[bytes, bool]]) -> None:
        self.answers = answers
        self.connections: list[list[bytes]] = []
        self.port = 0

    @property
    def requests(self) -> int:
        return sum(len(seen) for seen in self.connections)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: list[bytes] = []
        self.connections.append(seen)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                answer, close = self.answers(self.requests)
                seen.append(head)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def scripted(answers: Callable[[int], tuple[bytes, bool]]) -> AsyncIterator[Scripted]:
    script = Scripted(answers)
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    script.port = server.sockets[0].getsockname()[1]
    async with server:
        yield script
        server.close()


def sequential(
    answers: Callable[[int], tuple[bytes, bool]], count: int = 2, retries: int = 0
) -> tuple[list[STSResponse], Scripted]:
    """``count`` sends, one after the other, through one transport."""

    async def main() -> tuple[list[STSResponse], Scripted]:
        async with scripted(answers) as script, AsyncHttpTransport(sleep=Sleeps()) as transport:
            responses = [
                await transport.send(outbound(script.port), timeout=10, max_retries=retries)
                for _ in range(count)
            ]
            return responses, script

    return run(main())


def test_keep_alive_connection_reused() -> None:
    responses, script = sequential(lambda n: (KEEP, False), count=3)
    assert [r.body for r in responses] == [GOLDEN] * 3
    assert [len(seen) for seen in script.connections] == [3]


def test_connection_close_response_not_reused() -> None:
    closing = KEEP.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    responses, script = sequential(lambda n: (closing, False))  # the server keeps it open
    assert [r.status for r in responses] == [200, 200]
    assert [len(seen) for seen in script.connections] == [1, 1]


def test_bytes_after_the_response_not_reused() -> None:
    responses, script = sequential(lambda n: (KEEP + b"HTTP/1.1 200 OK\r\n\r\njunk", False))
    assert [r.body for r in responses] == [GOLDEN, GOLDEN]
    assert [len(seen) for seen in script.connections] == [1, 1]


def test_chunked_response_read_and_reused() -> None:
    frames = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (GOLDEN[:7], GOLDEN[7:])
    )
    chunked = OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + frames + b"0\r\n\r\n"
    responses, script = sequential(lambda n: (chunked, False))
    assert [r.body for r in responses] == [GOLDEN, GOLDEN]
    assert [len(seen) for seen in script.connections] == [2]


def test_body_read_until_close() -> None:
    responses, script = sequential(lambda n: (OK_HEAD + b"\r\n" + GOLDEN, True))
    assert [r.body for r in responses] == [GOLDEN, GOLDEN]
    assert [len(seen) for seen in script.connections] == [1, 1]


def test_informational_response_skipped() -> None:
    early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    (response,), _ = sequential(lambda n: (early + KEEP, False), count=1)
    assert response.status == 200
    assert response.body == GOLDEN
    assert ("link", "</a>") not in response.headers


def test_idle_connection_closed_by_the_peer_is_replaced_without_an_attempt() -> None:
    # No "Connection: close": the client learns of the close only when it reuses it.
    responses, script = sequential(lambda n: (KEEP, True), count=3, retries=0)
    assert [r.status for r in responses] == [200] * 3
    assert script.requests == 3


@pytest.mark.parametrize(
    "answer",
    [
        OK_HEAD + b"X-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n",
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n1;" + b"x" * (400 * 1024) + b"\r\n",
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"0\r\n" + b"X-Trailer: a\r\n" * 40_000,
    ],
    ids=["huge-head", "huge-chunk-extension", "endless-trailers"],
)
def test_head_and_framing_bounded(answer: bytes) -> None:
    with pytest.raises(errors.UpstreamError) as info:
        sequential(lambda n: (answer, False), count=1)  # kept open: only a bound ends it
    assert info.value.message in (
        "error making upstream request: STS response too large",
        "error making upstream request: error making request: "
        "connection closed before a complete response",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Amz-Date", "1\r\nX-Evil: 1"), ("X-Amz-Date", "1\nX"), ("X-Evil\r\n", "1"), ("A", "\0")],
)
def test_header_injection_refused(name: str, value: str) -> None:
    async def main() -> int:
        async with scripted(lambda n: (KEEP, False)) as script, AsyncHttpTransport() as transport:
            request = outbound(script.port)
            bad = OutboundRequest(
                method=request.method,
                url=request.url,
                host=request.host,
                headers=((name, value),),
                body=request.body,
                sigv4=request.sigv4,
            )
            with pytest.raises(errors.UpstreamError) as info:
                await transport.send(bad, timeout=5, max_retries=0)
            assert info.value.message.endswith("invalid request header")
            return script.requests

    assert run(main()) == 0


def test_one_pool_per_event_loop() -> None:
    transport = AsyncHttpTransport()

    async def main(port: int) -> int:
        response = await transport.send(outbound(port), timeout=10, max_retries=0)
        return response.status

    async def twice() -> list[int]:
        async with scripted(lambda n: (KEEP, False)) as script:
            return [
                await main(script.port),
                await asyncio.to_thread(asyncio.run, main(script.port)),  # another loop
            ]

    assert run(twice()) == [200, 200]


# ----------------------------------------------------------------- https through a proxy


class ConnectProxy:
    """An HTTP proxy (in the running loop) that tunnels ``CONNECT`` to 127.0.0.1, or
    answers ``refuse`` instead. Records each CONNECT head."""

    def __init__(self, refuse: bytes = b"") -> None:
        self.refuse = refuse
        self.heads: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            if self.refuse:
                writer.write(self.refuse)
                return
            port = int(head.split(b" ")[1].rpartition(b":")[2])
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(OSError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def send_tls_via_proxy(tmp_path: Path, proxy: ConnectProxy) -> STSResponse:
    cert, key = self_signed(tmp_path)

    async def main() -> STSResponse:
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        proxy_port = server.sockets[0].getsockname()[1]
        proxies = {"https": f"http://us%40er:pa55@127.0.0.1:{proxy_port}"}
        async with (
            server,
            tls_server(cert, key) as port,
            AsyncHttpTransport(verify=cert, proxies=proxies, sleep=Sleeps()) as transport,
        ):
            https = https_outbound(port)
            return await transport.send(https, timeout=10, max_retries=0)

    return run(main())


def test_https_through_a_connect_proxy(tmp_path: Path) -> None:
    proxy = ConnectProxy()
    response = send_tls_via_proxy(tmp_path, proxy)
    assert response.status == 200
    assert response.body == GOLDEN
    (head,) = proxy.heads
    assert head.startswith(b"CONNECT 127.0.0.1:")
    assert b"Proxy-Authorization: Basic dXNAZXI6cGE1NQ==\r\n" in head  # us@er:pa55
    assert b"supersecret" not in head


def test_proxy_refusing_the_tunnel(tmp_path: Path) -> None:
    proxy = ConnectProxy(refuse=b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    with pytest.raises(errors.UpstreamError) as info:
        send_tls_via_proxy(tmp_path, proxy)
    assert info.value.message == (
        "error making upstream request: error making request: proxy connection failed"
    )


def test_async_backend_without_httptools_says_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the async STS client's dependency, AsyncBackend's default transport names
    the extra to install instead of a bare ImportError from deep inside."""
    from aws_iam_backend.drivers.defaults import async_default_transport

    monkeypatch.setitem(sys.modules, "aws_iam_backend.io.aio_transport", None)
    with pytest.raises(ImportError, match=r"pip install 'aws_iam_backend\[async\]'"):
        async_default_transport(64)
