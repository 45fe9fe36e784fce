"""The asyncio STS transport: sends a rebuilt GetCallerIdentity request over a small
pooled HTTP/1.1 client of its own (asyncio protocols, responses parsed by ``httptools``).

The same rules as the sync :class:`~aws_iam_backend.io.transport.BotocoreTransport` (the
pure ones are shared through :mod:`~aws_iam_backend.io.transport_rules`):

- TLS is verified against botocore's CA bundle (or the given one), with botocore's SSL
  context settings, and the certificate must name the host;
- one overall deadline per ``send`` (``asyncio.timeout_at``) covers pool waits, connect,
  TLS, retries, backoff and the body, so a peer that trickles bytes cannot hold a task
  past it; ``connect_timeout`` bounds each connect (with its proxy tunnel and TLS);
- redirects are never followed, bodies are never decompressed (``Accept-Encoding:
  identity``) and are read capped at 64 KiB (a larger ``Content-Length`` is refused
  before the body; chunked and read-until-close bodies are counted as they come, and
  the response head and chunk framing are bounded too); no cookies are kept;
- retries on connection errors, 429 and 5xx (not 501), with full-jitter exponential
  backoff (or a short ``Retry-After``) that never sleeps past the deadline;
- proxies only when configured, never from the environment (``http`` targets are sent
  to the proxy in absolute form, ``https`` targets through an HTTP ``CONNECT`` tunnel);
- keep-alive connections, at most ``max_pool_connections`` per host (callers wait,
  inside their deadline); a connection goes back to the pool only after a complete
  response that allows keep-alive, with nothing unread after it;
- cancelling the awaiting task abandons the request: its connection is closed, never
  returned to the pool half-read.

Error texts name a short reason only, never the URL (a presigned query carries the
signature), headers or body. This client replaced aiohttp by measurement (``python -m
benchmarks.async_transport``): the STS call is the server's hottest I/O.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import random as random_module
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self
from urllib.parse import unquote, urlsplit

import httptools
from botocore.httpsession import create_urllib3_context, get_cert_path

from aws_iam_backend.errors import UpstreamError
from aws_iam_backend.io.transport_rules import (
    MAX_BODY,
    REQUEST_ERROR,
    check_declared_length,
    check_scheme,
    connect_reason,
    deadline_exceeded,
    retry_budget,
    settle,
    tls_reason,
    too_large,
)
from aws_iam_backend.login.messages import OutboundRequest, STSResponse

__all__ = ["AsyncHttpTransport"]

#: Most bytes of a response head (status line and headers) read before refusing it.
MAX_HEAD = 64 * 1024
#: Most bytes on the wire for one response (head, body, chunk framing and trailers).
MAX_WIRE = MAX_HEAD + 4 * MAX_BODY
#: Most bytes of a proxy's answer to ``CONNECT``.
MAX_TUNNEL_HEAD = 16 * 1024

CLOSED = "connection closed before a complete response"
PROXY_FAILED = "proxy connection failed"

_Key = tuple[str, str, int]  # scheme, host, port of the origin


class AsyncHttpTransport:
    """:class:`~aws_iam_backend.io.protocols.AsyncSTSTransport` over pooled connections.

    One instance serves every login on any number of event loops; each loop gets its own
    pool, opened by the first ``send`` (or ``async with``) there. ``verify`` is True
    (botocore's CA bundle), False, or a CA bundle path; ``proxies`` maps a URL scheme to
    a proxy URL (``http://`` or ``https://``; credentials in it are sent as
    ``Proxy-Authorization``). ``sleep`` and ``random`` are injectable for tests.
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
        max_pool_connections: int = 50,
        connect_timeout: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self._sleep = sleep
        self._random = random
        self._max_pool_connections = max(1, max_pool_connections)
        self._connect_timeout = connect_timeout
        self._ssl = _ssl_context(verify)
        self._proxies = {scheme: _Proxy(url) for scheme, url in (proxies or {}).items()}
        # One pool per event loop: connections and their waiters belong to their loop.
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = (
            weakref.WeakKeyDictionary()
        )

    async def __aenter__(self) -> Self:
        self._pool_here()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the running loop's pooled connections (a later ``send`` opens a new pool);
        connections in use are closed when their ``send`` ends."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            pool.close()

    async def send(
        self, request: OutboundRequest, *, timeout: float, max_retries: int
    ) -> STSResponse:
        """Send ``request``; return STS's response, or raise an upstream error."""
        retries = retry_budget(max_retries)
        scheme = check_scheme(request)
        key, wire = _encode(request, scheme, self._proxies.get(scheme))
        pool = self._pool_here()
        loop = pool.loop
        deadline = loop.time() + timeout
        attempt = 0
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                while True:
                    attempt += 1
                    try:
                        response: STSResponse | None = await pool.exchange(key, wire)
                        failure = ""
                    except _ConnectionFailed as exc:
                        response, failure = None, str(exc)
                    outcome = settle(
                        response, failure, attempt=attempt, retries=retries,
                        now=loop.time(), deadline=deadline, random=self._random,
                    )  # fmt: skip
                    if isinstance(outcome, STSResponse):
                        return outcome
                    await self._sleep(outcome)
        except TimeoutError:
            if scope.expired():
                raise deadline_exceeded(attempt) from None
            raise

    def _pool_here(self) -> _Pool:
        """The pool of the running loop, opened on its first use there."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = _Pool(
                loop,
                limit=self._max_pool_connections,
                connect_timeout=self._connect_timeout,
                tls=self._ssl,
                proxies=self._proxies,
            )
            self._pools[loop] = pool
        return pool


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """botocore's client context, loaded with its CA bundle and checking host names."""
    context: ssl.SSLContext
    if not verify:
        context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
        return context
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.load_verify_locations(cafile=get_cert_path(verify))
    context.check_hostname = True  # urllib3 matches names itself; here OpenSSL must
    return context


class _ConnectionFailed(Exception):
    """Internal: the attempt failed before a complete response; the text is a safe reason."""


class _Stop(Exception):
    """Internal: raised from a parser callback to stop parsing (the reason is recorded)."""


# ------------------------------------------------------------------- the request


class _Proxy:
    """A configured proxy: where to connect, and its ``Proxy-Authorization`` if any."""

    __slots__ = ("authorization", "host", "port", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a proxy URL must be http:// or https:// with a host")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.authorization = ""
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(secret.encode("latin-1")).decode("ascii")
            self.authorization = f"Proxy-Authorization: Basic {token}\r\n"


def _encode(request: OutboundRequest, scheme: str, proxy: _Proxy | None) -> tuple[_Key, bytes]:
    """The origin to connect to and the request's bytes (head and body).

    The URL's path and query are sent byte for byte (a presigned query is signed as the
    client encoded it). ``Host`` is the signed host; the body's length is declared."""
    url = request.url
    netloc = urlsplit(url).netloc
    origin = _origins.get((scheme, netloc))
    if origin is None:
        origin = _origin(scheme, netloc)
    host, port = origin
    start = len(scheme) + 3 + len(netloc)  # after "scheme://netloc"
    target = url[start:].partition("#")[0] or "/"
    if target[0] != "/":  # "?query" without a path
        target = "/" + target
    if proxy is not None and scheme == "http":
        target = url[:start] + target  # absolute form, for the proxy
    lines = [f"{request.method} {target} HTTP/1.1\r\nHost: {request.host}\r\n"]
    identity = True
    for name, value in request.headers:
        if identity and name.lower() == "accept-encoding":
            identity = False
        lines.append(f"{name}: {value}\r\n")
    if identity:
        lines.append("Accept-Encoding: identity\r\n")
    body = request.body
    if body or request.method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}\r\n")
    if proxy is not None and scheme == "http" and proxy.authorization:
        lines.append(proxy.authorization)
    lines.append("\r\n")
    head = "".join(lines)
    breaks = len(lines) + 1  # one per line, two in the first
    # Every line break is one this function wrote: a CR, LF or NUL smuggled in a name,
    # value, method or target would split the request.
    if head.count("\n") != breaks or head.count("\r") != breaks or "\0" in head:
        raise UpstreamError(REQUEST_ERROR + "invalid request header")
    try:
        wire = head.encode("latin-1") + body
    except UnicodeEncodeError:
        raise UpstreamError(REQUEST_ERROR + "invalid request header") from None
    return (scheme, host, port), wire


_origins: dict[tuple[str, str], tuple[str, int]] = {}  # (scheme, netloc): (host, port)


def _origin(scheme: str, netloc: str) -> tuple[str, int]:
    """The host and port of ``scheme://netloc`` (remembered: STS endpoints are few)."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UpstreamError(REQUEST_ERROR + "invalid URL") from None
    if not host:
        raise UpstreamError(REQUEST_ERROR + "invalid URL")
    if len(_origins) >= 256:
        _origins.clear()
    _origins[scheme, netloc] = host, port
    return host, port


# ------------------------------------------------------------------- the pool


class _Pool:
    """One event loop's keep-alive connections, at most ``limit`` per origin."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        limit: int,
        connect_timeout: float,
        tls: ssl.SSLContext,
        proxies: Mapping[str, _Proxy],
    ) -> None:
        self.loop = loop
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.tls = tls
        self.proxies = proxies
        self.hosts: dict[_Key, _Host] = {}
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for host in self.hosts.values():
            while host.idle:
                host.idle.pop().close()
        self.hosts.clear()

    async def exchange(self, key: _Key, wire: bytes) -> STSResponse:
        """One request/response on a pooled (or new) connection to ``key``; the caller's
        deadline bounds it, slot wait included."""
        host = self.hosts.get(key)
        if host is None:
            host = self.hosts[key] = _Host(self.limit)
        await host.slots.acquire()
        try:
            while host.idle:
                conn = host.idle.pop()  # the most recently used: the least likely stale
                if conn.usable():
                    try:
                        return await self._on(conn, host, wire)
                    except _Stale:
                        continue  # closed by the peer while idle: not an attempt
                conn.close()
            conn = await self._connect(key)
            try:
                return await self._on(conn, host, wire)
            except _Stale:
                raise _ConnectionFailed(CLOSED) from None
        finally:
            host.slots.release()

    async def _on(self, conn: _Connection, host: _Host, wire: bytes) -> STSResponse:
        reusable = False
        try:
            response = await conn.request(wire)
            reusable = conn.reusable()
            return response
        finally:
            if reusable and not self.closed:
                conn.idle()
                host.idle.append(conn)
            else:  # failed, refused, timed out or cancelled: never reused
                conn.close()

    async def _connect(self, key: _Key) -> _Connection:
        """A new connection to ``key`` (through its proxy, if one is configured)."""
        scheme, host, port = key
        tls = self.tls if scheme == "https" else None
        proxy = self.proxies.get(scheme)
        loop = self.loop
        scope = asyncio.timeout(self.connect_timeout)
        conn: _Connection | None = None
        try:
            async with scope:
                if proxy is None:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(loop), host, port, ssl=tls,
                        server_hostname=host if tls is not None else None,
                    )  # fmt: skip
                    return conn
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(loop), proxy.host, proxy.port,
                        ssl=self.tls if proxy.tls else None,
                        server_hostname=proxy.host if proxy.tls else None,
                    )  # fmt: skip
                    if tls is not None:
                        await conn.tunnel(host, port, proxy.authorization)
                except (OSError, _ConnectionFailed) as exc:
                    if conn is not None:
                        conn.close()
                    raise _ConnectionFailed(tls_reason(exc) or PROXY_FAILED) from None
                if tls is not None:
                    await conn.start_tls(tls, host)
                return conn
        except BaseException as exc:
            if conn is not None:
                conn.close()
            # Inside this coroutine the caller's deadline shows as cancellation; a
            # TimeoutError is the connect timeout (or the OS's own).
            if isinstance(exc, TimeoutError):
                raise _ConnectionFailed(_timed_out()) from None
            if isinstance(exc, OSError):
                raise _ConnectionFailed(_reason(exc)) from None
            raise


class _Host:
    """One origin's slots (``limit`` at once; waiters queue) and idle connections."""

    __slots__ = ("idle", "slots")

    def __init__(self, limit: int) -> None:
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[_Connection] = []


class _Stale(Exception):
    """Internal: a reused connection was found closed before any response byte."""


def _timed_out() -> str:
    return connect_reason(OSError(errno.ETIMEDOUT, "timed out"))


def _reason(exc: BaseException) -> str:
    """A short description of a connect failure, free of URLs, headers and bodies."""
    if isinstance(exc, socket.gaierror):
        return "name resolution failed"
    return tls_reason(exc) or connect_reason(exc)


# ------------------------------------------------------------------- one connection


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: a request at a time, its response parsed by httptools.

    States: idle (no request: any byte or EOF from the peer makes it unusable), tunnel
    (awaiting a proxy's answer to ``CONNECT``), or awaiting a response (``waiter``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.dead = False  # the peer closed, sent unasked bytes, or we closed
        self.used = False  # a response was read on it before
        self.waiter: asyncio.Future[None] | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.failure: BaseException | None = None
        self.tunnel_head = bytearray()
        self.tunneling = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.wire = 0
        self.length_known = False  # Content-Length or chunked: not read-until-close
        self.head_done = False
        self.done = False
        self.keep_alive = False  # the complete response allows another request
        self.extra = False  # bytes after the response

    # ---- used by the pool

    def usable(self) -> bool:
        return not self.dead and self.transport is not None and not self.transport.is_closing()

    def reusable(self) -> bool:
        return self.done and self.keep_alive and not self.extra and not self.dead

    def idle(self) -> None:
        self.parser = None
        self.waiter = None
        self._reset()

    def close(self) -> None:
        self.dead = True
        if self.transport is not None:
            self.transport.close()

    async def request(self, wire: bytes) -> STSResponse:
        """Write ``wire``; return the complete response (or raise)."""
        transport = self.transport
        assert transport is not None
        reused = self.used
        self.used = True
        self.parser = httptools.HttpResponseParser(self)
        self.failure = None
        waiter = self.waiter = self.loop.create_future()
        transport.write(wire)
        try:
            await waiter
        except _ConnectionFailed:
            if reused and self.wire == 0:
                raise _Stale from None  # closed while idle; the request never reached it
            raise
        return STSResponse(
            status=self.status, headers=tuple(self.headers), body=b"".join(self.body)
        )

    async def tunnel(self, host: str, port: int, authorization: str) -> None:
        """Ask the (connected) proxy for a tunnel to ``host:port``."""
        transport = self.transport
        assert transport is not None
        target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.tunneling = True
        waiter = self.waiter = self.loop.create_future()
        transport.write(
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{authorization}\r\n".encode()
        )
        await waiter
        self.waiter = None
        head = bytes(self.tunnel_head)
        self.tunnel_head = bytearray()
        status_line = head.partition(b"\r\n")[0].split(None, 2)
        if len(status_line) < 2 or not status_line[1].startswith(b"2"):
            raise _ConnectionFailed(PROXY_FAILED)

    async def start_tls(self, context: ssl.SSLContext, host: str) -> None:
        """Upgrade the (tunnelled) connection to TLS with ``host``."""
        transport = self.transport
        assert transport is not None
        upgraded = await self.loop.start_tls(transport, self, context, server_hostname=host)
        if upgraded is None:
            raise _ConnectionFailed(CLOSED)
        self.transport = upgraded

    # ---- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.tunneling:
            self._tunnel_data(data)
            return
        parser = self.parser
        if parser is None or self.done:  # unasked bytes: never reuse this connection
            self.extra = True
            self.close()
            return
        self.wire += len(data)
        try:
            parser.feed_data(data)
        except Exception:
            if not self.done:
                self._fail(self.failure or _ConnectionFailed(CLOSED))
            else:  # bytes after the response (a pipelined or garbage tail)
                self.extra = True
            return
        if self.done:
            return
        if self.wire > MAX_WIRE:
            self._fail(too_large())
        elif not self.head_done and self.wire > MAX_HEAD:
            self._fail(_ConnectionFailed(CLOSED))

    def eof_received(self) -> bool | None:
        self._ended()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()

    def _ended(self) -> None:
        self.dead = True
        if self.tunneling:
            self._fail(_ConnectionFailed(PROXY_FAILED))
        elif self.head_done and not self.length_known and not self.done:
            self._complete()  # a read-until-close body
        else:
            self._fail(_ConnectionFailed(CLOSED))

    def _tunnel_data(self, data: bytes) -> None:
        self.tunnel_head += data
        end = self.tunnel_head.find(b"\r\n\r\n")
        if end >= 0 and end + 4 == len(self.tunnel_head):
            self.tunneling = False
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif end >= 0 or len(self.tunnel_head) > MAX_TUNNEL_HEAD:
            self._fail(_ConnectionFailed(PROXY_FAILED))  # a body, or bytes past the head

    def _fail(self, exc: BaseException) -> None:
        self.failure = exc
        self.close()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _complete(self) -> None:
        self.done = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---- httptools callbacks

    def on_message_begin(self) -> None:
        if self.done:  # a second response: nothing was asked for it
            self.extra = True
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None
        status = parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:  # switching protocols: not HTTP any more
                self.failure = _ConnectionFailed(CLOSED)
                raise _Stop
            self.headers = []  # informational (100 Continue, 103): the real one follows
            return
        self.status = status
        self.head_done = True
        for name, value in self.headers:
            if name == "content-length":
                self.length_known = True
                try:
                    check_declared_length(value)
                except UpstreamError as exc:
                    self.failure = exc
                    raise _Stop from None
            elif name == "transfer-encoding":
                self.length_known = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            self.failure = too_large()
            raise _Stop
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.head_done:  # an informational response ended
            return
        parser = self.parser
        assert parser is not None
        self.keep_alive = parser.should_keep_alive()  # (llhttp forgets it once this returns)
        self._complete()
